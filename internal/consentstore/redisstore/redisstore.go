// Package redisstore is the Redis backend of the consent store: records,
// aliases and history in Redis (a single server or a Redis Cluster), shared
// by every insertfn host that points at it.
//
// # Atomicity
//
// Every operation is one Lua script (EVALSHA), which Redis runs alone: an
// update reads the records its ids find, merges them last-writer-wins per
// entry (the rule of [consentstore.MergeRecords]), links records its ids
// join, upserts its history points (the rule of
// [consentstore.UpsertPoint]) and updates the alias index, all without
// another client's command in between. Concurrent writers on different
// hosts therefore lose nothing, and the store behaves exactly like
// [consentstore.Memory]. Nothing is read, modified in Go and written back.
//
// # Keys
//
// Every key of a store starts with "{" + KeyPrefix + "}":
//
//	{insertfn:consent:}i:ID    the primary id of the record that ID (an id or an alias) finds
//	{insertfn:consent:}r:ID    hash: the record with primary id ID (entries, aliases, updated_at)
//	{insertfn:consent:}h:ID    hash: its history, one field per consentstore.Point.Key
//	{insertfn:consent:}all     sorted set of primary ids, for Scan
//
// # Redis Cluster
//
// A Lua script may only touch keys of one hash slot. The braces make the
// whole KeyPrefix the hash tag of every key, so all of a store's keys are
// in one slot: every operation, including an update that links two
// existing records and a delete that frees all of a record's aliases, is
// one script on one node, atomic on a cluster as on a single server.
//
// The trade-off: on a cluster, one store's data lives on one shard (one
// primary and its replicas) and that node serves all of its operations;
// the cluster gives the store availability, not more memory or throughput
// than one node. A consent record with its history is a few hundred bytes
// to a few kilobytes, so one node holds tens of millions of people, and a
// node runs tens of thousands of these scripts per second (an update
// costs Redis about 30-50µs of CPU). (Putting each
// record in its own slot, tagged with its primary id, would spread the
// data, but an alias index key lives in the alias's slot and linking two
// records moves one into the other's slot, so linking, deleting and any
// update by an alias would become multi-step operations that concurrent
// writers can interleave; we chose correctness.) Stores with different key
// prefixes land in different slots, so several stores (tenants,
// environments) spread over a cluster.
//
// Reads can be spread all the same: with Config.ReadFromReplicas, lookups
// (Get) run on the replicas of the store's primary (EVALSHA_RO of a
// script flagged no-writes), and every write waits until every replica
// connected to the primary has it, so that a lookup sees every write
// acknowledged before it (see Store.waited for the one window left).
//
// # Timeouts
//
// Every call is bounded by Config.Timeout (and by its context, whichever
// ends first): a server that is down, slow or unreachable makes the call
// fail within it with an error wrapping [consentstore.ErrUnavailable].
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/sdk/consent"
)

// Defaults of [Config].
const (
	DefaultAddr      = "127.0.0.1:6379"
	DefaultKeyPrefix = "insertfn:consent:"
	DefaultTimeout   = 200 * time.Millisecond
)

// scanPage is how many records one Scan round trip returns.
const scanPage = 100

