package consentmatch_test

import (
	"testing"

	"github.com/insertfn/insertfn/internal/testkit/exampletest"
	"github.com/insertfn/insertfn/internal/testkit/exampletest/consentmatch"
)

// The Go example runs the table in its own test (examples/consent-match);
// the examples in other languages, which hold no Go, run it here.

// TestC builds examples/consent-match-c (main.c) with its Makefile rule
// and runs the table through it in the runtime: the Go example's verdicts
// and reasons on every case.
func TestC(t *testing.T) {
	exampletest.Module(t, "consent-match-c", exampletest.Make(t, "consent-match-c"), consentmatch.Table)
}

// TestAssemblyScript builds examples/consent-match-as (index.ts) with its
// Makefile rule and runs the table through it in the runtime.
func TestAssemblyScript(t *testing.T) {
	exampletest.Module(t, "consent-match-as", exampletest.Make(t, "consent-match-as"), consentmatch.Table)
}
