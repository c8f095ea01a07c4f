// Package quickjs runs Segment's JavaScript functions in QuickJS-ng,
// compiled to WebAssembly by emscripten and run by wazero, under the
// runtime's limits.
//
// The engine is the npm package @jitl/quickjs-ng-wasmfile-release-sync,
// pinned by engine/package-lock.json and fetched by `make js-engine` into
// engine/dist/, which is embedded ([EngineWasm]). A binary built without it
// compiles; [Compile] then returns [ErrNoEngine], which names the make
// target.
//
// [Compile] prepares the engine once: its imported memory becomes one the
// module defines (each instance's allocator enforces its cap), and
// runtime/internal/loopcheck instruments it, so that raising its interrupt
// flag stops the engine within a few microseconds, in JavaScript or in its
// C code. The host supplies emscripten's imports (host.go): no file,
// network, environment or timer.
//
// An [Instance] is one JavaScript runtime and context: it evaluates a
// prelude (Segment's error classes and console), the function's file and a
// bind script once, then [Instance.Handle] calls the handler for each
// event's type. The event stays on the host, as it does for Go functions
// (RATIONALE.md): the handler's event is a lazy proxy whose property reads
// are host calls (gjson on the host's copy); whatever needs a whole object
// (a write, Object.keys, JSON.stringify) parses the event once in
// JavaScript. An event the handler did not change flows on as the host's
// bytes; a changed one is written back by JSON.stringify.
//
// Beside the event, JavaScript reaches the host's consent store through
// insertfn.consent.lookup(id) and insertfn.consent.compare(id) (id absent,
// or the event: the event's own ids), answered by the instance's [Host]
// (the runtime's hostcall.Call, which the SDKs' functions call too): the
// record ({status, categories, purposes}) or the comparison ({status,
// mismatch, categoryMismatch, purposeMismatch, differences}), with no HTTP
// call. prelude.js documents the shapes and statuses.
//
// A failure (time limit, memory cap, trap) is a [*Failure] and leaves the
// instance unusable: close it and start another. An exception of the
// handler is a verdict, as the Go SDK maps its errors.
package quickjs
