package functions

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/insertfn/insertfn/internal/atomicfile"
	"github.com/insertfn/insertfn/runtime"
)

// Errors of a [VersionStore], to be tested with errors.Is.
var (
	// ErrNoVersion: the function has no stored version with that hash.
	ErrNoVersion = errors.New("functions: no such version")
	// ErrNoPrevious: a rollback of a function that has no previous
	// version to go back to.
	ErrNoPrevious = errors.New("functions: no previous version to roll back to")
)

// RefusedError is the error of a version the registry refused: it did
// not compile, failed the ABI check, trapped during start-up, or its
// manifest is invalid. The version already active stays active. Err says
// why.
type RefusedError struct{ Err error }

func (e *RefusedError) Error() string { return e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

// VersionInfo describes one stored version of a function.
type VersionInfo struct {
	// Name is the function's name.
	Name string `json:"name"`
	// Hash is the hex SHA-256 of the wasm: the version's identifier.
	Hash string `json:"hash"`
	// Size is the wasm's size in bytes.
	Size int `json:"size"`
	// UploadedAt is when this wasm was last saved.
	UploadedAt time.Time `json:"uploaded_at"`
	// Active says whether this is the version recorded as active.
	Active bool `json:"active"`
	// Manifest is the manifest saved with the wasm; its Wasm is the
	// file's name in the function's directory.
	Manifest Manifest `json:"manifest"`
	// Unchanged is set in what [VersionStore.Deploy] returns when the
	// version was already live with the same manifest: nothing was
	// deployed, saved or recorded.
	Unchanged bool `json:"unchanged,omitempty"`
}

// VersionStore keeps the versions of functions in a directory, so that
// what the admin API deploys survives a restart, and makes them live
// through a [Registry]. Its layout, one directory per function:
//
//	DIR/NAME/HASH.wasm    the module
//	DIR/NAME/HASH.json    {"manifest": ..., "size": ..., "uploaded_at": ...}
//	DIR/NAME/active.json  {"active": {"hash", "manifest"}, "previous": ..., "activated_at": ...}
//
// Every file is written atomically (a temporary file, fsync, rename,
// fsync of the directory): a crash leaves the old file or the new one.
// active.json keeps the manifest that went live along with the hash, so a
// rollback restores exactly what ran before, settings included, even when
// the same wasm was uploaded since with other settings (HASH.json holds
// the manifest of the latest upload of that wasm).
//
// Each operation that changes what is live (Deploy, Activate, Rollback,
// Delete) goes through the Registry first, and is recorded only once the
// registry took it: a refused version leaves both the registry and the
// files as they were. A VersionStore is safe for concurrent use; changes
// are serialised.
type VersionStore struct {
	dir string
	reg *Registry
	now func() time.Time
	mu  sync.Mutex // serialises changes, so the registry and the files agree
	pub Publisher  // nil: nobody else is told
}

// Publisher is told what a VersionStore's methods made live or deleted,
// so that the other hosts of a cluster make the same change (they call
// [VersionStore.Apply] and [VersionStore.ApplyDelete], which tell it
// nothing).
type Publisher interface {
	// Live is told that wasm (of hash), with manifest m, is now the live
	// version of function m.Name.
	Live(ctx context.Context, m Manifest, hash string, wasm []byte) error
	// Deleted is told that the function is gone.
	Deleted(ctx context.Context, name string) error
}

// SetPublisher makes p hear of every change made through Deploy,
// Activate, Rollback and Delete. Set it before the store is used.
func (s *VersionStore) SetPublisher(p Publisher) {
	s.mu.Lock()
	s.pub = p
	s.mu.Unlock()
}

// published reports a publisher's failure: the change is made here, not
// elsewhere.
func published(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("functions: %s changed on this host, but the other hosts could not be told (repeat the change): %w", name, err)
}

// publishLive tells the publisher, if any, that info is live.
func (s *VersionStore) publishLive(ctx context.Context, info VersionInfo, wasm []byte) error {
	if s.pub == nil {
		return nil
	}
	if wasm == nil {
		var err error
		if wasm, err = s.Wasm(info.Name, info.Hash); err != nil {
			return published(info.Name, err)
		}
	}
	return published(info.Name, s.pub.Live(ctx, info.Manifest, info.Hash, wasm))
}

// activeFile is the name of the file recording a function's active version.
const activeFile = "active.json"

// versionFile is the JSON stored beside a version's wasm.
type versionFile struct {
	Manifest   Manifest  `json:"manifest"`
	Size       int       `json:"size"`
	UploadedAt time.Time `json:"uploaded_at"`
}

// liveVersion is a version as active.json records it.
type liveVersion struct {
	Hash     string   `json:"hash"`
	Manifest Manifest `json:"manifest"`
}

// activeRecord is the content of active.json.
type activeRecord struct {
	Active      liveVersion  `json:"active"`
	Previous    *liveVersion `json:"previous,omitempty"`
	ActivatedAt time.Time    `json:"activated_at"`
}

// NewVersionStore returns a VersionStore over dir (created, mode 0700, if
// it does not exist) that makes versions live in reg.
func NewVersionStore(dir string, reg *Registry) (*VersionStore, error) {
	if reg == nil {
		return nil, errors.New("functions: versions: no registry")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("functions: versions: %w", err)
	}
	return &VersionStore{dir: dir, reg: reg, now: time.Now}, nil
}

// Dir returns the store's directory.
func (s *VersionStore) Dir() string { return s.dir }

// checkName refuses a name that could not be a function's (and so could
// name a path outside the store).
func checkName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("functions: name %q: use 1-128 letters, digits, '.', '-' or '_', starting with a letter or digit", name)
	}
	return nil
}

