package cost

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/wasmbuild"
	"github.com/tidwall/gjson"
)

var builder *wasmbuild.Builder

func TestMain(m *testing.M) { os.Exit(wasmbuild.Main(m, &builder)) }

func TestBuckets(t *testing.T) {
	for i := range numBuckets - 1 {
		lo, hi := bucketBounds(i)
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d = [%d, %d], but they fall in %d and %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if next, _ := bucketBounds(i + 1); next != hi+1 {
			t.Fatalf("bucket %d ends at %d, bucket %d starts at %d", i, hi, i+1, next)
		}
		if lo >= subCount && float64(hi-lo+1)/float64(lo) > 1.0/subCount {
			t.Fatalf("bucket %d = [%d, %d] is wider than 1/%d of its start", i, lo, hi, subCount)
		}
	}
	if _, hi := bucketBounds(numBuckets - 1); hi != math.MaxUint64 {
		t.Errorf("last bucket ends at %d, want MaxUint64", hi)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for v := uint64(1); v <= 100000; v++ {
		h.record(v * 10) // 10 ns .. 1 ms, uniform
	}
	for _, c := range []struct {
		q    float64
		want float64
	}{{0.5, 500000}, {0.9, 900000}, {0.99, 990000}} {
		got := float64(h.quantile(c.q))
		if math.Abs(got-c.want)/c.want > 1.0/subCount {
			t.Errorf("quantile(%g) = %g, want %g within 1/%d", c.q, got, c.want, subCount)
		}
	}
	if h.min != 10 || h.max != 1000000 || h.mean() != 500005 {
		t.Errorf("min %d, max %d, mean %g", h.min, h.max, h.mean())
	}
	var total uint64
	for _, b := range h.buckets() {
		total += b.Count
	}
	if total != h.n {
		t.Errorf("buckets hold %d values, want %d", total, h.n)
	}
	var empty histogram
	if empty.quantile(0.5) != 0 || empty.mean() != 0 {
		t.Error("an empty histogram has quantiles")
	}
}

func TestGenerate(t *testing.T) {
	w, err := Generate(GenerateConfig{Events: 500, Users: 100, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Events) != 500 {
		t.Fatalf("%d events, want 500", len(w.Events))
	}
	types := map[string]int{}
	mismatches, anonymous := 0, 0
	for _, ev := range w.Events {
		if !json.Valid(ev) {
			t.Fatalf("invalid event %s", ev)
		}
		e := gjson.ParseBytes(ev)
		types[e.Get("type").String()]++
		id := e.Get("userId").String()
		if id == "" {
			anonymous++
			id = e.Get("anonymousId").String()
		}
		rec, err := w.Store.Get(context.Background(), id)
		if err != nil {
			t.Fatalf("no stored consent for %s: %v", id, err)
		}
		prefs := e.Get("context.consent.categoryPreferences")
		if !prefs.IsObject() {
			t.Fatalf("event without consent: %s", ev)
		}
		differs := false
		prefs.ForEach(func(k, v gjson.Result) bool {
			if c, ok := rec.Category(k.String()); ok && c.Consented != v.Bool() {
				differs = true
			}
			return true
		})
		if differs {
			mismatches++
		}
	}
	if mismatches != 50 {
		t.Errorf("%d events disagree with their stored consent, want 10%% of 500 = 50", mismatches)
	}
	if anonymous != 50 {
		t.Errorf("%d anonymous events, want 50", anonymous)
	}
	for _, typ := range []string{"track", "identify", "page"} {
		if types[typ] == 0 {
			t.Errorf("no %s event among %v", typ, types)
		}
	}
	again, err := Generate(GenerateConfig{Events: 500, Users: 100, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	for i := range w.Events {
		if !bytes.Equal(w.Events[i], again.Events[i]) {
			t.Fatalf("event %d differs for the same seed", i)
		}
	}
}

func TestGenerateShares(t *testing.T) {
	w, err := Generate(GenerateConfig{Events: 200, Mismatch: -1, OptOut: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range w.Events {
		id := gjson.GetBytes(ev, "anonymousId").String()
		rec, err := w.Store.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := rec.Purpose("ccpa", "data_sale_opt_out"); !ok || !p.Consented {
			t.Fatalf("OptOut 1: record %s has not opted out", rec.ID)
		}
	}
	for _, cfg := range []GenerateConfig{{Mismatch: 1.5}, {OptOut: 2}, {Events: -1}} {
		if _, err := Generate(cfg); err == nil {
			t.Errorf("Generate(%+v) succeeded", cfg)
		}
	}
}

func TestReadEvents(t *testing.T) {
	events, err := ReadEvents(strings.NewReader("{\"type\":\"track\"}\n\n  {\"a\":1}  \n"), "in")
	if err != nil || len(events) != 2 || string(events[1]) != `{"a":1}` {
		t.Fatalf("ReadEvents = %q, %v", events, err)
	}
	for _, c := range []struct{ in, want string }{
		{"{\"a\":1}\n[1]\n", "in:2: not a JSON object"},
		{"{\"a\":\n", "in:1: not a JSON object"},
		{"\n\n", "no event"},
		{"\n" + "{\"a\":\"" + strings.Repeat("x", MaxEventBytes) + "\"}\n", "in:2: a line is longer"},
	} {
		_, err := ReadEvents(strings.NewReader(c.in), "in")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ReadEvents(%.40q) = %v, want an error with %q", c.in, err, c.want)
		}
	}
	if _, err := LoadEvents("/nonexistent/events.ndjson"); err == nil {
		t.Error("LoadEvents of a missing file succeeded")
	}
}

func FuzzReadEvents(f *testing.F) {
	f.Add([]byte("{\"type\":\"track\"}\n{}\n"))
	f.Add([]byte("{\"a\":[1,2,{\"b\":null}]}\r\n\n"))
	f.Add([]byte("[]\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		events, err := ReadEvents(bytes.NewReader(in), "fuzz")
		if err != nil {
			return
		}
		for _, ev := range events {
			if !json.Valid(ev) || ev[0] != '{' {
				t.Fatalf("accepted %q", ev)
			}
		}
	})
}

func TestProject(t *testing.T) {
	p := Prices{GBSecond: 0.0000166667, PerMillionRequests: 0.20}
	// 5 µs per event in 1 GiB: 1e6 × 5e-6 s × 1 GB = 5 GB-s.
	c := p.Project(5000, 1<<30)
	if math.Abs(c.GBSeconds-5) > 1e-9 || math.Abs(c.Compute-5*0.0000166667) > 1e-12 || c.Requests != 0.20 ||
		math.Abs(c.Total-(c.Compute+0.20)) > 1e-12 {
		t.Errorf("Project = %+v", c)
	}
	// Lambda bills at least 1 ms and 128 MB: 1e6 × 0.001 s × 0.125 GB × price + requests.
	if math.Abs(c.LambdaBilled-(1e6*0.001*1*0.0000166667+0.20)) > 1e-9 {
		t.Errorf("LambdaBilled = %g for 1 GiB", c.LambdaBilled)
	}
	small := p.Project(5000, 10<<20)
	if want := 125*0.0000166667 + 0.20; math.Abs(small.LambdaBilled-want) > 1e-9 {
		t.Errorf("LambdaBilled = %g, want %g (1 ms × 128 MB minimum)", small.LambdaBilled, want)
	}
	if d := DefaultPrices(); d.GBSecond != 0.0000166667 || d.PerMillionRequests != 0.20 {
		t.Errorf("DefaultPrices = %+v", d)
	}
}

func TestMoney(t *testing.T) {
	for v, want := range map[float64]string{0: "$0", 0.2: "$0.200", 5.16e-7: "$0.000000516", 12.5: "$12.50", -1: "$0"} {
		if got := money(v); got != want {
			t.Errorf("money(%g) = %s, want %s", v, got, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	w := &Workload{Events: [][]byte{[]byte(`{}`)}}
	tg := []Target{{Name: "a", Wasm: []byte("\x00asm")}}
	ctx := context.Background()
	for name, c := range map[string]struct {
		targets []Target
		w       *Workload
		cfg     Config
	}{
		"no target":       {nil, w, Config{}},
		"no event":        {tg, &Workload{}, Config{}},
		"same names":      {append(tg, tg[0]), w, Config{}},
		"bad concurrency": {tg, w, Config{Concurrency: []int{0}}},
		"negative":        {tg, w, Config{Duration: -time.Second}},
		"negative price":  {tg, w, Config{Prices: &Prices{GBSecond: -1}}},
		"not wasm":        {tg, w, Config{Duration: time.Millisecond}},
	} {
		if _, err := Run(ctx, c.targets, c.w, c.cfg); err == nil {
			t.Errorf("%s: Run succeeded", name)
		}
	}
}

// TestRun measures two functions on a small workload and checks that the
// report is whole and consistent.
func TestRun(t *testing.T) {
	match := builder.Build(t, "../../examples/consent-match")
	ccpa := builder.Build(t, "../../examples/ccpa-optout")
	w, err := Generate(GenerateConfig{Events: 200, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var prog bytes.Buffer
	rep, err := Run(context.Background(), []Target{{Name: "consent-match", Wasm: match}, {Name: "ccpa-optout", Wasm: ccpa}}, w,
		Config{Duration: 60 * time.Millisecond, Rounds: 2, Concurrency: []int{1, 2}, Progress: &prog})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Functions) != 2 || rep.Functions[0].Name != "consent-match" {
		t.Fatalf("functions %+v", rep.Functions)
	}
	for _, f := range rep.Functions {
		checkResult(t, f, 2)
	}
	if rep.Functions[0].Verdicts.Dropped["Consent mismatch"] == 0 {
		t.Errorf("consent-match dropped nothing: %+v", rep.Functions[0].Verdicts)
	}
	if !strings.Contains(prog.String(), "ccpa-optout: round 2/2") {
		t.Errorf("progress %q", prog.String())
	}
	var html bytes.Buffer
	if err := rep.WriteHTML(&html); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<svg xmlns="http://www.w3.org/2000/svg" id="latency"`, `id="throughput"`,
		`<polyline class="series" data-function="consent-match"`, `data-function="ccpa-optout"`} {
		if !strings.Contains(html.String(), want) {
			t.Errorf("HTML without %s", want)
		}
	}
	if strings.Contains(html.String(), "http://") && strings.Count(html.String(), "http://") != strings.Count(html.String(), "http://www.w3.org/2000/svg") {
		t.Error("the HTML refers to something outside itself")
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "consent-match") || !strings.Contains(table.String(), "cost per million events") {
		t.Errorf("table:\n%s", table.String())
	}
}

// checkResult checks one function's figures for consistency.
func checkResult(t *testing.T, f *Result, rounds int) {
	t.Helper()
	l := f.Latency
	if f.Events <= 0 || !(l.MinNS <= l.P50NS && l.P50NS <= l.P90NS && l.P90NS <= l.P99NS && l.P99NS <= l.MaxNS) || l.MeanNS <= 0 {
		t.Errorf("%s: events %d, latency %+v", f.Name, f.Events, l)
	}
	if len(l.RoundMeansNS) != rounds {
		t.Errorf("%s: %d round means, want %d", f.Name, len(l.RoundMeansNS), rounds)
	}
	if got := f.Verdicts.Delivered + f.Verdicts.DroppedTotal() + f.Verdicts.ErrorsTotal(); got != f.Events {
		t.Errorf("%s: verdicts %+v add up to %d, want %d events", f.Name, f.Verdicts, got, f.Events)
	}
	var hist uint64
	for _, b := range l.Histogram {
		hist += b.Count
	}
	if int64(hist) != f.Events {
		t.Errorf("%s: histogram holds %d events, want %d", f.Name, hist, f.Events)
	}
	if f.AllocsPerEvent <= 0 || f.AllocsPerEvent > 1000 {
		t.Errorf("%s: %g allocations per event", f.Name, f.AllocsPerEvent)
	}
	if len(f.Throughput) == 0 {
		t.Errorf("%s: no throughput", f.Name)
	}
	for _, tp := range f.Throughput {
		if tp.Events <= 0 || tp.EventsPerSecond <= 0 {
			t.Errorf("%s: throughput %+v", f.Name, tp)
		}
	}
	c := f.ColdStart
	if c.NoCacheNS <= 0 || c.DiskCacheNS <= 0 || c.InMemoryNS <= 0 {
		t.Errorf("%s: cold start %+v", f.Name, c)
	}
	if f.WasmBytes <= 0 || f.Memory.InstanceBytes <= 0 || f.Memory.Method == "" || f.Memory.Instances < 1 {
		t.Errorf("%s: wasm %d bytes, memory %+v", f.Name, f.WasmBytes, f.Memory)
	}
	if f.Cost.Total <= f.Cost.Requests || f.Cost.GBSeconds <= 0 {
		t.Errorf("%s: cost %+v", f.Name, f.Cost)
	}
}
