package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/insertfn/insertfn/internal/pipeline/destfilter"
)

// FilterHost is a host's store of destination filters as Filters drives
// it: the filters set through any host's admin API apply on every host.
type FilterHost interface {
	// ApplyFilters makes filters the destination's on this host (as its
	// admin API would, without publishing them). An unknown destination
	// is an error: hosts may be configured with different destinations.
	ApplyFilters(ctx context.Context, destination string, filters []destfilter.Filter) error
	// ApplyReset gives the destination its configuration's filters again
	// on this host.
	ApplyReset(ctx context.Context, destination string) error
	// SetFilterPublisher makes the host's admin API publish its changes
	// through p before applying them (nil: apply them on this host only).
	SetFilterPublisher(p FilterPublisher)
}

// FilterPublisher publishes a change of a destination's filters to the
// other hosts.
type FilterPublisher interface {
	// PublishFilters publishes the destination's filters.
	PublishFilters(ctx context.Context, destination string, filters []destfilter.Filter) error
	// PublishReset publishes the return of the destination to its
	// configuration's filters.
	PublishReset(ctx context.Context, destination string) error
}

// Filters makes every host of a cluster apply the same destination
// filters: what one host's admin API sets or resets is written to a
// JetStream key-value bucket (PREFIX_FILTERS, a key per destination),
// which every host watches and applies. The bucket's last value wins, as
// for Versions.
type Filters struct {
	kv    jetstream.KeyValue
	host  FilterHost
	log   *slog.Logger
	watch *bucketWatch
}

// filterEntry is a destination's value in the bucket.
type filterEntry struct {
	Destination string              `json:"destination"`
	Updated     time.Time           `json:"updated"`
	Filters     []destfilter.Filter `json:"filters"`
}

// filterKey is the bucket's key of a destination: its name in unpadded
// base64url, since a key may hold letters, digits and -_=./ only.
func filterKey(destination string) string {
	return "d" + base64.RawURLEncoding.EncodeToString([]byte(destination))
}

// NewFilters opens (or creates) the bucket PREFIX_FILTERS with replicas
// copies, applies the filters set in the cluster to host (they win over
// the host's own: a host that was down catches up), makes host publish
// its changes there and applies the other hosts' until Close.
//
// # Results
//   - the Filters, to Close;
//   - an error when the bucket cannot be opened or read.
func NewFilters(ctx context.Context, nc *nats.Conn, prefix string, replicas int, host FilterHost, log *slog.Logger) (*Filters, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("cluster: filters: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: prefix + "_FILTERS",
		Description: "insertfn: destination filters set through the admin API", History: 1, Replicas: max(replicas, 1)})
	if err != nil {
		return nil, fmt.Errorf("cluster: filters: the bucket %s_FILTERS: %w", prefix, err)
	}
	f := &Filters{kv: kv, host: host, log: log}
	if f.watch, err = watchBucket(ctx, kv, f.apply); err != nil {
		return nil, fmt.Errorf("cluster: filters: %w", err)
	}
	host.SetFilterPublisher(f)
	return f, nil
}

// PublishFilters implements FilterPublisher.
func (f *Filters) PublishFilters(ctx context.Context, destination string, filters []destfilter.Filter) error {
	b, err := json.Marshal(filterEntry{Destination: destination, Updated: time.Now().UTC(), Filters: filters})
	if err != nil {
		return err
	}
	if _, err := f.kv.Put(ctx, filterKey(destination), b); err != nil {
		return fmt.Errorf("publish the filters of %q to the other hosts: %w", destination, err)
	}
	return nil
}

// PublishReset implements FilterPublisher.
func (f *Filters) PublishReset(ctx context.Context, destination string) error {
	if err := f.kv.Delete(ctx, filterKey(destination)); err != nil {
		return fmt.Errorf("publish the reset of the filters of %q to the other hosts: %w", destination, err)
	}
	return nil
}

// apply makes the bucket's entry e the host's (its own changes come back
// too: another host's since may have replaced them here).
func (f *Filters) apply(ctx context.Context, e jetstream.KeyValueEntry) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if e.Operation() != jetstream.KeyValuePut {
		enc, _ := strings.CutPrefix(e.Key(), "d")
		name, err := base64.RawURLEncoding.DecodeString(enc)
		if err != nil || filterKey(string(name)) != e.Key() {
			f.log.Error("cluster: an unreadable destination filters key", "key", e.Key(), "err", err)
			return
		}
		if err := f.host.ApplyReset(ctx, string(name)); err != nil {
			f.log.Error("cluster: resetting destination filters another host reset", "destination", string(name), "err", err)
		}
		return
	}
	var fe filterEntry
	if err := json.Unmarshal(e.Value(), &fe); err != nil || filterKey(fe.Destination) != e.Key() {
		f.log.Error("cluster: an unreadable destination filters entry", "key", e.Key(), "err", err)
		return
	}
	if fe.Filters == nil {
		fe.Filters = []destfilter.Filter{}
	}
	if err := f.host.ApplyFilters(ctx, fe.Destination, fe.Filters); err != nil {
		f.log.Error("cluster: applying destination filters another host set", "destination", fe.Destination, "err", err)
	}
}

// Close stops applying the other hosts' changes; the host stops
// publishing its own.
func (f *Filters) Close() error {
	f.host.SetFilterPublisher(nil)
	f.watch.stop()
	return nil
}
