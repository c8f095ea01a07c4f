package host

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/insertfn/insertfn/queue"
)

// TestUpgradeKeepsTheOldQueue starts a host on a data directory whose
// queue is the bbolt file of an earlier insertfn, holding an accepted
// event not yet processed and one waiting for its destination: both
// reach the destination, and the old file is set aside.
func TestUpgradeKeepsTheOldQueue(t *testing.T) {
	s := newSink(t)
	c := baseConfig(t, nil, nil, webhookDest("warehouse", s.srv.URL))
	legacy := filepath.Join(c.DataDir(), queue.LegacyFileName)
	if err := os.MkdirAll(c.DataDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(legacy, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The values are the queue's item v1 encoding (version 1, no retries,
	// ready) of the pipeline's items (version 1, the source, the event).
	item := func(ev string) []byte { return append([]byte{1, 0, 0, 1, 3, 'w', 'e', 'b'}, ev...) }
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		if err := meta.Put([]byte("format"), []byte("1")); err != nil {
			return err
		}
		topics, err := tx.CreateBucket([]byte("topics"))
		if err != nil {
			return err
		}
		for topic, ev := range map[string]string{
			"inbox":          `{"type":"track","event":"e","userId":"u1","messageId":"old-inbox"}`,
			"dest:warehouse": `{"type":"track","event":"e","userId":"u2","messageId":"old-backlog"}`,
		} {
			tb, err := topics.CreateBucket([]byte(topic))
			if err != nil {
				return err
			}
			items, err := tb.CreateBucket([]byte("items"))
			if err != nil {
				return err
			}
			if _, err := tb.CreateBucket([]byte("dead")); err != nil {
				return err
			}
			if err := items.Put(binary.BigEndian.AppendUint64(nil, 7), item(ev)); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	start(t, c)
	waitFor(t, "the old queue's events", func() bool { return len(s.ids()) == 2 })
	if got := s.ids(); !slices.Equal(got, []string{"old-backlog", "old-inbox"}) {
		t.Fatalf("delivered %q", got)
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Errorf("the old queue file is still there: %v", err)
	}
	if _, err := os.Stat(legacy + queue.ImportedSuffix); err != nil {
		t.Errorf("the old queue file was not set aside: %v", err)
	}
}
