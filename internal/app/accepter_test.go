package app

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/insertfn/insertfn/internal/ingest"
	"github.com/insertfn/insertfn/internal/pipeline"
	"github.com/insertfn/insertfn/internal/queue"
)

// TestPipelineAccepterBackpressure: the pipeline reports a full queue in
// its own terms (pipeline.ErrFull); the adapter the composition root hands
// the ingest turns it into ingest.ErrBackpressure (a 429 with
// Retry-After), keeping the cause.
func TestPipelineAccepterBackpressure(t *testing.T) {
	q, err := queue.Open(filepath.Join(t.TempDir(), queue.DirName), queue.Options{MaxBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	proc, err := pipeline.NewProcessor(nil, nil, []pipeline.Source{{Name: "web"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(q, proc, nil, pipeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ev := []byte(`{"type":"track","event":"e","userId":"u","messageId":"m1","properties":{"pad":"0123456789012345678901234567890123456789012345678901234567890123456789"}}`)
	acc := pipelineAccepter(p)
	err = acc.Accept(context.Background(), "web", [][]byte{ev})
	if !errors.Is(err, ingest.ErrBackpressure) || !errors.Is(err, pipeline.ErrFull) || !errors.Is(err, queue.ErrFull) {
		t.Fatalf("Accept into a full queue: %v; want ingest.ErrBackpressure wrapping pipeline.ErrFull", err)
	}
	if err := acc.Accept(context.Background(), "web", nil); err != nil {
		t.Errorf("Accept of no events: %v", err)
	}
}
