package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/runtime"
	"github.com/insertfn/insertfn/sdk/consent"
	"github.com/tidwall/gjson"
)

// ManifestHeader is the request header of PUT /admin/functions/{name}
// that carries the manifest beside the wasm body: a JSON object with the
// manifest's settings, limits, on_error and retries (see
// functions.Manifest; "name", if given, must be the one in the path, and
// "wasm" must be absent). Without it the version has no settings and the
// default limits and policy.
const ManifestHeader = "X-Insertfn-Manifest"

// FunctionInfo is a function as GET /admin/functions lists it.
type FunctionInfo struct {
	// Name is the function's name.
	Name string `json:"name"`
	// Active is the hash of the version live in the registry; empty when
	// none is.
	Active string `json:"active,omitempty"`
	// Versions are the stored versions, newest upload first; Active in
	// each says whether it is the live one. A function of the
	// configuration, never deployed through the admin API, has none.
	Versions []functions.VersionInfo `json:"versions"`
}

// FunctionList is the answer of GET /admin/functions.
type FunctionList struct {
	Functions []FunctionInfo `json:"functions"`
}

// DeleteResult is the answer of DELETE /admin/functions/{name}.
type DeleteResult struct {
	Name    string `json:"name"`
	Deleted bool   `json:"deleted"`
}