// Config says which Redis to use and how. The zero value is a single
// server on 127.0.0.1:6379, database 0, without authentication, key prefix
// "insertfn:consent:" and a 200ms timeout.
type Config struct {
	// Addrs are host:port addresses: one for a single server; several
	// (seed nodes) for a Redis Cluster. Empty: 127.0.0.1:6379.
	Addrs []string `yaml:"addrs" json:"addrs"`
	// Cluster makes a single address a Redis Cluster seed node (several
	// addresses always mean a cluster).
	Cluster bool `yaml:"cluster" json:"cluster"`
	// Username and Password authenticate (ACL user, or the password
	// alone for requirepass).
	Username string `yaml:"username" json:"username"`
	Password string `yaml:"password" json:"password"`
	// DB is the database of a single server; a cluster has only 0.
	DB int `yaml:"db" json:"db"`
	// KeyPrefix starts every key of the store and is the hash tag of all
	// of them (see the package documentation). Empty: "insertfn:consent:".
	KeyPrefix string `yaml:"key_prefix" json:"key_prefix"`
	// Timeout bounds every call, connecting included. Zero: 200ms.
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
	// PoolSize is the number of connections per server. Zero: go-redis's
	// default, 10 per CPU.
	PoolSize int `yaml:"pool_size" json:"pool_size"`
	// WaitReplicas makes every write (update, delete) wait, with Redis's
	// WAIT, until that many replicas of the primary have it, within the
	// timeout; a write fewer replicas confirmed fails (the caller
	// answers an error and the client retries; the write is on the
	// primary, and applying it again changes nothing). With 1, an
	// acknowledged consent decision survives the primary's failover to a
	// replica that had it. Zero: writes do not wait (Redis replicates
	// asynchronously, and a failover may lose the last writes).
	WaitReplicas int `yaml:"wait_replicas" json:"wait_replicas"`
	// ReadFromReplicas sends consent lookups (Get) of a Redis Cluster to
	// the replicas of the primary that holds the store, so that its
	// replicas share the reads (a store's keys are all on one primary:
	// see the package documentation). A lookup must still see every
	// write acknowledged before it, so with it every write waits until
	// every replica connected to the primary has it (at least
	// WaitReplicas), and New refuses replicas that would answer while
	// their link to the primary is down (replica-serve-stale-data must
	// be "no"). A lookup a replica refuses goes to the primary.
	ReadFromReplicas bool `yaml:"read_from_replicas" json:"read_from_replicas"`
}

// Store is the Redis [consentstore.Backend]. It is safe for concurrent
// use; several Stores (on several hosts) may share one Redis and prefix.
type Store struct {
	c       redis.UniversalClient
	addrs   string // for error messages
	timeout time.Duration
	wait    int    // Config.WaitReplicas
	prefix  string // "{KeyPrefix}"
	all     string // key of the set of primary ids
	closed  atomic.Bool
	// replicaReads is Config.ReadFromReplicas: Get runs on replicas, and
	// writes wait for every replica connected.
	replicaReads bool
}

var _ consentstore.Backend = (*Store)(nil)