// checkHash refuses anything but a hex SHA-256.
func checkHash(hash string) error {
	if len(hash) != 64 {
		return fmt.Errorf("%w: %q is not a version hash (64 hex digits)", ErrNoVersion, hash)
	}
	if _, err := hex.DecodeString(hash); err != nil || strings.ToLower(hash) != hash {
		return fmt.Errorf("%w: %q is not a version hash (64 lowercase hex digits)", ErrNoVersion, hash)
	}
	return nil
}

// Save stores a version of a function without making it live: the wasm as
// NAME/HASH.wasm and the manifest with the time as NAME/HASH.json. Saving
// a wasm already stored replaces its manifest and upload time.
//
// # Parameters
//   - m: the manifest (validated here; its Wasm is ignored).
//   - wasm: the module's bytes, not compiled here (see [VersionStore.Deploy]).
//
// # Results
//   - the stored version;
//   - an error saying what was wrong with m or what failed to be written.
func (s *VersionStore) Save(m Manifest, wasm []byte) (VersionInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.save(m, wasm)
}

func (s *VersionStore) save(m Manifest, wasm []byte) (VersionInfo, error) {
	if err := m.Validate(); err != nil {
		return VersionInfo{}, &RefusedError{err}
	}
	if len(wasm) == 0 {
		return VersionInfo{}, &RefusedError{fmt.Errorf("functions: %s: empty module", m.Name)}
	}
	hash := runtime.Hash(wasm)
	m.Wasm = hash + ".wasm"
	dir := filepath.Join(s.dir, m.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return VersionInfo{}, fmt.Errorf("functions: save %s: %w", m.Name, err)
	}
	if err := atomicfile.SyncDir(s.dir); err != nil {
		return VersionInfo{}, fmt.Errorf("functions: save %s: %w", m.Name, err)
	}
	vf := versionFile{Manifest: m, Size: len(wasm), UploadedAt: s.now().UTC()}
	meta, err := json.Marshal(&vf)
	if err != nil {
		return VersionInfo{}, fmt.Errorf("functions: save %s: %w", m.Name, err)
	}
	wasmPath := filepath.Join(dir, m.Wasm)
	if old, err := os.ReadFile(wasmPath); err != nil || !bytes.Equal(old, wasm) {
		if err := atomicfile.Write(wasmPath, wasm); err != nil {
			return VersionInfo{}, fmt.Errorf("functions: save %s: %w", m.Name, err)
		}
	}
	if err := atomicfile.Write(filepath.Join(dir, hash+".json"), append(meta, '\n')); err != nil {
		return VersionInfo{}, fmt.Errorf("functions: save %s: %w", m.Name, err)
	}
	info := VersionInfo{Name: m.Name, Hash: hash, Size: len(wasm), UploadedAt: vf.UploadedAt, Manifest: m}
	if rec, err := s.readActive(m.Name); err == nil && rec != nil {
		info.Active = rec.Active.Hash == hash
	}
	return info, nil
}

