package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// legacyEntry is an entry of a legacy topic bucket: its key's sequence
// number and its stored value.
type legacyEntry struct {
	seq uint64
	v   []byte
}

// legacyTopic is what writeLegacy stores for one topic.
type legacyTopic struct {
	items, dead []legacyEntry
}

// writeLegacy writes a queue file in the bbolt layout of an earlier
// insertfn at path, with the given meta/format and topics, opened with
// the options the earlier insertfn used.
func writeLegacy(t testing.TB, path, format string, topics map[string]legacyTopic) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        time.Second,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		PageSize:       16 << 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket(legacyBucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(legacyKeyFormat, []byte(format)); err != nil {
			return err
		}
		root, err := tx.CreateBucket(legacyBucketTopics)
		if err != nil {
			return err
		}
		for name, lt := range topics {
			tb, err := root.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			for _, sub := range []struct {
				name    []byte
				entries []legacyEntry
			}{{legacyBucketItems, lt.items}, {legacyBucketDead, lt.dead}} {
				b, err := tb.CreateBucket(sub.name)
				if err != nil {
					return err
				}
				for _, e := range sub.entries {
					if err := b.Put(binary.BigEndian.AppendUint64(nil, e.seq), e.v); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func fresh(data string) []byte { return appendFresh(nil, []byte(data)) }

func TestImportBolt(t *testing.T) {
	ctx := context.Background()
	// A small bound: the import must not be refused for space.
	opts := Options{MaxBytes: 64}
	q, _ := open(t, opts)
	path := filepath.Join(t.TempDir(), LegacyFileName)
	died1 := time.Unix(1700000000, 123).UTC()
	died2 := time.Unix(1700000100, 456).UTC()
	corrupt := []byte{9, 1, 2} // an unknown value version
	writeLegacy(t, path, legacyFormat, map[string]legacyTopic{
		"inbox": {
			items: []legacyEntry{
				{7, fresh("a")},
				// Retried twice, waiting for an hour from now.
				{8, encodeItem(2, time.Now().Add(time.Hour).UnixNano(), []byte("b"))},
				{9, corrupt},
				{12, fresh("d")},
			},
			dead: []legacyEntry{
				{3, encodeDead(3, died1.UnixNano(), "http 500", []byte("x"))},
				{5, encodeDead(1, died2.UnixNano(), "bad event", []byte("yy"))},
			},
		},
		// Put out of order: the import follows the sequence numbers.
		"dest:a": {items: []legacyEntry{{30, fresh("r")}, {10, fresh("p")}, {20, fresh("q")}}},
	})

	items, dead, err := q.ImportBolt(ctx, path)
	if err != nil || items != 6 || dead != 3 {
		t.Fatalf("ImportBolt: %d items, %d dead letters, %v; want 6, 3, nil", items, dead, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the legacy file is still there: %v", err)
	}
	if _, err := os.Stat(path + ImportedSuffix); err != nil {
		t.Fatalf("the legacy file was not renamed: %v", err)
	}
	if items, dead, err := q.ImportBolt(ctx, path); err != nil || items != 0 || dead != 0 {
		t.Fatalf("second ImportBolt: %d, %d, %v; want 0, 0, nil", items, dead, err)
	}

	check := func(q *Queue) {
		t.Helper()
		if got := q.Topics(); !slices.Equal(got, []string{"dest:a", "inbox"}) {
			t.Fatalf("topics %q", got)
		}
		if s, want := stats(t, q, "inbox"), (Stats{Ready: 3, ReadyBytes: 3, Dead: 3, DeadBytes: 1 + 2 + 3}); s != want {
			t.Fatalf("inbox stats %+v, want %+v", s, want)
		}
		if s, want := stats(t, q, "dest:a"), (Stats{Ready: 3, ReadyBytes: 3}); s != want {
			t.Fatalf("dest:a stats %+v, want %+v", s, want)
		}
		used, limit := q.Usage()
		if want := int64(6+6*ItemOverhead) + int64(6+3*ItemOverhead); used != want || limit != 64 {
			t.Fatalf("Usage %d, %d; want %d, 64", used, limit, want)
		}
		dl, err := q.DeadLetters("inbox", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(dl) != 3 {
			t.Fatalf("%d dead letters, want 3: %+v", len(dl), dl)
		}
		if d := dl[0]; string(d.Data) != "x" || d.Reason != "http 500" || d.Attempts != 3 || !d.At.Equal(died1) {
			t.Errorf("dead letter 0: %+v", d)
		}
		if d := dl[1]; string(d.Data) != "yy" || d.Reason != "bad event" || d.Attempts != 1 || !d.At.Equal(died2) {
			t.Errorf("dead letter 1: %+v", d)
		}
		if d := dl[2]; !slices.Equal(d.Data, corrupt) || !strings.HasPrefix(d.Reason, "corrupt stored item: ") || d.Attempts != 0 {
			t.Errorf("dead letter 2 (the corrupt item): %+v", d)
		}
		if !(dl[0].Seq < dl[1].Seq && dl[1].Seq < dl[2].Seq) {
			t.Errorf("dead letters out of order: %+v", dl)
		}
	}
	check(q)

	// Handed out in order, the retried item ready at once with its
	// Attempts.
	c := q.Consumer("inbox")
	got := next(t, c, 10, time.Second)
	if !slices.Equal(datas(got), []string{"a", "b", "d"}) || got[0].Attempts != 0 || got[1].Attempts != 2 || got[2].Attempts != 0 {
		t.Fatalf("inbox after the import: %+v", got)
	}
	if !(got[0].Seq < got[1].Seq && got[1].Seq < got[2].Seq) {
		t.Fatalf("inbox seqs out of order: %+v", got)
	}
	expectEmpty(t, c)

	// Durable: the same after a reopen (the items not acknowledged are
	// handed out again).
	q = reopen(t, q, opts)
	check(q)
	if got := next(t, q.Consumer("inbox"), 10, time.Second); !slices.Equal(datas(got), []string{"a", "b", "d"}) || got[1].Attempts != 2 {
		t.Fatalf("inbox after reopen: %+v", got)
	}
	c = q.Consumer("dest:a")
	got = next(t, c, 10, time.Second)
	if !slices.Equal(datas(got), []string{"p", "q", "r"}) {
		t.Fatalf("dest:a after reopen: %q", datas(got))
	}
	// The imported items settle as any other.
	if err := c.Ack(ctx, got...); err != nil {
		t.Fatal(err)
	}
	if s := stats(t, q, "dest:a"); s != (Stats{}) {
		t.Fatalf("dest:a stats after Ack: %+v", s)
	}
	// The bound holds for new items.
	if err := q.Append(ctx, "inbox", []byte("new")); !errors.Is(err, ErrFull) {
		t.Fatalf("Append over the bound: %v, want ErrFull", err)
	}
}

func TestImportBoltAfterAppend(t *testing.T) {
	ctx := context.Background()
	q, _ := open(t, Options{Sync: SyncNever})
	if err := q.Append(ctx, "inbox", bs("new1", "new2")...); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), LegacyFileName)
	writeLegacy(t, path, legacyFormat, map[string]legacyTopic{
		"inbox": {items: []legacyEntry{{1, fresh("old1")}, {2, fresh("old2")}}},
	})
	if items, dead, err := q.ImportBolt(ctx, path); err != nil || items != 2 || dead != 0 {
		t.Fatalf("ImportBolt: %d, %d, %v", items, dead, err)
	}
	got := next(t, q.Consumer("inbox"), 10, time.Second)
	if !slices.Equal(datas(got), []string{"new1", "new2", "old1", "old2"}) || got[2].Seq != 3 {
		t.Fatalf("inbox: %+v", got)
	}
}

func TestImportBoltChunks(t *testing.T) {
	const n = 2*importChunkItems + 500
	q, _ := open(t, Options{Sync: SyncNever})
	path := filepath.Join(t.TempDir(), LegacyFileName)
	var lt legacyTopic
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprint(i)
		lt.items = append(lt.items, legacyEntry{uint64(i + 1), fresh(want[i])})
	}
	writeLegacy(t, path, legacyFormat, map[string]legacyTopic{"bulk": lt})
	if items, dead, err := q.ImportBolt(context.Background(), path); err != nil || items != n || dead != 0 {
		t.Fatalf("ImportBolt: %d, %d, %v", items, dead, err)
	}
	if got := datas(next(t, q.Consumer("bulk"), 2*n, time.Second)); !slices.Equal(got, want) {
		t.Fatalf("%d items handed out, want %d in order", len(got), n)
	}
}

func TestImportBoltMissing(t *testing.T) {
	q, _ := open(t, Options{Sync: SyncNever})
	items, dead, err := q.ImportBolt(context.Background(), filepath.Join(t.TempDir(), LegacyFileName))
	if err != nil || items != 0 || dead != 0 {
		t.Fatalf("ImportBolt of a missing file: %d, %d, %v; want 0, 0, nil", items, dead, err)
	}
}

func TestImportBoltEmptyFile(t *testing.T) {
	q, _ := open(t, Options{Sync: SyncNever})
	path := filepath.Join(t.TempDir(), LegacyFileName)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if items, dead, err := q.ImportBolt(context.Background(), path); err != nil || items != 0 || dead != 0 {
		t.Fatalf("ImportBolt of an empty file: %d, %d, %v; want 0, 0, nil", items, dead, err)
	}
	if _, err := os.Stat(path + ImportedSuffix); err != nil {
		t.Fatalf("the empty file was not renamed: %v", err)
	}
}

func TestImportBoltUnknownFormat(t *testing.T) {
	q, _ := open(t, Options{Sync: SyncNever})
	path := filepath.Join(t.TempDir(), LegacyFileName)
	writeLegacy(t, path, "9", map[string]legacyTopic{"inbox": {items: []legacyEntry{{1, fresh("a")}}}})
	items, dead, err := q.ImportBolt(context.Background(), path)
	if !errors.Is(err, ErrCorrupt) || items != 0 || dead != 0 {
		t.Fatalf("ImportBolt of format 9: %d, %d, %v; want an error wrapping ErrCorrupt", items, dead, err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("the error does not name the file: %v", err)
	}
	t.Log(err)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the file was moved: %v", err)
	}
	if got := q.Topics(); len(got) != 0 {
		t.Fatalf("topics %q after a failed import", got)
	}
}

func TestImportBoltNotBolt(t *testing.T) {
	q, _ := open(t, Options{Sync: SyncNever})
	path := filepath.Join(t.TempDir(), LegacyFileName)
	if err := os.WriteFile(path, []byte(strings.Repeat("not a bbolt file\n", 4096)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.ImportBolt(context.Background(), path); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ImportBolt of a file that is not bbolt's: %v; want an error wrapping ErrCorrupt", err)
	} else {
		t.Log(err)
	}
}

func TestImportBoltLocked(t *testing.T) {
	q, _ := open(t, Options{Sync: SyncNever})
	path := filepath.Join(t.TempDir(), LegacyFileName)
	writeLegacy(t, path, legacyFormat, map[string]legacyTopic{"inbox": {items: []legacyEntry{{1, fresh("a")}}}})
	// An earlier insertfn still running holds the file's exclusive lock.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	items, dead, err := q.ImportBolt(context.Background(), path)
	if err == nil || items != 0 || dead != 0 || !strings.Contains(err.Error(), "locked") || !strings.Contains(err.Error(), path) {
		t.Fatalf("ImportBolt of a locked file: %d, %d, %v; want an error saying it is locked", items, dead, err)
	}
	t.Log(err)
	db.Close()
	if items, _, err := q.ImportBolt(context.Background(), path); err != nil || items != 1 {
		t.Fatalf("ImportBolt once unlocked: %d, %v", items, err)
	}
}
