// Command escape is a hostile guest for the runtime's tests: it tries to
// reach outside its sandbox (the host's files, its environment, the
// network) and writes what each attempt got into the event, under
// "escape", for the test to check that every one failed.
package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/insertfn/insertfn/sdk"
)

func init() { sdk.Handle(sdk.Handlers{Any: escape}) }

func main() {}

// escape makes each attempt named in the event: the file to read, the
// directory to list, the file to create, the variable to read and the
// address to dial.
func escape(e *sdk.Event) error {
	try := func(name string, f func() (string, error)) {
		got, err := f()
		if err != nil {
			got = "error: " + err.Error()
		}
		if err := e.Set("escape."+name, got); err != nil {
			panic(err)
		}
	}
	try("read", func() (string, error) {
		b, err := os.ReadFile(e.Get("read").String())
		return string(b), err
	})
	try("list", func() (string, error) {
		entries, err := os.ReadDir(e.Get("list").String())
		names := make([]string, len(entries))
		for i, en := range entries {
			names[i] = en.Name()
		}
		return strings.Join(names, ","), err
	})
	try("create", func() (string, error) {
		return "created", os.WriteFile(e.Get("create").String(), []byte("escaped"), 0o644)
	})
	try("env", func() (string, error) {
		return os.Getenv(e.Get("env").String()) + strings.Join(os.Environ(), ","), nil
	})
	try("dial", func() (string, error) {
		c, err := net.DialTimeout("tcp", e.Get("dial").String(), time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		fmt.Fprintln(c, "escaped")
		return "connected", nil
	})
	return nil
}
