package quickjs

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/tetratelabs/wazero"
)

// testModule compiles the engine once for the package's tests, through a
// compilation cache on disk shared by the test runs (the engine takes
// seconds to compile, under -race much longer).
var testModule = sync.OnceValues(func() (*Module, error) {
	cache, err := wazero.NewCompilationCacheWithDir(cacheDir())
	if err != nil {
		return nil, err
	}
	return Compile(context.Background(), cache)
})

func cacheDir() string {
	return strings.TrimSuffix(tempRoot(), "/") + "/insertfn-quickjs-test-cache"
}

func module(t testing.TB) *Module {
	t.Helper()
	m, err := testModule()
	if errors.Is(err, ErrNoEngine) {
		t.Fatalf("%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var testLimits = Limits{MemoryPages: 512, MaxLogBytes: 4096, MaxEventBytes: 1 << 20}

func load(t testing.TB, code string, settings string) *Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inst, err := module(t).NewInstance(ctx, Source{Name: "fn.js", Code: []byte(code), Settings: []byte(settings)}, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close(context.Background()) })
	return inst
}

func handle(t testing.TB, inst *Instance, event string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := inst.Handle(ctx, []byte(event))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestSmoke(t *testing.T) {
	inst := load(t, `async function onTrack(event, settings) { event.seen = settings.k; console.log("hi", 1); return event }`, `{"k":"v"}`)
	res := handle(t, inst, `{"type":"track","event":"A"}`)
	if res.Verdict != abi.ResultDeliver || string(res.Event) != `{"type":"track","event":"A","seen":"v"}` {
		t.Fatalf("%+v %s", res, res.Event)
	}
	t.Logf("%+v, memory %d", res, inst.MemorySize())
}
