package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/internal/queue"
)

func TestDeadLetters(t *testing.T) {
	data := t.TempDir()
	ctx := context.Background()
	q, err := queue.Open(filepath.Join(data, queue.DirName), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	topic := queue.DestinationTopic("ads")
	// Backlog items carry their source (see queue.DecodeEventItem).
	item := func(ev string) []byte { return append([]byte{1, 3, 'w', 'e', 'b'}, ev...) }
	if err := q.Append(ctx, topic, item(`{"messageId":"m1"}`), item(`{"messageId":"m2"}`)); err != nil {
		t.Fatal(err)
	}
	c := q.Consumer(topic)
	items, err := c.Next(ctx, 10, 0)
	if err != nil || len(items) != 2 {
		t.Fatalf("Next: %v %v", items, err)
	}
	for _, it := range items {
		if err := c.Dead(ctx, it, "HTTP 400: bad request"); err != nil {
			t.Fatal(err)
		}
	}
	q.Close()

	code, stdout, stderr := runCLI(t, "dead", "list", "--data", data)
	if code != 0 || strings.Count(stdout, "attempts: 1\tHTTP 400: bad request") != 2 || !strings.Contains(stdout, `{"messageId":"m2"}`) {
		t.Fatalf("list: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = runCLI(t, "dead", "list", "ads", "--json", "--data", data)
	if code != 0 || strings.Count(stdout, `"destination":"ads","source":"web"`) != 2 || !strings.Contains(stdout, `"event":{"messageId":"m1"}`) {
		t.Fatalf("list --json: exit %d\n%s", code, stdout)
	}
	seq := strings.Fields(strings.SplitN(stdout, `"seq":`, 2)[1])[0]
	seq = strings.TrimRight(seq, ",")
	seq = strings.SplitN(seq, ",", 2)[0]
	code, stdout, stderr = runCLI(t, "dead", "drop", "ads", seq, "--data", data)
	if code != 0 || !strings.Contains(stdout, "1 dead letters of ads deleted") {
		t.Fatalf("drop %s: exit %d %s%s", seq, code, stdout, stderr)
	}
	code, stdout, _ = runCLI(t, "dead", "replay", "ads", "--data", data)
	if code != 0 || !strings.Contains(stdout, "1 dead letters of ads put back") {
		t.Fatalf("replay: exit %d %s", code, stdout)
	}
	q, err = queue.Open(filepath.Join(data, queue.DirName), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	st, _ := q.Stats(topic)
	if st.Ready != 1 || st.Dead != 0 {
		t.Errorf("after drop and replay: %+v, want one ready, none dead", st)
	}
	// The queue is locked while open.
	code, _, stderr = runCLI(t, "dead", "list", "--data", data)
	if code != exitFail || !strings.Contains(stderr, "stop it first") {
		t.Errorf("locked queue: exit %d, stderr %q", code, stderr)
	}
	if code, _, _ := runCLI(t, "dead", "replay", "--data", data); code != exitUsage {
		t.Errorf("replay without a destination: exit %d", code)
	}
}

// TestInboxDeadLetters: requests the pipeline could not read are listed
// (event by event, with their request's seq), replayed into the inbox or
// dropped with --inbox.
func TestInboxDeadLetters(t *testing.T) {
	data := t.TempDir()
	ctx := context.Background()
	q, err := queue.Open(filepath.Join(data, queue.DirName), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A request of two events in the inbox's format (see
	// queue.DecodeInboxItem), and bytes no insertfn wrote.
	request := "\x02\x03web\x12{\"messageId\":\"m1\"}\x12{\"messageId\":\"m2\"}"
	if err := q.Append(ctx, queue.InboxTopic, []byte(request), []byte("\x07???")); err != nil {
		t.Fatal(err)
	}
	c := q.Consumer(queue.InboxTopic)
	items, err := c.Next(ctx, 10, 0)
	if err != nil || len(items) != 2 {
		t.Fatalf("Next: %v %v", items, err)
	}
	for _, it := range items {
		if err := c.Dead(ctx, it, "unreadable"); err != nil {
			t.Fatal(err)
		}
	}
	q.Close()

	code, stdout, stderr := runCLI(t, "dead", "list", "--data", data)
	if code != 0 || strings.Count(stdout, "(inbox)") != 2 || !strings.Contains(stdout, "\t{\"messageId\":\"m2\"}\n") || !strings.Contains(stdout, "\x07???") {
		t.Fatalf("list: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = runCLI(t, "dead", "list", "--inbox", "--json", "--data", data)
	if code != 0 || strings.Count(stdout, `"inbox":true,"source":"web"`) != 2 || strings.Count(stdout, "\n") != 3 {
		t.Fatalf("list --inbox --json: exit %d\n%s", code, stdout)
	}
	seq := strings.SplitN(strings.SplitN(stdout, `"seq":`, 2)[1], ",", 2)[0]
	code, stdout, stderr = runCLI(t, "dead", "replay", "--inbox", seq, "--data", data)
	if code != 0 || !strings.Contains(stdout, "1 dead letters of the inbox put back to be processed again") {
		t.Fatalf("replay --inbox %s: exit %d %s%s", seq, code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, "dead", "drop", "--inbox", "--data", data)
	if code != 0 || !strings.Contains(stdout, "1 dead letters of the inbox deleted") {
		t.Fatalf("drop --inbox: exit %d %s%s", code, stdout, stderr)
	}
	q, err = queue.Open(filepath.Join(data, queue.DirName), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	st, _ := q.Stats(queue.InboxTopic)
	if st.Ready != 1 || st.Dead != 0 {
		t.Errorf("after replay and drop: %+v, want the request ready, nothing dead", st)
	}
	items, err = q.Consumer(queue.InboxTopic).Next(ctx, 10, 0)
	if err != nil || len(items) != 1 || string(items[0].Data) != request {
		t.Errorf("the inbox holds %d items (%v); want the request", len(items), err)
	}
}