// Deploy makes a new version of a function live and stores it: the
// registry compiles, checks and starts it first ([Registry.Deploy]); once
// it is live it is saved ([VersionStore.Save]) and recorded as active, the
// version it replaced becoming the previous one (what
// [VersionStore.Rollback] goes back to). A version stored before (an
// older one deployed again) is made live the same way, and the version
// it replaces becomes the previous one.
//
// Deploying the live version again, the same wasm with the same manifest
// (after [Manifest.Validate]), changes nothing: the running instances
// stay, the history keeps its previous version, and the version is
// returned with Unchanged set.
//
// # Results
//   - the version, now active (Unchanged when it already was);
//   - a *[RefusedError] when the registry refused it (the old version
//     stays live and recorded), or an error saying what failed to be
//     written: the old version is then made live again when it was
//     stored.
func (s *VersionStore) Deploy(ctx context.Context, m Manifest, wasm []byte) (VersionInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	info, err := s.deploy(ctx, m, wasm)
	if err == nil && !info.Unchanged {
		err = s.publishLive(ctx, info, wasm)
	}
	return info, err
}

// Apply is Deploy for a change another host of the cluster made: its
// Publisher is not told.
func (s *VersionStore) Apply(ctx context.Context, m Manifest, wasm []byte) (VersionInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deploy(ctx, m, wasm)
}

func (s *VersionStore) deploy(ctx context.Context, m Manifest, wasm []byte) (VersionInfo, error) {
	if err := m.Validate(); err != nil {
		return VersionInfo{}, &RefusedError{err}
	}
	prev, err := s.readActiveOrLive(m.Name)
	if err != nil {
		return VersionInfo{}, err
	}
	if info, ok := s.unchanged(prev, m, wasm); ok {
		return info, nil
	}
	if _, err := s.reg.Deploy(ctx, m, wasm); err != nil {
		return VersionInfo{}, &RefusedError{err}
	}
	info, err := s.save(m, wasm)
	if err == nil {
		err = s.recordActive(m.Name, prev, liveVersion{Hash: info.Hash, Manifest: info.Manifest})
	}
	if err != nil {
		return VersionInfo{}, s.restore(ctx, m.Name, prev, err)
	}
	info.Active = true
	return info, nil
}

// unchanged reports whether wasm with manifest m (validated) is what is
// live and recorded as active (prev), and if so returns its stored
// version, marked Unchanged.
func (s *VersionStore) unchanged(prev *activeRecord, m Manifest, wasm []byte) (VersionInfo, bool) {
	if len(wasm) == 0 || prev == nil {
		return VersionInfo{}, false
	}
	hash := runtime.Hash(wasm)
	m.Wasm = hash + ".wasm"
	if !sameLive(&prev.Active, &liveVersion{Hash: hash, Manifest: m}) {
		return VersionInfo{}, false
	}
	if live, err := s.reg.Active(m.Name); err != nil || live.Hash != hash {
		return VersionInfo{}, false
	}
	vf, err := s.readVersion(m.Name, hash)
	if err != nil {
		return VersionInfo{}, false // not stored after all: deploy it
	}
	return VersionInfo{Name: m.Name, Hash: hash, Size: vf.Size, UploadedAt: vf.UploadedAt, Active: true,
		Manifest: prev.Active.Manifest, Unchanged: true}, true
}

