package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/insertfn/insertfn/internal/admin"
	"github.com/insertfn/insertfn/internal/atomicfile"
	"github.com/insertfn/insertfn/internal/cluster"
	"github.com/insertfn/insertfn/internal/pipeline"
	"github.com/insertfn/insertfn/internal/pipeline/destfilter"
)

// filterStore is the admin API's [admin.FilterStore] over the processor.
// Filters set through the API are kept in DATA/filters/{destination}.json
// and win over the configuration's at the next start, as versions
// deployed through the API win over the configuration's functions: what
// an operator changed on a running server outlives its restarts, until
// ResetFilters gives the configuration back its say.
type filterStore struct {
	dir    string
	proc   *pipeline.Processor
	config map[string][]destfilter.Filter // the configuration's, by destination
	log    *slog.Logger
	mu     sync.Mutex              // one change at a time: the file and the processor agree
	pub    cluster.FilterPublisher // in a cluster: the other hosts (s.mu)
}

// savedFilters is the content of a destination's file.
type savedFilters struct {
	Destination string              `json:"destination"`
	Updated     time.Time           `json:"updated"`
	Filters     []destfilter.Filter `json:"filters"`
}

// newFilterStore returns the store of the destinations' filters in dir,
// and applies the filters kept there over the configuration's. A file
// that cannot be read or whose filters no longer compile (a newer
// insertfn's, a hand edit) is logged and the configuration's filters
// apply; nothing is deleted.
func newFilterStore(dir string, proc *pipeline.Processor, dests []pipeline.Destination, log *slog.Logger) (*filterStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("destination filters: %w", err)
	}
	s := &filterStore{dir: dir, proc: proc, config: make(map[string][]destfilter.Filter), log: log}
	for _, d := range dests {
		s.config[d.Name] = slices.Clone(d.Filters)
		path := s.path(d.Name)
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		var saved savedFilters
		if err == nil {
			err = json.Unmarshal(b, &saved)
		}
		if err == nil {
			err = proc.SetFilters(d.Name, saved.Filters)
		}
		if err != nil {
			log.Error("destination filters set through the admin API cannot be used: the configuration's apply (set them again, or DELETE /admin/destinations/{name}/filters to keep the configuration's)",
				"destination", d.Name, "file", path, "err", err)
			continue
		}
		log.Info("destination filters: the ones set through the admin API apply, not the configuration's",
			"destination", d.Name, "filters", len(saved.Filters), "set", saved.Updated.Format(time.RFC3339), "file", path)
	}
	return s, nil
}

// path returns the file of destination's filters.
func (s *filterStore) path(destination string) string {
	return filepath.Join(s.dir, url.PathEscape(destination)+".json") // no separator, whatever the name
}

// Filters implements admin.FilterStore.
func (s *filterStore) Filters(destination string) ([]destfilter.Filter, bool) {
	return s.proc.Filters(destination)
}

// SetFilters implements admin.FilterStore: in a cluster, published to
// the other hosts first; then the file (written whole, then renamed over
// the old one), then the processor.
func (s *filterStore) SetFilters(ctx context.Context, destination string, filters []destfilter.Filter) error {
	return s.set(ctx, destination, filters, true)
}

// ApplyFilters implements cluster.FilterHost: SetFilters without
// publishing.
func (s *filterStore) ApplyFilters(ctx context.Context, destination string, filters []destfilter.Filter) error {
	return s.set(ctx, destination, filters, false)
}

func (s *filterStore) set(ctx context.Context, destination string, filters []destfilter.Filter, publish bool) error {
	if _, err := destfilter.Compile(filters); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.proc.Filters(destination); !ok {
		return fmt.Errorf("%w %q", pipeline.ErrUnknownDestination, destination)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if publish && s.pub != nil {
		if err := s.pub.PublishFilters(ctx, destination, filters); err != nil {
			return err
		}
	}
	path := s.path(destination)
	old, readErr := os.ReadFile(path)
	b, err := json.MarshalIndent(savedFilters{Destination: destination, Updated: time.Now().UTC(), Filters: filters}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the filters: %w", err)
	}
	if err := atomicfile.Write(path, append(b, '\n')); err != nil {
		return fmt.Errorf("saving %s: %w", path, err)
	}
	if err := s.proc.SetFilters(destination, filters); err != nil {
		// Checked above, so not expected; put the file back as it was.
		if readErr == nil {
			atomicfile.Write(path, old)
		} else {
			os.Remove(path)
		}
		return err
	}
	return nil
}

// ResetFilters implements admin.FilterStore: in a cluster, published to
// the other hosts first.
func (s *filterStore) ResetFilters(ctx context.Context, destination string) error {
	return s.reset(ctx, destination, true)
}

// ApplyReset implements cluster.FilterHost: ResetFilters without
// publishing.
func (s *filterStore) ApplyReset(ctx context.Context, destination string) error {
	return s.reset(ctx, destination, false)
}

func (s *filterStore) reset(ctx context.Context, destination string, publish bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, ok := s.config[destination]; !ok {
		return fmt.Errorf("%w %q", pipeline.ErrUnknownDestination, destination)
	}
	if publish && s.pub != nil {
		if err := s.pub.PublishReset(ctx, destination); err != nil {
			return err
		}
	}
	if err := os.Remove(s.path(destination)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the filters set through the admin API: %w", err)
	}
	return s.proc.SetFilters(destination, s.config[destination])
}

// SetFilterPublisher implements cluster.FilterHost.
func (s *filterStore) SetFilterPublisher(p cluster.FilterPublisher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pub = p
}

var (
	_ admin.FilterStore  = (*filterStore)(nil)
	_ cluster.FilterHost = (*filterStore)(nil)
)
