package consentstore_test

import (
	"testing"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/consentstore/storetest"
)

func TestMemorySuite(t *testing.T) {
	storetest.Run(t, storetest.Backends{
		Open: func(t *testing.T) (read, write consentstore.Backend) {
			m := consentstore.NewMemory()
			return m, m
		},
	})
}
