package bench

import (
	"context"
	"testing"

	"github.com/insertfn/insertfn/sdk/hostcall"
)

// BenchmarkHostCompare is the host's share of a consent-match call: the
// consent comparison of package hostcall on the same events, with no guest.
// Compare it with BenchmarkConsentMatch/native.
func BenchmarkHostCompare(b *testing.B) {
	events, records, _ := runtimeWorkload()
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
