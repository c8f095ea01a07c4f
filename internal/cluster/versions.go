package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/insertfn/insertfn/functions"
)

// Versions makes every host of a cluster run the same function versions:
// what one host's admin API deploys, activates, rolls back or deletes
// (functions.Publisher) is written to a JetStream key-value bucket (the
// live version of each function: its hash and manifest) and object store
// (the wasm, by hash), which every host watches and applies to its own
// version store. The bucket's last value wins: hosts that change one
// function at once all end on the change the bucket kept last.
type Versions struct {
	kv    jetstream.KeyValue
	obj   jetstream.ObjectStore
	store *functions.VersionStore
	log   *slog.Logger
	watch *bucketWatch
}

// liveEntry is a function's value in the bucket.
type liveEntry struct {
	Hash     string             `json:"hash"`
	Manifest functions.Manifest `json:"manifest"`
}

// NewVersions opens (or creates) the buckets PREFIX_FUNCTIONS and
// PREFIX_WASM with replicas copies, makes store publish its changes there,
// applies the cluster's versions to store (they win over the host's own:
// a host that was down catches up) and keeps applying the other hosts'
// changes until Close.
//
// # Results
//   - the Versions, to Close;
//   - an error when the buckets cannot be opened or the cluster's versions
//     read.
func NewVersions(ctx context.Context, nc *nats.Conn, prefix string, replicas int, store *functions.VersionStore, log *slog.Logger) (*Versions, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("cluster: versions: %w", err)
	}
	replicas = max(replicas, 1)
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: prefix + "_FUNCTIONS",
		Description: "insertfn: the live version of each function", History: 1, Replicas: replicas})
	if err != nil {
		return nil, fmt.Errorf("cluster: versions: the bucket %s_FUNCTIONS: %w", prefix, err)
	}
	obj, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: prefix + "_WASM",
		Description: "insertfn: function code by hash", Replicas: replicas})
	if err != nil {
		return nil, fmt.Errorf("cluster: versions: the object store %s_WASM: %w", prefix, err)
	}
	v := &Versions{kv: kv, obj: obj, store: store, log: log}
	if v.watch, err = watchBucket(ctx, kv, v.apply); err != nil {
		return nil, fmt.Errorf("cluster: versions: %w", err)
	}
	store.SetPublisher(v)
	return v, nil
}

// Live implements functions.Publisher: the wasm goes to the object store
// (once per hash), then the function's entry to the bucket.
func (v *Versions) Live(ctx context.Context, m functions.Manifest, hash string, wasm []byte) error {
	if _, err := v.obj.GetInfo(ctx, hash); errors.Is(err, jetstream.ErrObjectNotFound) {
		if _, err := v.obj.PutBytes(ctx, hash, wasm); err != nil {
			return fmt.Errorf("store the code of %s: %w", m.Name, err)
		}
	} else if err != nil {
		return fmt.Errorf("look the code of %s up: %w", m.Name, err)
	}
	b, err := json.Marshal(liveEntry{Hash: hash, Manifest: m})
	if err != nil {
		return err
	}
	if _, err := v.kv.Put(ctx, m.Name, b); err != nil {
		return fmt.Errorf("publish %s: %w", m.Name, err)
	}
	return nil
}

// Deleted implements functions.Publisher.
func (v *Versions) Deleted(ctx context.Context, name string) error {
	if err := v.kv.Delete(ctx, name); err != nil {
		return fmt.Errorf("publish the deletion of %s: %w", name, err)
	}
	return nil
}

// apply makes the bucket's entry e (any host's, this one's included:
// what another host published since may have replaced it here) the
// host's own.
func (v *Versions) apply(ctx context.Context, e jetstream.KeyValueEntry) {
	name := e.Key()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute) // a compilation under load
	defer cancel()
	if e.Operation() != jetstream.KeyValuePut {
		if err := v.store.ApplyDelete(ctx, name); err != nil {
			v.log.Error("cluster: deleting a function another host deleted", "function", name, "err", err)
		}
		return
	}
	var le liveEntry
	if err := json.Unmarshal(e.Value(), &le); err != nil || le.Manifest.Name != name {
		v.log.Error("cluster: an unreadable function entry", "function", name, "err", err)
		return
	}
	wasm, err := v.store.Wasm(name, le.Hash)
	if err != nil {
		if wasm, err = v.obj.GetBytes(ctx, le.Hash); err != nil {
			v.log.Error("cluster: fetching the code of a function another host deployed", "function", name, "hash", le.Hash, "err", err)
			return
		}
	}
	if _, err := v.store.Apply(ctx, le.Manifest, wasm); err != nil {
		v.log.Error("cluster: making live a version another host deployed", "function", name, "hash", le.Hash, "err", err)
	}
}

// Close stops applying the other hosts' changes; the store stops
// publishing its own.
func (v *Versions) Close() error {
	v.store.SetPublisher(nil)
	v.watch.stop()
	return nil
}
