package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/insertfn/insertfn/internal/config"
	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/consentstore/boltstore"
	"github.com/insertfn/insertfn/internal/consentstore/storeconfig"
)

// storeFlags are the flags that choose the consent store: the server's
// configuration file and the overrides of its consent section.
type storeFlags struct {
	config, backend, dataDir, redisAddr, consentURL string

	// reads: the subcommand only reads, so an embedded store that does
	// not exist yet is a mistyped path, not one to create.
	reads bool

	opened string // the backend open opened
}

func (f *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "")
	fs.StringVar(&f.backend, "backend", "", "")
	fs.StringVar(&f.dataDir, "data-dir", "", "")
	fs.StringVar(&f.dataDir, "data", "", "") // as 'insertfn serve' spells it
	fs.StringVar(&f.redisAddr, "redis-addr", "", "")
	fs.StringVar(&f.consentURL, "consent-url", "", "")
}

// configError is a configuration or flags the store cannot be opened with:
// bad usage, exit status 2.
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// storeConfig returns the consent store's configuration as the server
// resolves it (config.Load, then Config.ConsentStore), with the flags
// applied over it:
//
//   - --data-dir is the server's data directory; the embedded store lives
//     in its consent subdirectory unless the file's consent.dir says
//     otherwise (as for the server);
//   - --redis-addr (host:port, or several separated by commas) and
//     --consent-url set the redis and http sections, and choose that
//     backend when --backend is not given.
func (f *storeFlags) storeConfig() (storeconfig.Config, error) {
	var sc storeconfig.Config
	if f.config != "" {
		c, err := config.Load(f.config)
		if err != nil {
			return sc, &configError{fmt.Errorf("%w\n(the consent commands read the server's configuration file; fix it, or pass the store with --backend, --data-dir, --redis-addr or --consent-url instead of --config)", err)}
		}
		if f.dataDir != "" {
			c.Data = f.dataDir
		}
		sc = c.ConsentStore()
	} else {
		dataDir := f.dataDir
		if dataDir == "" {
			dataDir = config.DefaultData
		}
		sc.Dir = filepath.Join(dataDir, "consent")
	}

	backend := f.backend
	if f.redisAddr != "" {
		var addrs []string
		for _, a := range strings.Split(f.redisAddr, ",") {
			addrs = append(addrs, strings.TrimSpace(a))
		}
		sc.Redis.Addrs = addrs
	}
	if f.consentURL != "" {
		sc.HTTP.URL = f.consentURL
	}
	if backend == "" {
		switch {
		case f.redisAddr != "" && f.consentURL != "":
			return sc, &configError{errors.New("--redis-addr and --consent-url name two backends: say which with --backend redis or --backend http")}
		case f.redisAddr != "":
			backend = storeconfig.Redis
		case f.consentURL != "":
			backend = storeconfig.HTTP
		}
	}
	if backend != "" {
		sc.Backend = backend
	}
	if err := sc.Validate(); err != nil {
		return sc, &configError{fmt.Errorf("consent store configuration: %w", err)}
	}
	return sc, nil
}

// open opens the store the configuration and flags name.
func (f *storeFlags) open(ctx context.Context) (*consentstore.Store, error) {
	sc, err := f.storeConfig()
	if err != nil {
		return nil, err
	}
	if d := sc.WithDefaults(); f.reads && d.Backend == storeconfig.Embedded {
		if _, err := os.Stat(filepath.Join(d.Dir, boltstore.FileName)); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("consent store: there is no store in %s: is --data right? (the server keeps its store in DATA/consent; 'insertfn consent set' or 'import' creates one)", d.Dir)
		}
	}
	s, err := sc.Open(ctx)
	f.opened = sc.WithDefaults().Backend
	if err != nil {
		if strings.Contains(err.Error(), "locked by another process") {
			err = fmt.Errorf("%w\n(only one process may have the embedded store open: stop 'insertfn serve' on this data directory first, or give another --data)", err)
		}
		return nil, err
	}
	return s, nil
}
