package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/insertfn/insertfn/consentstore"
	"github.com/insertfn/insertfn/consentstore/boltstore"
)

// TEMPORARY until consentstore/storeconfig lands.
const defaultDataDirDoc = "data/consent"

// storeFlags are the flags that choose the consent store.
type storeFlags struct {
	config, backend, dataDir, redisAddr, consentURL string
}

func (f *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "")
	fs.StringVar(&f.backend, "backend", "", "")
	fs.StringVar(&f.dataDir, "data-dir", "", "")
	fs.StringVar(&f.redisAddr, "redis-addr", "", "")
	fs.StringVar(&f.consentURL, "consent-url", "", "")
}

// configError is a configuration the store cannot be opened with.
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

func (f *storeFlags) open(ctx context.Context) (*consentstore.Store, error) {
	dir := f.dataDir
	if dir == "" {
		dir = "data/consent"
	}
	switch f.backend {
	case "", "embedded":
		b, err := boltstore.Open(dir, boltstore.Options{})
		if err != nil {
			return nil, err
		}
		return consentstore.New(b, consentstore.Options{}), nil
	}
	return nil, &configError{fmt.Errorf("unknown backend %q", f.backend)}
}
