// Package runtime runs consent functions compiled to WebAssembly in wazero
// sandboxes.
//
// An [Engine] holds what functions share: the compilation cache (in memory,
// and on disk when a directory is configured). [Engine.Load] compiles one
// version of a function, checks it against the ABI (package abi of the SDK),
// starts a first instance and returns a [Function]. A Function keeps a
// bounded pool of instances; [Function.Invoke] borrows one for one event.
//
// # JavaScript functions
//
// A function may also be a Segment function file ([Options].Language
// [JavaScript]): handlers such as async onTrack(event, settings) that
// return the event or throw DropEvent and Segment's other error classes.
// It runs in QuickJS-ng, compiled to WebAssembly and embedded in the binary
// (runtime/internal/quickjs; make js-engine fetches it), compiled once per
// Engine through its compilation cache. Its instances live in the same
// pool, memory budget and watchdog as a module's, its failures are the same
// [ErrorKind]s, and its insertfn.consent.lookup and compare are the host
// calls the SDKs' consent functions make. A binary built without the
// engine refuses JavaScript functions with [ErrNoJSEngine].
//
// # What a guest can do
//
// Only what package abi offers: read and change the host's copy of the event
// (gjson and sjson run on the host), look stored consent up and compare it
// with the event's, read its settings, log, and return a verdict. It has no
// filesystem, no network, no environment variables and no arguments; its
// stdout and stderr go to the event's logs; its clocks are real and its
// random source is crypto/rand.
//
// # Limits and failures
//
// Each Function has [Limits]: memory pages, time per event, the event's size
// after changes, log bytes per event, pool size and a memory high-water mark.
// A trap, a timeout, memory exhaustion, a guest exit (a Go panic that the SDK
// did not catch), an ABI violation (a bad pointer or length) or a broken
// limit becomes an [*Error] for that event. The instance that failed is
// thrown away and replaced on demand; other events and functions go on.
//
// An instance's linear memory is mapped outside the Go heap (its cap
// reserved, pages committed as it grows, unmapped when it closes), and the
// Engine's memory budget ([Config].MemoryBudget) bounds all instances of
// all functions together, each counted at its cap. A module is checked
// against [ModuleLimits] before it is compiled.
//
// # Time limits
//
// Every module is instrumented at load (package runtime/internal/loopcheck)
// so that each loop iteration checks a fuel counter, and every 10 000
// iterations an interrupt flag the Engine's watchdog sets when a call
// overruns its limit. A call costs no goroutine, timer, lock or clock read
// for its limit; see RATIONALE.md.
//
// # Hot path
//
// Invoke allocates nothing for an event that is delivered unchanged or
// dropped for a reason seen before (see the benchmarks in bench/).
package runtime