// New connects to Redis as cfg says and checks that it answers PING within
// the timeout.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if len(cfg.Addrs) == 0 {
		cfg.Addrs = []string{DefaultAddr}
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultKeyPrefix
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	addrs := strings.Join(cfg.Addrs, ",")
	cluster := cfg.Cluster || len(cfg.Addrs) > 1
	switch {
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("consent store: redis: negative timeout %v", cfg.Timeout)
	case cfg.PoolSize < 0:
		return nil, fmt.Errorf("consent store: redis: negative pool size %d", cfg.PoolSize)
	case cfg.WaitReplicas < 0:
		return nil, fmt.Errorf("consent store: redis: wait_replicas: %d is negative", cfg.WaitReplicas)
	case cluster && cfg.DB != 0:
		return nil, fmt.Errorf("consent store: redis: database %d on the cluster %s: a Redis Cluster has only database 0; use a key prefix instead", cfg.DB, addrs)
	case cfg.ReadFromReplicas && !cluster:
		return nil, fmt.Errorf("consent store: redis: read_from_replicas: %s is one server, not a Redis Cluster; replica reads need a cluster (several addrs, or cluster: true)", addrs)
	}
	for _, a := range cfg.Addrs {
		if a == "" {
			return nil, fmt.Errorf("consent store: redis: an empty address in %q", cfg.Addrs)
		}
	}
	t := cfg.Timeout
	// One dial attempt and one retry: a server that refuses connections
	// fails the call at once instead of after the timeout.
	var c redis.UniversalClient
	noMaint := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if cluster {
		c = redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: cfg.Addrs, Username: cfg.Username, Password: cfg.Password,
			Protocol: 2, DisableIdentity: true, MaintNotificationsConfig: noMaint,
			DialTimeout: t, ReadTimeout: t, WriteTimeout: t, PoolTimeout: t, ContextTimeoutEnabled: true,
			DialerRetries: 1, DialerRetryTimeout: time.Millisecond, MaxRetries: 1, PoolSize: cfg.PoolSize,
			ReadOnly: cfg.ReadFromReplicas,
		})
	} else {
		c = redis.NewClient(&redis.Options{
			Addr: cfg.Addrs[0], Username: cfg.Username, Password: cfg.Password, DB: cfg.DB,
			Protocol: 2, DisableIdentity: true, MaintNotificationsConfig: noMaint,
			DialTimeout: t, ReadTimeout: t, WriteTimeout: t, PoolTimeout: t, ContextTimeoutEnabled: true,
			DialerRetries: 1, DialerRetryTimeout: time.Millisecond, MaxRetries: 1, PoolSize: cfg.PoolSize,
		})
	}
	s := &Store{c: c, addrs: addrs, timeout: t, wait: cfg.WaitReplicas, replicaReads: cfg.ReadFromReplicas, prefix: "{" + cfg.KeyPrefix + "}"}
	s.all = s.prefix + "all"
	cctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	if err := c.Ping(cctx).Err(); err != nil {
		c.Close()
		return nil, s.fail(ctx, cctx, "connect", err)
	}
	if s.replicaReads {
		if err := s.checkReplicas(cctx); err != nil {
			c.Close()
			return nil, err
		}
	}
	return s, nil
}

// checkReplicas checks that every replica of the cluster refuses reads
// while its link to its primary is down, for ReadFromReplicas: one that
// answers then may not have writes the primary acknowledged meanwhile.
func (s *Store) checkReplicas(ctx context.Context) error {
	c := s.c.(*redis.ClusterClient)
	return c.ForEachSlave(ctx, func(ctx context.Context, r *redis.Client) error {
		addr := r.Options().Addr
		v, err := r.ConfigGet(ctx, "replica-serve-stale-data").Result()
		if err != nil {
			return fmt.Errorf("consent store: redis: read_from_replicas: cannot read replica-serve-stale-data of the replica %s (%w); replica reads are safe only with it set to no", addr, err)
		}
		if v["replica-serve-stale-data"] != "no" {
			return fmt.Errorf("consent store: redis: read_from_replicas: the replica %s has replica-serve-stale-data %q: it would answer lookups with what it had when its link to the primary went down; set it to no (CONFIG SET replica-serve-stale-data no, and in redis.conf) or turn read_from_replicas off", addr, v["replica-serve-stale-data"])
		}
		return nil
	})
}

// fail wraps the error of a call: ctx is the caller's context, cctx the
// call's (bounded by the timeout).
func (s *Store) fail(ctx, cctx context.Context, op string, err error) error {
	switch {
	case s.closed.Load() || errors.Is(err, redis.ErrClosed):
		return fmt.Errorf("consent store: redis %s: %s: %w", s.addrs, op, consentstore.ErrClosed)
	case errors.Is(ctx.Err(), context.Canceled):
		return fmt.Errorf("consent store: redis %s: %s: %w", s.addrs, op, ctx.Err())
	case ctx.Err() != nil:
		return fmt.Errorf("consent store: redis %s: %s: no answer before the caller's deadline: %w (%w)",
			s.addrs, op, consentstore.ErrUnavailable, ctx.Err())
	case cctx.Err() != nil:
		if errors.Is(err, context.DeadlineExceeded) {
			err = nil
		}
		return fmt.Errorf("consent store: redis %s: %s: no answer within %v: %w (%w%s)",
			s.addrs, op, s.timeout, consentstore.ErrUnavailable, cctx.Err(), suffix(err))
	}
	return fmt.Errorf("consent store: redis %s: %s: %w (%w)", s.addrs, op, consentstore.ErrUnavailable, err)
}

