package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/queue"
	"github.com/insertfn/insertfn/internal/queue/jetstream"
	"github.com/insertfn/insertfn/internal/queue/jetstream/jstest"
	"github.com/insertfn/insertfn/internal/testkit/redistest"
	natsgo "github.com/nats-io/nats.go"
	jsapi "github.com/nats-io/nats.go/jetstream"
	"github.com/tidwall/gjson"
)

// TestCluster is cluster mode with real processes: three JetStream
// servers (embedded in this process, a real Raft cluster, R3 streams), a
// real redis-server, and three `insertfn serve --config FILE` processes on
// the shared queue and consent store, configured as docs/cluster.md says.
// A client sends batches round-robin over the hosts and records every
// messageId that got a 200; mid-load one host is killed with SIGKILL and
// the NATS server that leads the inbox's stream is stopped. Every
// acknowledged event must reach the sink; duplicates are counted. Then a
// consent update sent through one host judges the next event of that
// person sent through another, and destination filters set through one
// host's admin API apply on another.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the cluster test starts processes")
	}
	nats := jstest.Start(t, 3)
	if err := nats.WaitMetaLeader(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	redis := redistest.Start(t)
	out := newClusterSink(t)

	type host struct {
		cmd   *exec.Cmd
		addr  string
		admin string // the admin API's address
		token string
	}
	startHost := func(i int) *host {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "insertfn.yaml")
		y := fmt.Sprintf(`data: %s
sources:
  - {name: web, write_keys: [%s], functions: [consent-match]}
functions:
  - {name: consent-match, wasm: %s}
destinations:
  - {name: sink, type: webhook, url: %s}
delivery: {backoff: {initial: 20ms, max: 200ms, max_attempts: -1}}
queue:
  backend: jetstream
  jetstream: {urls: [%s], replicas: 3, ack_wait: 2s, duplicate_window: 30s}
consent:
  backend: redis
  redis: {addrs: [%s]}
  cache: {size: 1000, ttl: 1h}
`, filepath.Join(dir, "data"), clusterWriteKey, consentMatchWasm, out.srv.URL, strings.Join(nats.URLsFrom(i%nats.N()), ", "), redis.Addr)
		if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "INSERTFN_RUN_MAIN="+strings.Join([]string{"serve", "--config", cfg,
			"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, "\n"))
		stdout, _ := cmd.StdoutPipe()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		h := &host{cmd: cmd}
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "insertfn serving on http://"); ok {
				h.addr = strings.Fields(a)[0]
			}
			if a, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "admin API on http://"); ok {
				h.admin = strings.Fields(a)[0]
				token, err := os.ReadFile(filepath.Join(dir, "data", "admin-token"))
				if err != nil {
					t.Fatal(err)
				}
				h.token = strings.TrimSpace(string(token))
				go func() {
					for sc.Scan() {
					}
				}()
				return h
			}
		}
		_ = cmd.Wait()
		t.Fatalf("host %d did not start:\n%s", i, stderr.String())
		return nil
	}
	hosts := make([]*host, 3)
	for i := range hosts {
		hosts[i] = startHost(i)
	}
	t.Cleanup(func() {
		for _, h := range hosts {
			if h != nil {
				_ = h.cmd.Process.Signal(syscall.SIGTERM)
				_ = h.cmd.Wait()
			}
		}
	})

	// The load: batches of ten round-robin over the live hosts; a request
	// that fails or is refused goes to the next host.
	var (
		acked   sync.Map // messageId -> true
		nAcked  atomic.Int64
		seq     atomic.Int64
		liveMu  sync.Mutex
		live    = []string{hosts[0].addr, hosts[1].addr, hosts[2].addr}
		stop    = make(chan struct{})
		loadWG  sync.WaitGroup
		refused atomic.Int64
	)
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 3 {
		loadWG.Go(func() {
			for n := w; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				ids := make([]string, 10)
				var b strings.Builder
				b.WriteString(`{"batch":[`)
				for j := range ids {
					ids[j] = fmt.Sprintf("c-%d", seq.Add(1))
					if j > 0 {
						b.WriteByte(',')
					}
					b.WriteString(`{"type":"track","userId":"u` + fmt.Sprint(j) + `","event":"e","messageId":"` + ids[j] + `"}`)
				}
				b.WriteString(`]}`)
				for try := 0; try < 6; try++ {
					liveMu.Lock()
					addr := live[(n+try)%len(live)]
					liveMu.Unlock()
					req, _ := http.NewRequest("POST", "http://"+addr+"/v1/batch", strings.NewReader(b.String()))
					req.SetBasicAuth(clusterWriteKey, "")
					resp, err := client.Do(req)
					if err != nil {
						refused.Add(1)
						continue
					}
					resp.Body.Close()
					if resp.StatusCode == 200 {
						for _, id := range ids {
							acked.Store(id, true)
						}
						nAcked.Add(int64(len(ids)))
						break
					}
					refused.Add(1)
				}
			}
		})
	}
	waitUntil(t, "the load to get going", func() bool { return nAcked.Load() > 300 })
	// Kill host 2 mid-load: its unacknowledged items come back to the
	// others after the ack wait.
	_ = hosts[2].cmd.Process.Signal(syscall.SIGKILL)
	_ = hosts[2].cmd.Wait()
	liveMu.Lock()
	live = live[:2]
	liveMu.Unlock()
	hosts[2] = nil
	before := nAcked.Load()
	waitUntil(t, "the load to go on without host 2", func() bool { return nAcked.Load() > before+300 })
	// Stop the NATS server that leads the inbox's stream; the R3 stream
	// elects another.
	inbox := (&jetstream.Options{}).ItemsStream(queue.InboxTopic)
	leader, err := nats.StreamLeader(inbox, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nats.Stop(leader)
	before = nAcked.Load()
	waitUntil(t, "the load to go on without the inbox's leader", func() bool { return nAcked.Load() > before+300 })
	if now, err := nats.StreamLeader(inbox, 10*time.Second); err != nil || now == leader {
		t.Fatalf("the inbox's stream is led by server %d (%v), was %d", now, err, leader)
	}
	close(stop)
	loadWG.Wait()

	var want []string
	acked.Range(func(k, _ any) bool { want = append(want, k.(string)); return true })
	deadline := time.Now().Add(90 * time.Second)
	for {
		counts := out.counts()
		var missing []string
		for _, id := range want {
			if counts[id] == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			dups := 0
			for _, n := range counts {
				dups += n - 1
			}
			t.Logf("%d events acknowledged (%d refusals retried elsewhere), all delivered; %d delivered more than once", len(want), refused.Load(), dups)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events never reached the sink, e.g. %v", len(missing), len(want), missing[:min(5, len(missing))])
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The streams drain: every message of the inbox and of the sink's
	// backlog is acknowledged, none left to a host that died.
	nc, err := natsgo.Connect(strings.Join(nats.URLsFrom((leader+1)%nats.N()), ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jsapi.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []queue.Topic{queue.InboxTopic, queue.DestinationTopic("sink")} {
		name := (&jetstream.Options{}).ItemsStream(topic)
		waitUntil(t, "the stream "+name+" to drain", func() bool {
			s, err := js.Stream(context.Background(), name)
			if err != nil {
				return false
			}
			info, err := s.Info(context.Background())
			if err != nil {
				return false
			}
			return info.State.Msgs == 0
		})
	}

	// Consent: host 0 caches u-consent's record (Advertising false), then
	// the person's update reaches host 1; the next event, sent through
	// host 0 with the new consent, is judged by the new record.
	send := func(addr, event, id, ads string) {
		t.Helper()
		body := `{"userId":"u-consent","event":"` + event + `","messageId":"` + id + `","context":{"consent":{"categoryPreferences":{"Advertising":` + ads + `}}}}`
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/track", strings.NewReader(body))
		req.SetBasicAuth(clusterWriteKey, "")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST %s to %s: %d", id, addr, resp.StatusCode)
		}
	}
	const updated, order = "Segment Consent Preference Updated", "Order Completed"
	send(hosts[0].addr, updated, "consent-1", "false") // the first decision, through host 0
	waitUntil(t, "consent-1", func() bool { return out.has("consent-1") })
	for i := range 4 { // read (and cached) by the hosts that process them
		send(hosts[i%2].addr, order, fmt.Sprintf("consent-2-%d", i), "false")
	}
	waitUntil(t, "consent-2-*", func() bool { return out.has("consent-2-3") })
	send(hosts[1].addr, updated, "consent-update", "true") // the person changes their mind, through host 1
	waitUntil(t, "consent-update", func() bool { return out.has("consent-update") })
	send(hosts[0].addr, order, "consent-3", "true") // through host 0: matches the new record
	send(hosts[0].addr, order, "consent-stale", "false")
	waitUntil(t, "consent-3", func() bool { return out.has("consent-3") })
	time.Sleep(500 * time.Millisecond)
	if out.has("consent-stale") {
		t.Error("an event with the old consent, sent after the update through another host, was delivered")
	}

	// Destination filters: set through host 0's admin API, they drop the
	// matching events that host 1 processes; reset through host 1, host 0
	// is back on the configuration's.
	adminDo := func(h *host, method, body string) string {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+h.admin+"/admin/destinations/sink/filters", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+h.token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s filters on %s: %d %s", method, h.admin, resp.StatusCode, b)
		}
		return string(b)
	}
	adminDo(hosts[0], "PUT", `[{"name": "no-previews", "if": "event = 'Preview'", "action": "drop"}]`)
	waitUntil(t, "host 1 to apply host 0's filters", func() bool {
		return strings.Contains(adminDo(hosts[1], "GET", ""), "no-previews")
	})
	send(hosts[1].addr, "Preview", "filtered", "true")
	send(hosts[1].addr, order, "after-filtered", "true")
	waitUntil(t, "after-filtered", func() bool { return out.has("after-filtered") })
	time.Sleep(500 * time.Millisecond)
	if out.has("filtered") {
		t.Error("an event that host 0's filter drops was delivered through host 1")
	}
	adminDo(hosts[1], "DELETE", "")
	waitUntil(t, "host 0 to apply host 1's reset", func() bool {
		return strings.TrimSpace(adminDo(hosts[0], "GET", "")) == "[]"
	})
	send(hosts[0].addr, "Preview", "unfiltered", "true")
	waitUntil(t, "unfiltered", func() bool { return out.has("unfiltered") })
}

const clusterWriteKey = "wk-cluster"

// clusterSink is a webhook destination that counts the messageIds it
// receives.
type clusterSink struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string]int
}

func newClusterSink(t *testing.T) *clusterSink {
	s := &clusterSink{got: make(map[string]int)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, ev := range gjson.GetBytes(body, "batch").Array() {
			s.got[ev.Get("messageId").String()]++
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// counts returns how many times the sink got each messageId.
func (s *clusterSink) counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.got)
}

// has reports whether the sink got the event with messageId id.
func (s *clusterSink) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[id] > 0
}
