package quickjs

import (
	"embed"
	"errors"
	"io/fs"
)

// engineFiles is the directory make js-engine fills from npm. It always
// holds a committed README, so that a build without the engine compiles.
//
//go:embed engine/dist
var engineFiles embed.FS

// engineWasmPath is the engine's module in engineFiles.
const engineWasmPath = "engine/dist/emscripten-module.wasm"

// ErrNoEngine is the error of [EngineWasm] in a binary built without the
// engine.
var ErrNoEngine = errors.New("quickjs: this binary was built without the JavaScript engine: run `make js-engine` (it fetches the engine from npm into runtime/internal/quickjs/engine/dist/), then build again (make build does both)")

// EngineWasm returns the engine's WebAssembly module as emscripten built it,
// embedded in the binary.
//
// # Results
//   - the module's bytes, shared: do not change them;
//   - [ErrNoEngine] when the binary was built without it.
func EngineWasm() ([]byte, error) {
	b, err := engineFiles.ReadFile(engineWasmPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoEngine
	}
	return b, err
}
