package bench

import (
	"context"
	"testing"

	"github.com/insertfn/insertfn/sdk/hostcall"
)

func BenchmarkProbeHostCompare(b *testing.B) {
	events, records, _ := workload()
	var c hostcall.Call
	buf := make([]byte, 512)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Reset(context.Background(), events[i%users], records, nil, hostcall.Limits{})
		c.Doc.Type()
		c.ConsentCompare("", buf)
		i++
	}
}