// run runs a script with the store's prefix as its first argument and
// returns its reply, or redis.Nil for a nil reply.
func (s *Store) run(ctx context.Context, op, id string, sc *redis.Script, key string, args ...any) (any, error) {
	return s.script(ctx, op, id, false, sc, key, args...)
}

// write is run for a script that writes: with Config.WaitReplicas, on
// one connection to the key's primary, followed by a WAIT there.
func (s *Store) write(ctx context.Context, op, id string, sc *redis.Script, key string, args ...any) (any, error) {
	return s.script(ctx, op, id, s.wait > 0 || s.replicaReads, sc, key, args...)
}

// pinned returns one connection to the primary that holds key, for a
// write and its WAIT (which counts the replicas that have the
// connection's writes).
func (s *Store) pinned(ctx context.Context, key string) (*redis.Conn, error) {
	switch c := s.c.(type) {
	case *redis.Client:
		return c.Conn(), nil
	case *redis.ClusterClient:
		node, err := c.MasterForKey(ctx, key)
		if err != nil {
			return nil, err
		}
		return node.Conn(), nil
	}
	return nil, fmt.Errorf("a client of type %T", s.c)
}

func (s *Store) script(ctx context.Context, op, id string, wait bool, sc *redis.Script, key string, args ...any) (any, error) {
	if s.closed.Load() {
		return nil, consentstore.ErrClosed
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var res any
	var err error
	if wait {
		res, err = s.waited(cctx, sc, key, append([]any{s.prefix}, args...))
	} else {
		res, err = sc.Run(cctx, s.c, []string{key}, append([]any{s.prefix}, args...)...).Result()
	}
	if err == redis.Nil {
		return nil, err
	}
	if err != nil {
		if id != "" {
			op += " " + quote(id)
		}
		return nil, s.fail(ctx, cctx, op, err)
	}
	return res, nil
}

// errTooFewReplicas is the error of a write WAIT did not see on enough
// replicas.
var errTooFewReplicas = errors.New("fewer replicas than wait_replicas (or, with read_from_replicas, than are connected) confirmed the write within the timeout")

// waited runs the script on a connection pinned to the key's primary, then
// WAITs for s.wait replicas until the call's deadline; with replica
// reads, for every replica connected to the primary when the script ran,
// if that is more.
//
// A replica that connects after the script ran gets the write with its
// synchronization: it refuses lookups until its link is up
// (replica-serve-stale-data no, checked by New), and the data it loads
// then holds the write. One window stays: a replica that was
// disconnected when the script ran and resumes its link (a partial
// resynchronization) while the lookup arrives may answer it between the
// resumption and the write in the backlog it is being sent, a matter of
// microseconds after a network partition.
func (s *Store) waited(ctx context.Context, sc *redis.Script, key string, args []any) (any, error) {
	conn, err := s.pinned(ctx, key)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	res, err := sc.Run(ctx, conn, []string{key}, args...).Result()
	if err != nil {
		return res, err
	}
	want := s.wait
	if s.replicaReads {
		n, err := connectedReplicas(ctx, conn)
		if err != nil {
			return nil, err
		}
		want = max(want, n)
	}
	if want == 0 {
		return res, nil
	}
	// WAIT answers at its timeout: leave the answer a fifth of the call's
	// time to come back before the connection's read deadline.
	left := time.Until(deadlineOf(ctx)) - max(s.timeout/5, 20*time.Millisecond)
	n, err := conn.Wait(ctx, want, max(left, time.Millisecond)).Result()
	if err != nil {
		return nil, err
	}
	if int(n) < want {
		return nil, fmt.Errorf("%w (%d of %d)", errTooFewReplicas, n, want)
	}
	return res, nil
}

// connectedReplicas returns how many replicas are connected to the
// primary conn is on (ROLE).
func connectedReplicas(ctx context.Context, conn *redis.Conn) (int, error) {
	role, err := conn.Do(ctx, "ROLE").Slice()
	if err != nil {
		return 0, fmt.Errorf("ROLE: %w", err)
	}
	if len(role) < 3 || role[0] != "master" {
		return 0, fmt.Errorf("ROLE of the key's primary: %.100v", role)
	}
	replicas, ok := role[2].([]any)
	if !ok {
		return 0, fmt.Errorf("ROLE of the key's primary: replicas %.100v", role[2])
	}
	return len(replicas), nil
}

func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(DefaultTimeout)
}

