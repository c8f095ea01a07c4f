//go:build !wasip1

package sdk

// Handle registers the function's handlers. Call it from the function's
// init. Outside WebAssembly it does nothing: native tests run handlers with
// package sdktest.
func Handle(h Handlers) {}