// versionStatus maps a VersionStore error to a status.
func versionStatus(err error) int {
	var refused *functions.RefusedError
	switch {
	case errors.As(err, &refused):
		return http.StatusUnprocessableEntity
	case errors.Is(err, functions.ErrNotFound), errors.Is(err, functions.ErrNoVersion):
		return http.StatusNotFound
	case errors.Is(err, functions.ErrNoPrevious):
		return http.StatusConflict
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// nameOf returns the {name} of the path, or answers 400.
func nameOf(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("name")
	m := functions.Manifest{Name: name}
	if err := m.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	return name, true
}

// PUT /admin/functions/{name}: the body is the wasm, the manifest is in
// ManifestHeader. 201 and the version (now live); 200 and the version with
// "unchanged": true when it already was live with that manifest (nothing
// changed: the history keeps its previous version); 422 and the reason
// when it is refused.
func (a *Admin) deployFunction(w http.ResponseWriter, r *http.Request) {
	name, ok := nameOf(w, r)
	if !ok {
		return
	}
	m, err := parseManifest(name, r.Header.Get(ManifestHeader))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	wasm, status, err := readBody(w, r, MaxWasmBytes)
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	switch {
	case len(wasm) == 0:
		writeError(w, http.StatusBadRequest, "empty body: send the WebAssembly module (build it with 'insertfn build') or the JavaScript file as the body")
		return
	case m.Runtime != functions.RuntimeJS && !bytes.HasPrefix(wasm, []byte("\x00asm")):
		writeError(w, http.StatusUnprocessableEntity, "the body is not a WebAssembly module (build one with 'insertfn build'); a JavaScript function needs \"runtime\": \"js\" in its manifest (insertfn deploy sets it for a .js file)")
		return
	}
	info, err := a.deps.Versions.Deploy(r.Context(), m, wasm)
	if err != nil {
		a.log.Warn("admin: deploy refused", "function", name, "err", err)
		a.fail(w, r, versionStatus(err), err)
		return
	}
	if info.Unchanged {
		a.log.Info("admin: deploy changed nothing: the version is already live", "function", name, "version", info.Hash)
		writeJSON(w, http.StatusOK, info)
		return
	}
	a.log.Info("admin: deployed", "function", name, "version", info.Hash, "size", info.Size)
	writeJSON(w, http.StatusCreated, info)
}

// parseManifest decodes the manifest header for function name.
func parseManifest(name, header string) (functions.Manifest, error) {
	m := functions.Manifest{Name: name}
	if header == "" {
		return m, m.Validate()
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(header)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("%s: %v (want a JSON object with settings, limits, on_error, retries)", ManifestHeader, err)
	}
	if dec.More() {
		return m, fmt.Errorf("%s: one JSON object expected", ManifestHeader)
	}
	switch {
	case m.Name != name:
		return m, fmt.Errorf("%s: name %q, but the path names %q: drop the name or make them match", ManifestHeader, m.Name, name)
	case m.Wasm != "":
		return m, fmt.Errorf("%s: \"wasm\": the module is the request body, not a path", ManifestHeader)
	}
	if err := m.Validate(); err != nil {
		return m, fmt.Errorf("%s: %v", ManifestHeader, err)
	}
	return m, nil
}

// GET /admin/functions: every function the registry runs or the store
// keeps.
func (a *Admin) listFunctions(w http.ResponseWriter, r *http.Request) {
	stored, err := a.deps.Versions.Names()
	if err != nil {
		a.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	names := append(a.deps.Registry.Names(), stored...)
	slices.Sort(names)
	names = slices.Compact(names)
	out := FunctionList{Functions: make([]FunctionInfo, 0, len(names))}
	for _, n := range names {
		fi, err := a.functionInfo(n)
		if err != nil {
			a.fail(w, r, http.StatusInternalServerError, err)
			return
		}
		out.Functions = append(out.Functions, fi)
	}
	writeJSON(w, http.StatusOK, out)
}

// GET /admin/functions/{name}: one function.
func (a *Admin) getFunction(w http.ResponseWriter, r *http.Request) {
	name, ok := nameOf(w, r)
	if !ok {
		return
	}
	fi, err := a.functionInfo(name)
	if err != nil {
		a.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	if fi.Active == "" && len(fi.Versions) == 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no function %q", name))
		return
	}
	writeJSON(w, http.StatusOK, fi)
}

func (a *Admin) functionInfo(name string) (FunctionInfo, error) {
	fi := FunctionInfo{Name: name}
	if v, err := a.deps.Registry.Active(name); err == nil {
		fi.Active = v.Hash
	}
	versions, err := a.deps.Versions.List(name)
	if err != nil {
		return fi, err
	}
	for i := range versions {
		versions[i].Active = versions[i].Hash == fi.Active
	}
	fi.Versions = versions
	if fi.Versions == nil {
		fi.Versions = []functions.VersionInfo{}
	}
	return fi, nil
}

// POST /admin/functions/{name}/activate?version=HASH
func (a *Admin) activateFunction(w http.ResponseWriter, r *http.Request) {
	name, ok := nameOf(w, r)
	if !ok {
		return
	}
	hash := r.URL.Query().Get("version")
	if hash == "" {
		writeError(w, http.StatusBadRequest, "missing ?version=HASH: the version to activate (GET /admin/functions lists them)")
		return
	}
	info, err := a.deps.Versions.Activate(r.Context(), name, hash)
	if err != nil {
		a.fail(w, r, versionStatus(err), err)
		return
	}
	a.log.Info("admin: activated", "function", name, "version", info.Hash)
	writeJSON(w, http.StatusOK, info)
}

// POST /admin/functions/{name}/rollback
func (a *Admin) rollbackFunction(w http.ResponseWriter, r *http.Request) {
	name, ok := nameOf(w, r)
	if !ok {
		return
	}
	info, err := a.deps.Versions.Rollback(r.Context(), name)
	if err != nil {
		a.fail(w, r, versionStatus(err), err)
		return
	}
	a.log.Info("admin: rolled back", "function", name, "version", info.Hash)
	writeJSON(w, http.StatusOK, info)
}

// DELETE /admin/functions/{name}
func (a *Admin) deleteFunction(w http.ResponseWriter, r *http.Request) {
	name, ok := nameOf(w, r)
	if !ok {
		return
	}
	if a.deps.FunctionUsers != nil {
		if users := a.deps.FunctionUsers(name); len(users) > 0 {
			writeError(w, http.StatusConflict, fmt.Sprintf("function %s is in use by %v: remove it from their configuration first", name, users))
			return
		}
	}
	if err := a.deps.Versions.Delete(r.Context(), name); err != nil {
		a.fail(w, r, versionStatus(err), err)
		return
	}
	a.log.Info("admin: deleted", "function", name)
	writeJSON(w, http.StatusOK, DeleteResult{Name: name, Deleted: true})
}

// TestRequest is the wrapped body of POST /admin/functions/{name}/test,
// to test with other settings or consent records than the deployed
// version's.
type TestRequest struct {
	// Event is the event, a JSON object.
	Event json.RawMessage `json:"event"`
	// Consent, when set, is the stored consent the function looks up
	// instead of the consent store: a record, an array of records, or a
	// JSON string of NDJSON, in the wire format of the consent record.
	Consent json.RawMessage `json:"consent,omitempty"`
	// Settings, when set, replace the deployed version's settings.
	Settings json.RawMessage `json:"settings,omitempty"`
}

// RunReport is one run of a function as `insertfn test --json` prints it.
type RunReport struct {
	// Verdict is "deliver", "drop" or "error".
	Verdict string `json:"verdict"`
	// Reason is the drop reason or the error's message.
	Reason string `json:"reason"`
	// ErrorKind is the error's kind, when Verdict is "error".
	ErrorKind string `json:"error_kind"`
	// Event is the event that goes on (null when it does not).
	Event json.RawMessage `json:"event"`
	// Logs are what the function logged.
	Logs []TestLog `json:"logs"`
	// DurationNS is the time the last call took.
	DurationNS int64 `json:"duration_ns"`
}

// ReportRun shapes the result of one run. Event is set when the verdict
// is deliver.
//
// # Parameters
//   - res: the run's result.
//
// # Results
//   - the report; an event that is not valid JSON is reported as a JSON
//     string of its bytes.
func ReportRun(res *runtime.Result) RunReport {
	r := RunReport{
		Verdict:    res.Verdict.String(),
		Logs:       make([]TestLog, 0, len(res.Logs)),
		DurationNS: res.Duration.Nanoseconds(),
	}
	switch res.Verdict {
	case runtime.Deliver:
		r.Event = compactJSON(res.Event)
	case runtime.Drop:
		r.Reason = res.Reason
	default:
		r.Reason, r.ErrorKind = res.Reason, string(res.Kind)
	}
	for _, l := range res.Logs {
		r.Logs = append(r.Logs, TestLog{Level: l.Level.String(), Message: l.Message})
	}
	return r
}

// TestResult is the answer of POST /admin/functions/{name}/test: the
// fields of `insertfn test --json`, and what the registry's failure
// policy made of it.
type TestResult struct {
	RunReport

	// Version is the hash of the version that ran.
	Version string `json:"version"`
	// Attempts counts the calls (more than one after a RetryError).
	Attempts int `json:"attempts"`
	// Delivered says whether the event goes on: the verdict, or the
	// failure policy when the function failed.
	Delivered bool `json:"delivered"`
	// PolicyApplied says the failure policy decided.
	PolicyApplied bool `json:"policy_applied"`
}

// TestLog is one line a function logged.
type TestLog struct {
	Level   string `json:"level"`
	Message string `json:"message"`
}

// POST /admin/functions/{name}/test: runs an event through the function's
// live version, as the pipeline would (retries and failure policy
// included). The body is the event, or a [TestRequest] (told apart by its
// "event" member being an object, which a Segment event's never is: it is
// a track call's name). With settings or consent records, the live
// version's stored wasm is loaded again with them, apart from the
// registry.
func (a *Admin) testFunction(w http.ResponseWriter, r *http.Request) {
	name, ok := nameOf(w, r)
	if !ok {
		return
	}
	body, status, err := readBody(w, r, MaxBodyBytes)
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	req, err := parseTestRequest(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	reg := a.deps.Registry
	if req.Consent != nil || req.Settings != nil {
		tmp, status, err := a.testRegistry(r.Context(), name, &req)
		if err != nil {
			a.fail(w, r, status, err)
			return
		}
		defer tmp.Close(context.WithoutCancel(r.Context()))
		reg = tmp
	}
	var out functions.Outcome
	if err := reg.Run(r.Context(), name, req.Event, &out); err != nil {
		status := http.StatusServiceUnavailable
		if errors.Is(err, functions.ErrNotFound) {
			status = http.StatusNotFound
		}
		a.fail(w, r, status, err)
		return
	}
	writeJSON(w, http.StatusOK, testResult(&out))
}

// parseTestRequest reads the body of a test call.
func parseTestRequest(body []byte) (TestRequest, error) {
	var req TestRequest
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' || !json.Valid(body) {
		return req, errors.New("the body must be the event, a JSON object, or {\"event\": {...}, \"settings\": {...}, \"consent\": [...]}")
	}
	if !gjson.GetBytes(body, "event").IsObject() {
		req.Event = body
		return req, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("test request: %v (want event, settings, consent)", err)
	}
	if s := bytes.TrimSpace(req.Settings); req.Settings != nil && (len(s) == 0 || s[0] != '{') {
		return req, errors.New("test request: settings must be a JSON object")
	}
	if string(req.Consent) == "null" {
		req.Consent = nil
	}
	if string(req.Settings) == "null" {
		req.Settings = nil
	}
	return req, nil
}

// testRegistry loads the live version of name again, with the settings
// and consent of req, in a registry of its own; the caller closes it.
func (a *Admin) testRegistry(ctx context.Context, name string, req *TestRequest) (*functions.Registry, int, error) {
	if a.deps.Engine == nil {
		return nil, http.StatusNotImplemented, errors.New("testing with other settings or consent is not available: the host gave the admin API no engine")
	}
	live, err := a.deps.Registry.Active(name)
	if err != nil {
		return nil, http.StatusNotFound, err
	}
	wasm, err := a.deps.Versions.Wasm(name, live.Hash)
	if errors.Is(err, functions.ErrNoVersion) {
		return nil, http.StatusConflict, fmt.Errorf("function %s was not deployed through the admin API (it comes from the configuration), so its wasm is not stored: test it without settings and consent, or deploy it", name)
	}
	if err != nil {
		return nil, http.StatusInternalServerError, err
	}
	var store consent.Store
	switch {
	case req.Consent != nil:
		raw := []byte(req.Consent)
		if gjson.ParseBytes(raw).Type == gjson.String {
			raw = []byte(gjson.ParseBytes(raw).Str) // NDJSON as a string
		}
		m, err := consentstore.Load(bytes.NewReader(raw), "consent")
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("test request: %v", err)
		}
		store = m
	case a.deps.Store != nil:
		store = a.deps.Store
	}
	m := live.Manifest
	if req.Settings != nil {
		m.Settings = functions.Settings(req.Settings)
	}
	m.Limits.PoolSize = 1
	reg := functions.NewRegistry(a.deps.Engine, store)
	reg.TimeEvery = 1 // a test run reports its duration
	if _, err := reg.Deploy(ctx, m, wasm); err != nil {
		reg.Close(context.WithoutCancel(ctx))
		return nil, http.StatusUnprocessableEntity, err
	}
	return reg, 0, nil
}

// testResult shapes an outcome as `insertfn test --json` does; the event
// is the one that goes on, by the verdict or the failure policy.
func testResult(out *functions.Outcome) TestResult {
	res := TestResult{
		RunReport:     ReportRun(&out.Result),
		Version:       out.Version,
		Attempts:      out.Attempts,
		Delivered:     out.Deliver,
		PolicyApplied: out.PolicyApplied,
	}
	res.Event = nil
	if out.Deliver {
		res.Event = compactJSON(out.Event)
	}
	return res
}

// compactJSON returns an event as a JSON value: itself compacted when it
// is valid JSON, else a JSON string of its bytes.
func compactJSON(event []byte) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, event); err != nil {
		s, _ := json.Marshal(string(event))
		return s
	}
	return b.Bytes()
}
