// Command empty-sdk is a function that delivers every event untouched: the
// cost of a call into the sandbox through the SDK.
package main

import "github.com/insertfn/insertfn/sdk"

func init() { sdk.Handle(sdk.Handlers{Any: func(*sdk.Event) error { return nil }}) }

func main() {}
