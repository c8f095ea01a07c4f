package cost

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteJSON writes the report as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report as tables a person reads.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	m, s := r.Machine, r.Settings
	fmt.Fprintf(w, "insertfn bench: %s\n", s.Workload)
	fmt.Fprintf(w, "%s/%s, %d CPUs (GOMAXPROCS %d)%s, %s; %d rounds, %s per function\n\n",
		m.GOOS, m.GOARCH, m.CPUs, m.GOMAXPROCS, optional(", ", m.CPUModel), m.GoVersion, s.Rounds, time.Duration(s.DurationNS))

	fmt.Fprintln(tw, "function\tevents\tmean\tp50\tp90\tp99\tallocs/event\tdelivered\tdropped\terrors\t")
	for _, f := range r.Functions {
		l := f.Latency
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%.2f\t%d\t%d\t%d\t\n", f.Name, f.Events, ns(l.MeanNS), ns(float64(l.P50NS)),
			ns(float64(l.P90NS)), ns(float64(l.P99NS)), f.AllocsPerEvent, f.Verdicts.Delivered, f.Verdicts.DroppedTotal(), f.Verdicts.ErrorsTotal())
	}
	fmt.Fprintln(tw, "\t")
	head := "throughput (events/s)"
	for _, n := range s.Concurrency {
		head += fmt.Sprintf("\t×%d", n)
	}
	fmt.Fprintln(tw, head+"\t")
	for _, f := range r.Functions {
		line := f.Name
		for _, t := range f.Throughput {
			line += fmt.Sprintf("\t%.0f", t.EventsPerSecond)
		}
		fmt.Fprintln(tw, line+"\t")
	}
	fmt.Fprintln(tw, "\t")
	fmt.Fprintln(tw, "start and size\twasm\tno cache\tdisk cache\tin memory\tmemory/instance\tinstances\t")
	for _, f := range r.Functions {
		c := f.ColdStart
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", f.Name, bytesText(int64(f.WasmBytes)), ns(float64(c.NoCacheNS)),
			ns(float64(c.DiskCacheNS)), ns(float64(c.InMemoryNS)), bytesText(f.Memory.InstanceBytes), f.Memory.Instances)
	}
	fmt.Fprintln(tw, "\t")
	fmt.Fprintln(tw, "cost per million events\tGB-s\tcompute\trequests\ttotal\tas Lambda bills\t")
	for _, f := range r.Functions {
		c := f.Cost
		fmt.Fprintf(tw, "%s\t%.4f\t%s\t%s\t%s\t%s\t\n", f.Name, c.GBSeconds, money(c.Compute), money(c.Requests), money(c.Total), money(c.LambdaBilled))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nprices: $%s per GB-second, $%s per million requests; memory/instance by %s\n",
		strconv.FormatFloat(s.Prices.GBSecond, 'f', -1, 64), strconv.FormatFloat(s.Prices.PerMillionRequests, 'f', -1, 64), methods(r))
	for _, f := range r.Functions {
		if len(f.Verdicts.Dropped)+len(f.Verdicts.Errors) == 0 {
			continue
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(f.Verdicts.Dropped)) {
			parts = append(parts, fmt.Sprintf("dropped %q %d", k, f.Verdicts.Dropped[k]))
		}
		for _, k := range slices.Sorted(maps.Keys(f.Verdicts.Errors)) {
			parts = append(parts, fmt.Sprintf("error %s %d", k, f.Verdicts.Errors[k]))
		}
		fmt.Fprintf(w, "%s: %s\n", f.Name, strings.Join(parts, ", "))
		if f.Verdicts.FirstError != "" {
			fmt.Fprintf(w, "%s: first error: %s\n", f.Name, f.Verdicts.FirstError)
		}
	}
	return nil
}

func methods(r *Report) string {
	var ms []string
	for _, f := range r.Functions {
		if !slices.Contains(ms, f.Memory.Method) {
			ms = append(ms, f.Memory.Method)
		}
	}
	return strings.Join(ms, ", ")
}

func optional(sep, s string) string {
	if s == "" {
		return ""
	}
	return sep + s
}

// money formats dollars with three significant digits, in plain decimals.
func money(v float64) string {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return "$0"
	}
	digits := max(2, 2-int(math.Floor(math.Log10(v))))
	return fmt.Sprintf("$%.*f", digits, v)
}

// ns formats nanoseconds with a unit.
func ns(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2fs", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.1fms", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.2fµs", v/1e3)
	}
	return fmt.Sprintf("%.0fns", v)
}

func bytesText(b int64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}
