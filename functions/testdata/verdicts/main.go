// Command verdicts returns the verdict its event asks for in "verdict":
// deliver, drop, retry, retry-once (a RetryError, then deliver on the next
// attempt), invalid, error, panic, sleep (blocks for "ms" milliseconds).
package main

import (
	"errors"
	"time"

	"github.com/insertfn/insertfn/sdk"
)

var retried = map[string]bool{}

func init() {
	sdk.Handle(sdk.Handlers{Any: func(e *sdk.Event) error {
		switch v := e.Get("verdict").String(); v {
		case "drop":
			return sdk.DropEvent("asked to drop")
		case "retry":
			return sdk.RetryError("asked to retry")
		case "retry-once":
			id := e.MessageID()
			if !retried[id] {
				retried[id] = true
				return sdk.RetryError("first attempt")
			}
		case "invalid":
			return sdk.InvalidEventPayload("asked to reject")
		case "error":
			return errors.New("asked to fail")
		case "panic":
			panic("asked to panic")
		case "sleep":
			time.Sleep(time.Duration(e.Get("ms").Int()) * time.Millisecond)
		}
		return e.Set("properties.version", e.Settings().String("version"))
	}})
}

func main() {}
