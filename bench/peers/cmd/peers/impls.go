package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	extism "github.com/extism/go-sdk"
	"github.com/insertfn/insertfn/runtime"
	"github.com/tidwall/gjson"
)

// counts are the verdicts of one pass over the workload.
type counts struct{ delivered, dropped int }

// impl is one implementation of the consent check.
type impl struct {
	name string
	// pass runs the check once on every event and counts the verdicts.
	// Unset for an implementation that times itself (round).
	pass func(ctx context.Context) (counts, error)
	// round, when set, measures one round itself.
	round func(ctx context.Context, d time.Duration) (nsPerEvent float64, c counts, err error)
	// sample, when set, runs one pass as pass does and puts the time of
	// each event's call in lat (one per event): the per-event percentiles.
	sample func(ctx context.Context, lat []time.Duration) (counts, error)
	close  func()
}

// measure runs one round of im for at least d: whole passes over the
// workload, every pass's verdicts checked against want.
func measure(ctx context.Context, im *impl, d time.Duration, want counts) (float64, error) {
	if im.round != nil {
		ns, c, err := im.round(ctx, d)
		if err != nil {
			return 0, err
		}
		if c != want {
			return 0, fmt.Errorf("%s: verdicts %+v, want %+v", im.name, c, want)
		}
		return ns, nil
	}
	passes := 0
	start := time.Now()
	for {
		c, err := im.pass(ctx)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", im.name, err)
		}
		if c != want {
			return 0, fmt.Errorf("%s: verdicts %+v, want %+v", im.name, c, want)
		}
		passes++
		if time.Since(start) >= d {
			break
		}
	}
	return float64(time.Since(start).Nanoseconds()) / float64(passes*users), nil
}

// nativeConsentMatch is bench/runtime_bench_test.go's native check: gjson
// over the raw event, stored consent from a map.
func nativeConsentMatch(ev []byte, store map[string]map[string]bool) (drop bool) {
	id := gjson.GetBytes(ev, "userId").String()
	if id == "" {
		id = gjson.GetBytes(ev, "anonymousId").String()
	}
	stored, ok := store[id]
	if !ok {
		return false
	}
	gjson.GetBytes(ev, "context.consent.categoryPreferences").ForEach(func(k, v gjson.Result) bool {
		if s, ok := stored[k.String()]; ok && s != v.Bool() {
			drop = true
			return false
		}
		return true
	})
	return drop
}

func newNative(w *workload) *impl {
	return &impl{name: "native Go (gjson + map)", pass: func(context.Context) (counts, error) {
		var c counts
		for _, ev := range w.events {
			if nativeConsentMatch(ev, w.native) {
				c.dropped++
			} else {
				c.delivered++
			}
		}
		return c, nil
	}}
}

// tally counts one insertfn result.
func tally(c *counts, r *runtime.Result) error {
	switch r.Verdict {
	case runtime.Deliver:
		c.delivered++
	case runtime.Drop:
		c.dropped++
	default:
		return fmt.Errorf("verdict %v (%s): %s", r.Verdict, r.Kind, r.Reason)
	}
	return nil
}

// newInsertfn loads the consent-match wasm with insertfn's runtime (one
// instance, as bench/ does) and returns two implementations on it: one
// Invoke per event, and InvokeBatch with batch events per call. lang names
// the guest's language in the rows ("" for the Go example); batched.close
// closes both.
func newInsertfn(ctx context.Context, w *workload, wasm []byte, batch int, lang string) (single, batched *impl, err error) {
	label := ""
	if lang != "" {
		label = " (" + lang + ")"
	}
	eng, err := runtime.NewEngine(runtime.Config{})
	if err != nil {
		return nil, nil, err
	}
	f, err := eng.Load(ctx, wasm, runtime.Options{Name: "consent-match", Store: w.records,
		Limits: runtime.Limits{PoolSize: 1}})
	if err != nil {
		eng.Close(ctx)
		return nil, nil, fmt.Errorf("insertfn: load consent-match%s: %w", label, err)
	}
	var res runtime.Result
	single = &impl{name: "insertfn wasm" + label + ", Invoke per event", pass: func(ctx context.Context) (counts, error) {
		var c counts
		for _, ev := range w.events {
			if err := f.Invoke(ctx, ev, &res); err != nil {
				return c, err
			}
			if err := tally(&c, &res); err != nil {
				return c, err
			}
		}
		return c, nil
	}}
	results := make([]runtime.Result, batch)
	batched = &impl{name: fmt.Sprintf("insertfn wasm%s, InvokeBatch(%d)", label, batch), pass: func(ctx context.Context) (counts, error) {
		var c counts
		for start := 0; start < len(w.events); start += batch {
			evs := w.events[start:min(start+batch, len(w.events))]
			if err := f.InvokeBatch(ctx, evs, results); err != nil {
				return c, err
			}
			for i := range evs {
				if err := tally(&c, &results[i]); err != nil {
					return c, err
				}
			}
		}
		return c, nil
	}, close: func() { f.Close(ctx); eng.Close(ctx) }}
	return single, batched, nil
}

