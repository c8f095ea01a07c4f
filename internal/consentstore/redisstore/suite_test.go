package redisstore_test

import (
	"testing"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/consentstore/storetest"
)

func TestSuite(t *testing.T) {
	storetest.Run(t, storetest.Backends{
		Open: func(t *testing.T) (read, write consentstore.Backend) {
			s := open(t, freshConfig(t))
			return s, s
		},
		// Two hosts: two clients on one server and prefix.
		Pair: func(t *testing.T) (a, b consentstore.Backend) {
			cfg := freshConfig(t)
			return open(t, cfg), open(t, cfg)
		},
	})
}
