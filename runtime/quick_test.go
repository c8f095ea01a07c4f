package runtime

import (
	"context"
	"os"
	"testing"

	"github.com/insertfn/insertfn/sdk/consent"
)

type mapStore map[string]*consent.Record

func (m mapStore) Get(_ context.Context, id string) (*consent.Record, error) {
	if r, ok := m[id]; ok {
		return r, nil
	}
	return nil, consent.ErrNotFound
}

func TestQuick(t *testing.T) {
	wasm, err := os.ReadFile("/tmp/cm.wasm")
	if err != nil {
		t.Skip(err)
	}
	e, _ := NewEngine(Config{})
	st := mapStore{"u1": &consent.Record{ID: "u1", Categories: []consent.Category{{Name: "Advertising", Consented: true}, {Name: "Analytics", Consented: false}}}}
	f, err := e.Load(context.Background(), wasm, Options{Name: "cm", Store: st})
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	for _, ev := range []string{
		`{"type":"track","userId":"u1","event":"x","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false}}}}`,
		`{"type":"track","userId":"u1","event":"x","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":true}}}}`,
		`{"type":"track","userId":"u2","event":"x","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":true}}}}`,
	} {
		err := f.Invoke(context.Background(), []byte(ev), &res)
		t.Logf("err=%v verdict=%v kind=%v reason=%q dur=%v logs=%v", err, res.Verdict, res.Kind, res.Reason, res.Duration, res.Logs)
	}
	t.Logf("%+v", f.Stats())
}

func BenchmarkQuick(b *testing.B) {
	wasm, _ := os.ReadFile("/tmp/cm.wasm")
	e, _ := NewEngine(Config{})
	st := mapStore{"u1": &consent.Record{ID: "u1", Categories: []consent.Category{{Name: "Advertising", Consented: true}, {Name: "Analytics", Consented: false}}}}
	f, err := e.Load(context.Background(), wasm, Options{Name: "cm", Store: st})
	if err != nil {
		b.Fatal(err)
	}
	ev := []byte(`{"type":"track","userId":"u1","event":"x","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false}}}}`)
	var res Result
	b.ReportAllocs()
	for b.Loop() {
		if err := f.Invoke(context.Background(), ev, &res); err != nil {
			b.Fatal(err)
		}
	}
}
