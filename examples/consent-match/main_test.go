package main

import (
	"testing"

	"github.com/insertfn/insertfn/internal/testkit/exampletest"
	"github.com/insertfn/insertfn/internal/testkit/exampletest/consentmatch"
)

// TestNative and TestWasm run consentmatch.Table: the cases that the C and
// AssemblyScript versions of this function run too.
func TestNative(t *testing.T) { exampletest.Native(t, Handlers, consentmatch.Table) }

func TestWasm(t *testing.T) { exampletest.Wasm(t, ".", consentmatch.Table) }