// restore makes the recorded active version live again after a change
// that went live failed to be recorded, and returns the error to report.
func (s *VersionStore) restore(ctx context.Context, name string, rec *activeRecord, cause error) error {
	if rec == nil {
		return fmt.Errorf("%w (the new version is live but not stored: it will not survive a restart)", cause)
	}
	if _, err := s.deployStored(ctx, name, rec.Active); err != nil {
		return fmt.Errorf("%w; restoring version %s failed too: %v", cause, rec.Active.Hash, err)
	}
	return fmt.Errorf("%w (version %s is live again)", cause, rec.Active.Hash)
}

// Activate makes a stored version of a function live again, with the
// manifest saved with it, and records it as active (the version it
// replaces becomes the previous one).
//
// # Results
//   - the version, now active;
//   - an error wrapping [ErrNoVersion] when there is no such version, a
//     *[RefusedError] when the registry refused it, or the I/O error.
func (s *VersionStore) Activate(ctx context.Context, name, hash string) (VersionInfo, error) {
	if err := checkName(name); err != nil {
		return VersionInfo{}, err
	}
	if err := checkHash(hash); err != nil {
		return VersionInfo{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, err := s.readActiveOrLive(name)
	if err != nil {
		return VersionInfo{}, err
	}
	vf, err := s.readVersion(name, hash)
	if err != nil {
		return VersionInfo{}, err
	}
	next := liveVersion{Hash: hash, Manifest: vf.Manifest}
	info, err := s.switchTo(ctx, name, prev, next, vf)
	if err == nil {
		err = s.publishLive(ctx, info, nil)
	}
	return info, err
}

// Rollback makes the previous version of a function live again, with the
// manifest it ran with; the version it replaces becomes the previous one,
// so a second Rollback undoes the first.
//
// # Results
//   - the version, now active;
//   - an error wrapping [ErrNotFound] for a function neither stored nor
//     live, [ErrNoPrevious] when there is nothing to roll back to, a
//     *[RefusedError] when the registry refused it, or the I/O error.
func (s *VersionStore) Rollback(ctx context.Context, name string) (VersionInfo, error) {
	if err := checkName(name); err != nil {
		return VersionInfo{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, err := s.readActive(name)
	if err != nil {
		return VersionInfo{}, err
	}
	if rec == nil {
		if _, err := s.reg.Active(name); err != nil {
			return VersionInfo{}, err // not live either: ErrNotFound
		}
		return VersionInfo{}, fmt.Errorf("%w: %s has no stored version (it was not deployed through the version store)", ErrNoPrevious, name)
	}
	if rec.Previous == nil {
		return VersionInfo{}, fmt.Errorf("%w: %s", ErrNoPrevious, name)
	}
	vf, err := s.readVersion(name, rec.Previous.Hash)
	if err != nil {
		return VersionInfo{}, err
	}
	info, err := s.switchTo(ctx, name, rec, *rec.Previous, vf)
	if err == nil {
		err = s.publishLive(ctx, info, nil)
	}
	return info, err
}

// switchTo deploys a stored version and records it as active.
func (s *VersionStore) switchTo(ctx context.Context, name string, prev *activeRecord, next liveVersion, vf versionFile) (VersionInfo, error) {
	if _, err := s.deployStored(ctx, name, next); err != nil {
		return VersionInfo{}, err
	}
	if err := s.recordActive(name, prev, next); err != nil {
		return VersionInfo{}, s.restore(ctx, name, prev, err)
	}
	return VersionInfo{Name: name, Hash: next.Hash, Size: vf.Size, UploadedAt: vf.UploadedAt, Active: true, Manifest: next.Manifest}, nil
}

// deployStored reads a stored version's wasm, checks it is the one its
// hash names and deploys it with manifest v.Manifest.
func (s *VersionStore) deployStored(ctx context.Context, name string, v liveVersion) (*Version, error) {
	wasm, err := s.Wasm(name, v.Hash)
	if err != nil {
		return nil, err
	}
	m := v.Manifest
	m.Name = name
	fn, err := s.reg.Deploy(ctx, m, wasm)
	if err != nil {
		return nil, &RefusedError{err}
	}
	return fn, nil
}

// recordActive writes active.json: next active, the active one of prev
// (if any, and if not the same) previous.
func (s *VersionStore) recordActive(name string, prev *activeRecord, next liveVersion) error {
	rec := activeRecord{Active: next, ActivatedAt: s.now().UTC()}
	if prev != nil {
		if sameLive(&prev.Active, &next) {
			rec.Previous = prev.Previous // activating what is active: keep the way back
		} else {
			p := prev.Active
			rec.Previous = &p
		}
	}
	b, err := json.Marshal(&rec)
	if err != nil {
		return fmt.Errorf("functions: %s: %w", name, err)
	}
	if err := atomicfile.Write(filepath.Join(s.dir, name, activeFile), append(b, '\n')); err != nil {
		return fmt.Errorf("functions: %s: record the active version: %w", name, err)
	}
	return nil
}

// sameLive reports whether two live versions are the same wasm with the
// same manifest.
func sameLive(a, b *liveVersion) bool {
	if a.Hash != b.Hash {
		return false
	}
	ja, err1 := json.Marshal(&a.Manifest)
	jb, err2 := json.Marshal(&b.Manifest)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// readActiveOrLive reads a function's active.json; when there is none but
// the registry runs a version of the function that the store does not
// have (one deployed from the configuration), it stores that version and
// returns it as the active one, so that what replaces it can be rolled
// back to it and its hash can be activated. Nothing is recorded as active
// until a change is: until then, a restart runs the configuration's file.
func (s *VersionStore) readActiveOrLive(name string) (*activeRecord, error) {
	rec, err := s.readActive(name)
	if err != nil || rec != nil {
		return rec, err
	}
	v, err := s.reg.Active(name)
	if err != nil || v.wasm == nil {
		return nil, nil // not live either
	}
	m := v.Manifest
	m.Name = name
	info, err := s.save(m, v.wasm)
	if err != nil {
		return nil, fmt.Errorf("functions: %s: storing the version from the configuration, to roll back to: %w", name, err)
	}
	return &activeRecord{Active: liveVersion{Hash: info.Hash, Manifest: info.Manifest}}, nil
}

// readActive reads a function's active.json: nil when there is none.
func (s *VersionStore) readActive(name string) (*activeRecord, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, name, activeFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("functions: %s: %w", name, err)
	}
	var rec activeRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("functions: %s: %s: %w", name, filepath.Join(s.dir, name, activeFile), err)
	}
	return &rec, nil
}

// readVersion reads NAME/HASH.json.
func (s *VersionStore) readVersion(name, hash string) (versionFile, error) {
	var vf versionFile
	path := filepath.Join(s.dir, name, hash+".json")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return vf, fmt.Errorf("%w: %s has no version %s", ErrNoVersion, name, hash)
	}
	if err != nil {
		return vf, fmt.Errorf("functions: %s: %w", name, err)
	}
	if err := json.Unmarshal(b, &vf); err != nil {
		return vf, fmt.Errorf("functions: %s: %w", path, err)
	}
	vf.Manifest.Name = name
	return vf, nil
}

// List returns the stored versions of a function, newest upload first.
// A function without stored versions has none (and no error).
func (s *VersionStore) List(name string) ([]VersionInfo, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	entries, err := os.ReadDir(filepath.Join(s.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("functions: %s: %w", name, err)
	}
	rec, err := s.readActive(name)
	if err != nil {
		return nil, err
	}
	var out []VersionInfo
	for _, e := range entries {
		hash, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || checkHash(hash) != nil {
			continue
		}
		vf, err := s.readVersion(name, hash)
		if err != nil {
			return nil, err
		}
		out = append(out, VersionInfo{Name: name, Hash: hash, Size: vf.Size, UploadedAt: vf.UploadedAt,
			Active: rec != nil && rec.Active.Hash == hash, Manifest: vf.Manifest})
	}
	slices.SortFunc(out, func(a, b VersionInfo) int {
		if c := b.UploadedAt.Compare(a.UploadedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Hash, b.Hash)
	})
	return out, nil
}

// Names returns the names of the functions with stored versions, sorted.
func (s *VersionStore) Names() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("functions: versions: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && validName.MatchString(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names, nil // ReadDir sorts by name
}

// Delete removes a function: from the registry first (its events in
// flight finish), then its stored versions. A function the registry has
// but the store does not (one from the configuration) is removed from the
// registry only.
//
// # Results
//   - an error wrapping [ErrNotFound] when neither has the function.
func (s *VersionStore) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.delete(ctx, name)
	if err == nil && s.pub != nil {
		err = published(name, s.pub.Deleted(ctx, name))
	}
	return err
}

// ApplyDelete is Delete for a deletion another host of the cluster made:
// its Publisher is not told, and a function this host does not have is
// not an error.
func (s *VersionStore) ApplyDelete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.delete(ctx, name); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

func (s *VersionStore) delete(ctx context.Context, name string) error {
	regErr := s.reg.Remove(ctx, name)
	if regErr != nil && !errors.Is(regErr, ErrNotFound) {
		return regErr
	}
	dir := filepath.Join(s.dir, name)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return regErr
	}
	// Rename first (atomic: after a crash the function is gone or still
	// whole), then remove. Load skips the trash: its name is not valid.
	trash := filepath.Join(s.dir, ".deleted-"+name+"-"+rand.Text())
	if err := os.Rename(dir, trash); err != nil {
		return fmt.Errorf("functions: delete %s: %w", name, err)
	}
	if err := atomicfile.SyncDir(s.dir); err != nil {
		return fmt.Errorf("functions: delete %s: %w", name, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("functions: delete %s: removed, but its files stay in %s: %w", name, trash, err)
	}
	return nil
}

// Load makes every stored function's active version live in the
// registry; the host calls it at start-up, after deploying the functions
// of its configuration (a stored version takes the place of a configured
// one of the same name). It also removes what an interrupted Delete left.
//
// # Results
//   - an error naming each function that could not be loaded (the others
//     are loaded).
func (s *VersionStore) Load(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("functions: versions: %w", err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".deleted-") {
			_ = os.RemoveAll(filepath.Join(s.dir, name)) // best effort: Delete's trash
			continue
		}
		if !e.IsDir() || !validName.MatchString(name) {
			continue
		}
		rec, err := s.readActive(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if rec == nil {
			continue // versions saved, none made live
		}
		if _, err := s.deployStored(ctx, name, rec.Active); err != nil {
			errs = append(errs, fmt.Errorf("functions: load %s version %s: %w", name, rec.Active.Hash, err))
		}
	}
	return errors.Join(errs...)
}

// Wasm returns the stored wasm of a function's version, checked against
// its hash.
//
// # Results
//   - the module's bytes (the caller's own);
//   - an error wrapping [ErrNoVersion] when the store does not have it.
func (s *VersionStore) Wasm(name, hash string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := checkHash(hash); err != nil {
		return nil, err
	}
	wasm, err := os.ReadFile(filepath.Join(s.dir, name, hash+".wasm"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no stored wasm %s", ErrNoVersion, name, hash)
	}
	if err != nil {
		return nil, fmt.Errorf("functions: %s: %w", name, err)
	}
	if got := runtime.Hash(wasm); got != hash {
		return nil, fmt.Errorf("functions: %s: stored wasm %s is corrupt (its hash is %s): upload the version again", name, hash, got)
	}
	return wasm, nil
}
