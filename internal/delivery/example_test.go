package delivery_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/insertfn/insertfn/internal/delivery"
)

// A worker's loop around one destination: deliver, and on failure either
// wait and retry, or give up to the dead letters.
func Example_retryLoop() {
	sink, err := delivery.Open(delivery.Config{
		Type:          delivery.TypeWebhook,
		WebhookConfig: delivery.WebhookConfig{URL: "https://collector.example.com/v1/batch", Timeout: 5 * time.Second},
	})
	if err != nil {
		fmt.Println(err) // delivery config: url: ...
		return
	}
	defer sink.Close()

	ctx := context.Background()
	policy := delivery.Backoff{} // 500ms doubling to 5m, ±20%, 10 attempts
	batch := [][]byte{[]byte(`{"type":"track","event":"Signed Up","userId":"u1","messageId":"m1"}`)}
	for attempt := 1; ; attempt++ {
		err := sink.Deliver(ctx, batch)
		if err == nil {
			return // acknowledge the batch in the queue
		}
		if !policy.ShouldRetry(attempt, err) {
			return // move the batch to the dead letters, with err
		}
		select {
		case <-time.After(policy.Next(attempt, err, nil)):
		case <-ctx.Done():
			return // the batch stays in the queue
		}
	}
}

func ExampleFile() {
	dir, _ := os.MkdirTemp("", "delivery-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "data", "events.ndjson")

	sink, err := delivery.NewFile(delivery.FileConfig{Path: path})
	if err != nil {
		fmt.Println(err)
		return
	}
	err = sink.Deliver(context.Background(), [][]byte{
		[]byte(`{"type":"track","event":"A"}`),
		[]byte("{\n  \"type\": \"identify\"\n}"),
	})
	fmt.Println(err)
	sink.Close()
	data, _ := os.ReadFile(path)
	fmt.Print(string(data))
	// Output:
	// <nil>
	// {"type":"track","event":"A"}
	// {"type":"identify"}
}

func ExampleConfig_Validate() {
	cfg := delivery.Config{Type: "webhook", WebhookConfig: delivery.WebhookConfig{URL: "ftp://example.com"}}
	fmt.Println(cfg.Validate())
	// Output:
	// delivery config: url: scheme must be http or https, got "ftp"
}
