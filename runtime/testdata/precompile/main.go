// Command precompile fills an insertfn compilation cache directory with the
// compiled code of the wasm files it is given, each loaded through
// runtime.Engine.Load exactly as the tests load them.
//
//	precompile CACHEDIR FILE.wasm...
//
// The runtime's tests run it before they load their guests when the test
// binary is built with the race detector: wazero's compiler, instrumented
// by -race, takes many seconds per Go guest, while this plain build
// compiles them all in a few. The tests then load from the cache. A module
// that Load refuses after compiling it (a bad ABI version, a failing
// start-up, a missing export) is still compiled and cached; such refusals
// are not errors here.
package main

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/insertfn/insertfn/runtime"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: precompile CACHEDIR FILE.wasm...")
		os.Exit(2)
	}
	eng, err := runtime.NewEngine(runtime.Config{CacheDir: os.Args[1]})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, path := range os.Args[2:] {
		wg.Go(func() {
			wasm, err := os.ReadFile(path)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			f, err := eng.Load(ctx, wasm, runtime.Options{Name: path})
			if err != nil {
				fmt.Fprintf(os.Stderr, "precompile: %s refused after compilation (expected for some test guests): %v\n", path, err)
				return
			}
			_ = f.Close(ctx)
		})
	}
	wg.Wait()
	if err := eng.Close(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