// Get returns the record whose id or alias is id.
func (s *Store) Get(ctx context.Context, id string) (*consent.Record, error) {
	if id == "" {
		if s.closed.Load() {
			return nil, consentstore.ErrClosed
		}
		return nil, consent.ErrNotFound
	}
	var res any
	var err error
	if s.replicaReads {
		res, err = s.readReplica(ctx, id)
	} else {
		res, err = s.run(ctx, "get", id, getScript, s.prefix+"i:"+id, id)
	}
	if err == redis.Nil {
		return nil, fmt.Errorf("consent store: redis: get %q: %w", id, consent.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	parts, err := reply(res, 2)
	if err != nil {
		return nil, s.corrupt("get "+quote(id), err)
	}
	rec, err := recordOf(parts[0], parts[1])
	if err != nil {
		return nil, s.corrupt("get "+quote(id), err)
	}
	return rec, nil
}

// readReplica runs getReplicaScript read-only, on a replica of the key's
// primary when it has one; when that replica fails (it lost its primary,
// it is gone), on the primary.
func (s *Store) readReplica(ctx context.Context, id string) (any, error) {
	if s.closed.Load() {
		return nil, consentstore.ErrClosed
	}
	key := s.prefix + "i:" + id
	args := []any{s.prefix, id}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	res, err := getReplicaScript.RunRO(cctx, s.c, []string{key}, args...).Result()
	cancel()
	if err == nil || err == redis.Nil || ctx.Err() != nil || s.closed.Load() {
		return res, err
	}
	return s.run(ctx, "get", id, getScript, key, id)
}

// Update merges u into the record its ids find, linking the records they
// find, and adds its points to the history: one script, atomic.
func (s *Store) Update(ctx context.Context, u *consentstore.Update) (*consent.Record, []consent.Change, error) {
	if u.Record.ID == "" {
		return nil, nil, consentstore.ErrNoID
	}
	args, err := updateArgs(u)
	if err != nil {
		return nil, nil, fmt.Errorf("consent store: redis: update %q: %w", u.Record.ID, err)
	}
	op := "update " + quote(u.Record.ID)
	res, err := s.write(ctx, "update", u.Record.ID, updateScript, s.prefix+"i:"+u.Record.ID, args...)
	if err == redis.Nil {
		return nil, nil, s.corrupt(op, errors.New("empty reply"))
	}
	if err != nil {
		return nil, nil, err
	}
	parts, err := reply(res, 2)
	if err != nil || len(parts)%2 != 0 {
		return nil, nil, s.corrupt(op, fmt.Errorf("unexpected reply %.100v", res))
	}
	var base *consent.Record
	if parts[1] != nil {
		if base, err = recordOf(parts[0], parts[1]); err != nil {
			return nil, nil, s.corrupt(op, err)
		}
	}
	var linked []*consent.Record
	for i := 2; i < len(parts); i += 2 {
		r, err := recordOf(parts[i], parts[i+1])
		if err != nil {
			return nil, nil, s.corrupt(op, err)
		}
		linked = append(linked, r)
	}
	merged, changes := consentstore.MergeRecords(u, base, linked)
	return merged, changes, nil
}

// Delete removes the record that id finds, its aliases and its history.
func (s *Store) Delete(ctx context.Context, id string) (*consent.Record, error) {
	op := "delete " + quote(id)
	res, err := s.write(ctx, "delete", id, deleteScript, s.prefix+"i:"+id, id)
	if err == redis.Nil {
		return nil, fmt.Errorf("consent store: redis: delete %q: %w", id, consent.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	parts, err := reply(res, 2)
	if err != nil {
		return nil, s.corrupt(op, err)
	}
	rec, err := recordOf(parts[0], parts[1])
	if err != nil {
		return nil, s.corrupt(op, err)
	}
	return rec, nil
}

// History returns the record that id finds and the points of its history.
func (s *Store) History(ctx context.Context, id string) (*consent.Record, []consentstore.Point, error) {
	op := "history of " + quote(id)
	res, err := s.run(ctx, "history of", id, historyScript, s.prefix+"i:"+id, id)
	if err == redis.Nil {
		return nil, nil, fmt.Errorf("consent store: redis: history of %q: %w", id, consent.ErrNotFound)
	}
	if err != nil {
		return nil, nil, err
	}
	parts, err := reply(res, 3)
	if err != nil {
		return nil, nil, s.corrupt(op, err)
	}
	rec, err := recordOf(parts[0], parts[1])
	if err != nil {
		return nil, nil, s.corrupt(op, err)
	}
	hist, _ := parts[2].([]any)
	points, err := decodeHistory(rec.ID, hist)
	if err != nil {
		return nil, nil, s.corrupt(op, err)
	}
	return rec, points, nil
}

// Scan calls fn with every record, in id order, a page of records per
// round trip. Each page is consistent; records written during the scan
// may or may not be seen.
func (s *Store) Scan(ctx context.Context, fn func(*consent.Record) error) error {
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		res, err := s.run(ctx, "scan", "", scanScript, s.all, after, scanPage)
		if err != nil {
			return err
		}
		parts, _ := res.([]any)
		if len(parts)%2 != 0 {
			return s.corrupt("scan", fmt.Errorf("unexpected reply %.100v", res))
		}
		if len(parts) == 0 {
			return nil
		}
		for i := 0; i < len(parts); i += 2 {
			rec, err := recordOf(parts[i], parts[i+1])
			if err != nil {
				return s.corrupt("scan", err)
			}
			if err := fn(rec); err != nil {
				return err
			}
			after = rec.ID
		}
	}
}

// Close closes the connections. Calls after Close fail with
// [consentstore.ErrClosed].
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.c.Close()
}

// corrupt reports data in Redis this package cannot read (written by
// something else, or by a newer version).
func (s *Store) corrupt(op string, err error) error {
	return fmt.Errorf("consent store: redis %s: %s: unreadable data under key prefix %s: %w", s.addrs, op, s.prefix, err)
}

// reply checks that res is an array of at least n elements.
func reply(res any, n int) ([]any, error) {
	parts, ok := res.([]any)
	if !ok || len(parts) < n {
		return nil, fmt.Errorf("unexpected reply %.100v", res)
	}
	return parts, nil
}

// recordOf decodes a script's (primary id, hash fields) pair.
func recordOf(id, fields any) (*consent.Record, error) {
	pid, ok := id.(string)
	if !ok || pid == "" {
		return nil, fmt.Errorf("unexpected record id %.100v", id)
	}
	fs, ok := fields.([]any)
	if !ok {
		return nil, fmt.Errorf("record %q: unexpected fields %.100v", pid, fields)
	}
	if len(fs) == 0 {
		return nil, fmt.Errorf("record %q: the index names it but it is not stored", pid)
	}
	return decodeRecord(pid, fs)
}

func suffix(err error) string {
	if err == nil {
		return ""
	}
	return "; " + err.Error()
}

// quote quotes an id for an error message, shortened.
func quote(id string) string {
	if len(id) > 64 {
		id = id[:64] + "..."
	}
	return fmt.Sprintf("%q", id)
}