// newExtism loads the go-pdk guest with Extism's go-sdk, WASI on (a Go
// guest needs it), and the consent store as the host function
// extism:host/user consent_get. One Plugin.Call per event.
func newExtism(ctx context.Context, w *workload, wasm []byte) (*impl, error) {
	get := extism.NewHostFunctionWithStack("consent_get",
		func(ctx context.Context, p *extism.CurrentPlugin, stack []uint64) {
			id, err := p.ReadString(stack[0])
			if err != nil {
				panic(err)
			}
			rec, ok := w.json[id]
			if !ok {
				stack[0] = 0
				return
			}
			off, err := p.WriteBytes(rec)
			if err != nil {
				panic(err)
			}
			stack[0] = off
		}, []extism.ValueType{extism.ValueTypePTR}, []extism.ValueType{extism.ValueTypePTR})
	plugin, err := extism.NewPlugin(ctx, extism.Manifest{Wasm: []extism.Wasm{extism.WasmData{Data: wasm, Name: "consent-match"}}},
		extism.PluginConfig{EnableWasi: true}, []extism.HostFunction{get})
	if err != nil {
		return nil, fmt.Errorf("extism: load the guest: %w", err)
	}
	return &impl{name: "Extism (go-sdk + go-pdk guest), Call per event", pass: func(ctx context.Context) (counts, error) {
		var c counts
		for _, ev := range w.events {
			rc, out, err := plugin.CallWithContext(ctx, "consent_match", ev)
			if err != nil || rc != 0 {
				return c, fmt.Errorf("consent_match returned %d: %v", rc, err)
			}
			switch string(out) {
			case "deliver":
				c.delivered++
			case "drop":
				c.dropped++
			default:
				return c, fmt.Errorf("consent_match output %q, want deliver or drop", out)
			}
		}
		return c, nil
	}, close: func() { plugin.Close(ctx) }}, nil
}

//go:embed consent-match.js
var consentMatchJS []byte

// newNode writes the events, the stored consent and the JavaScript function
// to dir; each round runs node on them (warm-up first, then its own timing
// loop) and reads the figure it prints.
func newNode(w *workload, node, dir string, warmup time.Duration) (*impl, error) {
	var evs, recs bytes.Buffer
	for _, ev := range w.events {
		evs.Write(ev)
		evs.WriteByte('\n')
	}
	for id, m := range w.native {
		line, err := json.Marshal(struct {
			ID                  string          `json:"id"`
			CategoryPreferences map[string]bool `json:"categoryPreferences"`
		}{id, m})
		if err != nil {
			return nil, err
		}
		recs.Write(line)
		recs.WriteByte('\n')
	}
	script := filepath.Join(dir, "consent-match.js")
	events := filepath.Join(dir, "events.ndjson")
	records := filepath.Join(dir, "consent.ndjson")
	for _, f := range []struct {
		path string
		data []byte
	}{{script, consentMatchJS}, {events, evs.Bytes()}, {records, recs.Bytes()}} {
		if err := os.WriteFile(f.path, f.data, 0o644); err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
	}
	return &impl{name: "Node.js (V8), JS function", round: func(ctx context.Context, d time.Duration) (float64, counts, error) {
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, node, script, events, records,
			fmt.Sprint(d.Milliseconds()), fmt.Sprint(warmup.Milliseconds()))
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return 0, counts{}, fmt.Errorf("node: %v: %s", err, strings.TrimSpace(stderr.String()))
		}
		var out struct {
			NsPerEvent float64 `json:"nsPerEvent"`
			Delivered  int     `json:"delivered"`
			Dropped    int     `json:"dropped"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
			return 0, counts{}, fmt.Errorf("node: reading its output %q: %w", stdout.String(), err)
		}
		if out.NsPerEvent <= 0 {
			return 0, counts{}, errors.New("node: no time measured")
		}
		return out.NsPerEvent, counts{out.Delivered, out.Dropped}, nil
	}}, nil
}
