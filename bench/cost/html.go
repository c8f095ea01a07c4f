package cost

import (
	"fmt"
	"html"
	"html/template"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// palette colours the functions in the charts, in order.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"}

func color(i int) string { return palette[i%len(palette)] }

// WriteHTML writes the report as one self-contained HTML page (inline
// CSS and SVG charts, no script, no external asset): the latency
// distribution of each function, throughput against concurrency, and the
// tables.
func (r *Report) WriteHTML(w io.Writer) error {
	var table strings.Builder
	if err := r.WriteTable(&table); err != nil {
		return err
	}
	type fn struct {
		*Result
		Color               string
		Mean, P50, P90, P99 string
		NoCache, Disk, Mem  string
		MemText, Wasm       string
		Dropped, Errors     int64
	}
	data := struct {
		R          *Report
		Functions  []fn
		Latency    template.HTML
		Throughput template.HTML
		Table      string
		Duration   string
	}{R: r, Latency: latencyChart(r), Throughput: throughputChart(r), Table: table.String(),
		Duration: time.Duration(r.Settings.DurationNS).String()}
	for i, f := range r.Functions {
		data.Functions = append(data.Functions, fn{Result: f, Color: color(i),
			Mean: ns(f.Latency.MeanNS), P50: ns(float64(f.Latency.P50NS)), P90: ns(float64(f.Latency.P90NS)), P99: ns(float64(f.Latency.P99NS)),
			NoCache: ns(float64(f.ColdStart.NoCacheNS)), Disk: ns(float64(f.ColdStart.DiskCacheNS)), Mem: ns(float64(f.ColdStart.InMemoryNS)),
			MemText: bytesText(f.Memory.InstanceBytes), Wasm: bytesText(int64(f.WasmBytes)),
			Dropped: f.Verdicts.DroppedTotal(), Errors: f.Verdicts.ErrorsTotal()})
	}
	return page.Execute(w, data)
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"money": money,
	"f2":    func(v float64) string { return fmt.Sprintf("%.2f", v) },
	"f0":    func(v float64) string { return fmt.Sprintf("%.0f", v) },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>insertfn bench: {{range $i, $f := .Functions}}{{if $i}} vs {{end}}{{$f.Name}}{{end}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:980px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.3em .7em;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}.sw{display:inline-block;width:.8em;height:.8em;margin-right:.4em}
.note{color:#555;font-size:.9em}svg{background:#fafafa;border:1px solid #eee}pre{font-size:.8em;overflow-x:auto}
</style></head><body>
<h1>What each function costs</h1>
<p class="note">{{.R.Settings.Workload}}. {{.R.Machine.GOOS}}/{{.R.Machine.GOARCH}}, {{.R.Machine.CPUs}} CPUs{{with .R.Machine.CPUModel}} ({{.}}){{end}}, {{.R.Machine.GoVersion}}; {{.R.Settings.Rounds}} interleaved rounds, {{.Duration}} per function.</p>
<h2>Per event</h2>
<table><tr><th>function</th><th>events</th><th>mean</th><th>p50</th><th>p90</th><th>p99</th><th>allocs/event</th><th>delivered</th><th>dropped</th><th>errors</th></tr>
{{range .Functions}}<tr class="fn" data-function="{{.Name}}"><td><span class="sw" style="background:{{.Color}}"></span>{{.Name}}</td><td>{{.Events}}</td><td>{{.Mean}}</td><td>{{.P50}}</td><td>{{.P90}}</td><td>{{.P99}}</td><td>{{f2 .AllocsPerEvent}}</td><td>{{.Verdicts.Delivered}}</td><td>{{.Dropped}}</td><td>{{.Errors}}</td></tr>
{{end}}</table>
<h2>Latency distribution</h2>
{{.Latency}}
<h2>Throughput against concurrency</h2>
{{.Throughput}}
<h2>Cost per million events</h2>
<table><tr><th>function</th><th>GB-seconds</th><th>compute</th><th>requests</th><th>total</th><th>as Lambda bills</th></tr>
{{range .Functions}}<tr><td>{{.Name}}</td><td>{{printf "%.4f" .Cost.GBSeconds}}</td><td>{{money .Cost.Compute}}</td><td>{{money .Cost.Requests}}</td><td>{{money .Cost.Total}}</td><td>{{money .Cost.LambdaBilled}}</td></tr>
{{end}}</table>
<p class="note">GB-seconds = 1e6 × mean seconds per event × memory per instance in GB; total = GB-seconds × ${{.R.Settings.Prices.GBSecond}} per GB-second + ${{.R.Settings.Prices.PerMillionRequests}} per million requests (defaults: AWS Lambda's public x86 list prices, which Segment's functions run on). "As Lambda bills" charges each event as one invocation of at least 1 ms and 128 MB.</p>
<h2>Start and size</h2>
<table><tr><th>function</th><th>wasm</th><th>load, no cache</th><th>load, disk cache</th><th>load, in memory</th><th>memory/instance</th><th>instances</th></tr>
{{range .Functions}}<tr><td>{{.Name}}</td><td>{{.Wasm}}</td><td>{{.NoCache}}</td><td>{{.Disk}}</td><td>{{.Mem}}</td><td>{{.MemText}} ({{.Memory.Method}})</td><td>{{.Memory.Instances}}</td></tr>
{{end}}</table>
<h2>As text</h2>
<pre>{{.Table}}</pre>
</body></html>
`))

// chart geometry
const (
	chartW, chartH         = 900, 320
	padL, padR, padT, padB = 70, 20, 20, 50
)

// latencyChart draws each function's per-event time distribution: share of
// events per bin (8 bins per power of two) on a logarithmic time axis.
func latencyChart(r *Report) template.HTML {
	type series struct {
		xs, ys []float64
	}
	var all []series
	lo, hi, top := math.Inf(1), 0.0, 0.0
	for _, f := range r.Functions {
		var s series
		bins := map[int]uint64{}
		var n uint64
		for _, b := range f.Latency.Histogram {
			if b.UpToNS == 0 {
				continue
			}
			bins[int(math.Floor(math.Log2(float64(b.UpToNS))*8))] += b.Count
			n += b.Count
		}
		// from the bin of p0.1 to the bin of p99.9
		var keys []int
		for k := range bins {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var seen uint64
		for _, k := range keys {
			c := bins[k]
			seen += c
			if float64(seen) < 0.001*float64(n) || float64(seen-c) > 0.999*float64(n) {
				continue
			}
			x := math.Pow(2, (float64(k)+0.5)/8)
			y := 100 * float64(c) / float64(n)
			s.xs, s.ys = append(s.xs, x), append(s.ys, y)
			lo, hi, top = math.Min(lo, x), math.Max(hi, x), math.Max(top, y)
		}
		all = append(all, s)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" id="latency" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="latency distribution per function">`, chartW, chartH, chartW, chartH)
	if hi <= lo {
		hi, lo = lo*2+1, lo/2
		if math.IsInf(lo, 0) {
			lo, hi = 1, 2
		}
	}
	lx0, lx1 := math.Log10(lo), math.Log10(hi)
	px := func(x float64) float64 {
		return padL + (math.Log10(x)-lx0)/(lx1-lx0)*(chartW-padL-padR)
	}
	py := func(y float64) float64 { return chartH - padB - y/math.Max(top, 1e-9)*(chartH-padT-padB) }
	axes(&b, "time per event (log scale)", "% of events")
	// x ticks at 1, 2, 5 × 10^k
	for e := math.Floor(lx0); e <= math.Ceil(lx1); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			x := px(v)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>`,
				x, padT, x, chartH-padB, x, chartH-padB+15, ns(v))
		}
	}
	yTicks(&b, top, py, "%.1f%%")
	for i, s := range all {
		polyline(&b, r.Functions[i].Name, color(i), s.xs, s.ys, px, py)
	}
	legend(&b, r)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// throughputChart draws events per second against concurrency.
func throughputChart(r *Report) template.HTML {
	levels := r.Settings.Concurrency
	top := 0.0
	for _, f := range r.Functions {
		for _, t := range f.Throughput {
			top = math.Max(top, t.EventsPerSecond)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" id="throughput" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="throughput against concurrency">`, chartW, chartH, chartW, chartH)
	px := func(i float64) float64 {
		if len(levels) < 2 {
			return (chartW + padL - padR) / 2
		}
		return padL + 30 + i/float64(len(levels)-1)*(chartW-padL-padR-60)
	}
	py := func(y float64) float64 { return chartH - padB - y/math.Max(top*1.1, 1e-9)*(chartH-padT-padB) }
	axes(&b, "goroutines calling the function at once", "events/s")
	for i, n := range levels {
		x := px(float64(i))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%d</text>`, x, chartH-padB+15, n)
	}
	yTicks(&b, top*1.1, py, "%.0f")
	for i, f := range r.Functions {
		var xs, ys []float64
		for j, t := range f.Throughput {
			xs, ys = append(xs, float64(j)), append(ys, t.EventsPerSecond)
		}
		polyline(&b, f.Name, color(i), xs, ys, px, py)
		for j := range xs {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s ×%d: %.0f events/s</title></circle>`,
				px(xs[j]), py(ys[j]), color(i), html.EscapeString(f.Name), f.Throughput[j].Concurrency, ys[j])
		}
	}
	legend(&b, r)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func axes(b *strings.Builder, xLabel, yLabel string) {
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`,
		padL, chartH-padB, chartW-padR, chartH-padB, padL, padT, padL, chartH-padB)
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="12" text-anchor="middle">%s</text>`, (chartW+padL)/2, chartH-10, html.EscapeString(xLabel))
	fmt.Fprintf(b, `<text x="15" y="%d" font-size="12" text-anchor="middle" transform="rotate(-90 15 %d)">%s</text>`,
		(chartH-padB+padT)/2, (chartH-padB+padT)/2, html.EscapeString(yLabel))
}

func yTicks(b *strings.Builder, top float64, py func(float64) float64, format string) {
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		y := py(v)
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>`,
			padL, y, chartW-padR, y, padL-5, y+4, fmt.Sprintf(format, v))
	}
}

func polyline(b *strings.Builder, name, color string, xs, ys []float64, px, py func(float64) float64) {
	var pts strings.Builder
	for i := range xs {
		fmt.Fprintf(&pts, "%.1f,%.1f ", px(xs[i]), py(ys[i]))
	}
	fmt.Fprintf(b, `<polyline class="series" data-function="%s" fill="none" stroke="%s" stroke-width="2" points="%s"/>`,
		html.EscapeString(name), color, strings.TrimSpace(pts.String()))
}

func legend(b *strings.Builder, r *Report) {
	for i, f := range r.Functions {
		y := padT + 10 + i*18
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d" font-size="12">%s</text>`,
			chartW-padR-200, y-10, color(i), chartW-padR-182, y, html.EscapeString(f.Name))
	}
}
