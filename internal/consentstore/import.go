package consentstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/insertfn/insertfn/sdk/consent"
)

// MaxImportLine is the longest line [Import] reads; a longer one is
// reported as a bad line and skipped.
const MaxImportLine = 4 << 20

// ImportStats counts what [Import] did.
type ImportStats struct {
	Lines   int `json:"lines"`   // non-blank lines read: records and updates
	Applied int `json:"applied"` // lines the store took
	Failed  int `json:"failed"`  // lines reported as bad
	Changes int `json:"changes"` // stored values the applied lines changed (see consent.Change)
}

// importFields are the top-level fields a line of an import may have: the
// wire format of a record, and the line's own source.
var importFields = map[string]bool{
	"id": true, "aliases": true, "categoryPreferences": true, "consent_state": true,
	"updated_at_unixtime_ms": true, "source": true,
}

// importBatch is how many lines [Import] hands a batching backend at once.
const importBatch = 512

// batchUpdater is a backend that applies many prepared updates, in order,
// in one write (the embedded store's UpdateMany: one transaction, one
// fsync), all or none.
type batchUpdater interface {
	UpdateMany(ctx context.Context, updates []*Update) ([][]consent.Change, error)
}

// Import applies NDJSON to s: one record or update per line, in the wire
// format of the consent-record contract (an update is a partial record:
// the entries it names, each merged last-writer-wins by its timestamp).
// Category entries may be bare booleans; entries without a timestamp get
// the time of the import (see [Store.Update]). Blank lines are skipped.
//
// Each line is applied as [Store.Update] applies it, in order, from source
// "import:NAME:LINE", or "import:NAME:LINE:SOURCE" when the line has a
// "source" string (where the decision came from before the import). A line
// with a field the wire format does not have is bad (a misspelt field
// would otherwise import nothing, silently). On a backend that writes many
// updates at once (the embedded store) and a store without a cache, lines
// are written in batches of a few hundred, one synced transaction each;
// when a batch fails, its lines are applied one by one.
//
// A bad line (not JSON, not a record, no id, an invalid entry, longer than
// [MaxImportLine]) is passed to report with its 1-based line number, when
// report is not nil, and the rest still imports. Lines are reported in
// order, except that a line the store itself refuses in a batch is
// reported when its batch is written. Import stops and returns an error
// only when it cannot go on: reading r fails, ctx is done, or the store is
// unavailable, closed or read-only; the stats then count what was done
// before.
func Import(ctx context.Context, s *Store, r io.Reader, name string, report func(line int, err error)) (ImportStats, error) {
	return importLines(ctx, &importer{s: s, name: name, report: report}, r)
}

// ImportReplace applies NDJSON to s as [Import] does, except that the
// input replaces what is stored about the people it names instead of
// merging into it: the first time a line names an id (its "id" or one of
// its aliases), the record stored under that id is erased first, with its
// aliases and its history, as [Store.Delete] erases it. Each person the
// input names then holds exactly what the input says, whatever was stored
// before and however new it was, and a history that starts with the
// import. Later lines naming the same person merge into what the earlier
// lines imported, as in [Import]. Records of ids the input does not name
// are left as they are.
//
// A line is checked before anything is erased for it: a bad line erases
// nothing. The erasure and the line's write are separate writes, so an
// import that stops (ImportReplace returns an error) may have erased a
// person whose line it did not write: run it again.
func ImportReplace(ctx context.Context, s *Store, r io.Reader, name string, report func(line int, err error)) (ImportStats, error) {
	return importLines(ctx, &importer{s: s, name: name, report: report, replaced: map[string]bool{}}, r)
}

// importLines reads r and applies its lines with im.
func importLines(ctx context.Context, im *importer, r io.Reader) (ImportStats, error) {
	s, name := im.s, im.name
	if bu, ok := s.b.(batchUpdater); ok && s.cache == nil {
		im.batch = bu
	}
	lr := lineReader{br: bufio.NewReaderSize(r, 64<<10), max: MaxImportLine}
	for {
		if err := ctx.Err(); err != nil {
			return im.st, fmt.Errorf("consent store: import %s: stopped at line %d: %w", name, lr.line, err)
		}
		b, tooLong, err := lr.next()
		if err == io.EOF {
			return im.st, im.flush(ctx)
		}
		if err != nil {
			if ferr := im.flush(ctx); ferr != nil {
				return im.st, ferr
			}
			return im.st, fmt.Errorf("consent store: import %s:%d: %w", name, lr.line+1, err)
		}
		if lr.line == 1 {
			b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // UTF-8 byte order mark
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 && !tooLong {
			continue
		}
		im.st.Lines++
		line := lr.line
		if tooLong {
			im.fail(line, fmt.Errorf("line longer than %d bytes", lr.max))
			continue
		}
		u, err := ParseUpdate(b)
		if err == nil && u.Record.ID == "" {
			err = errNoID
		}
		if err != nil {
			im.fail(line, err)
			continue
		}
		src := "import:" + name + ":" + strconv.Itoa(line)
		if u.Source != "" {
			src += ":" + u.Source
		}
		u.Source = src
		if err := im.apply(ctx, line, u); err != nil {
			return im.st, err
		}
	}
}

// importer applies the lines of one import.
type importer struct {
	s       *Store
	name    string
	report  func(line int, err error)
	st      ImportStats
	batch   batchUpdater // nil: one Store.Update per line
	pending []*Update
	lines   []int // the line of each pending update
	// replaced holds the ids ImportReplace has erased; nil for Import.
	replaced map[string]bool
}

func (im *importer) fail(line int, err error) {
	im.st.Failed++
	if im.report != nil {
		im.report(line, err)
	}
}

// apply applies one line's update now, or queues it for the next batch.
// It returns an error only when the import must stop.
func (im *importer) apply(ctx context.Context, line int, u Update) error {
	if im.batch == nil && im.replaced == nil {
		return im.applyOne(ctx, line, u)
	}
	if err := prepare(&u, im.s.now().UnixMilli()); err != nil {
		im.fail(line, err)
		return nil
	}
	if im.replaced != nil {
		if ok, err := im.erase(ctx, line, &u); !ok {
			return err
		}
	}
	if im.batch == nil {
		return im.applyOne(ctx, line, u)
	}
	im.pending = append(im.pending, &u)
	im.lines = append(im.lines, line)
	if len(im.pending) >= importBatch {
		return im.flush(ctx)
	}
	return nil
}

// erase erases, for ImportReplace, the stored records of the ids of u
// that no earlier line named. An id an earlier line named can only find
// what this import wrote (erasing an id erases every id of its record),
// and the pending batch only touches such ids, so erasing before the batch
// is written changes nothing of it. ok is false when the line failed (err
// nil: reported) or the import must stop (err).
func (im *importer) erase(ctx context.Context, line int, u *Update) (ok bool, err error) {
	for _, id := range u.Record.IDs() {
		if im.replaced[id] {
			continue
		}
		if _, err := im.s.Delete(ctx, id); err != nil {
			if fatal(ctx, err) {
				return false, fmt.Errorf("consent store: import %s:%d: erase %q: %w", im.name, line, id, err)
			}
			im.fail(line, fmt.Errorf("erase the stored record of %q: %w", id, err))
			return false, nil
		}
		im.replaced[id] = true
	}
	return true, nil
}

func (im *importer) applyOne(ctx context.Context, line int, u Update) error {
	changes, err := im.s.Update(ctx, u)
	if err != nil {
		if fatal(ctx, err) {
			return fmt.Errorf("consent store: import %s:%d: %w", im.name, line, err)
		}
		im.fail(line, err)
		return nil
	}
	im.st.Applied++
	im.st.Changes += len(changes)
	return nil
}

// flush writes the pending batch; when the backend refuses it, its lines
// one by one.
func (im *importer) flush(ctx context.Context) error {
	if len(im.pending) == 0 {
		return nil
	}
	pending, lines := im.pending, im.lines
	im.pending, im.lines = im.pending[:0], im.lines[:0]
	all, err := im.batch.UpdateMany(ctx, pending)
	if err == nil {
		im.st.Applied += len(pending)
		for _, ch := range all {
			im.st.Changes += len(ch)
		}
		return nil
	}
	if fatal(ctx, err) {
		return fmt.Errorf("consent store: import %s:%d: %w", im.name, lines[0], err)
	}
	for i, u := range pending {
		if err := im.applyOne(ctx, lines[i], *u); err != nil {
			return err
		}
	}
	return nil
}

// fatal reports whether an error of Store.Update stops an import: the
// store cannot take any line, not just this one.
func fatal(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrClosed) ||
		errors.Is(err, ErrReadOnly) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// ParseUpdate decodes one record or update in the wire format of the
// consent-record contract, as a line of [Import] or the file of `insertfn
// consent set` holds it: a JSON object with the record's fields (its "id"
// may be absent; the caller decides) and, optionally, "source", a string
// saying where the decision came from, returned as the update's Source. A
// field the wire format does not have is an error. Category entries may be
// bare booleans, which get timestamp 0 (the store's clock, see
// [Store.Update]).
func ParseUpdate(b []byte) (Update, error) {
	rec, err := parseRecord(b)
	if err != nil {
		return Update{}, err
	}
	u := Update{Record: rec}
	gjson.ParseBytes(b).ForEach(func(key, value gjson.Result) bool {
		k := key.String()
		switch {
		case !importFields[k]:
			err = fmt.Errorf("unknown field %q (a record has id, aliases, categoryPreferences, consent_state, updated_at_unixtime_ms; an update may add source)", k)
		case k == "source" && value.Type == gjson.String:
			u.Source = value.Str
		case k == "source" && value.Type != gjson.Null:
			err = fmt.Errorf("field source: want a string, got %s", jsonType(value))
		}
		return err == nil
	})
	if err != nil {
		return Update{}, err
	}
	return u, nil
}

// errNoID is the error of a line or record without an id.
var errNoID = errors.New("record without an \"id\"")

// parseRecord decodes one record or update in the wire format: a JSON
// object. Errors do not name the input or the line.
func parseRecord(raw []byte) (consent.Record, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return consent.Record{}, fmt.Errorf("want a consent record (a JSON object), got %.32s", raw)
	}
	var rec consent.Record
	if err := UnmarshalRecord(raw, &rec); err != nil {
		if errors.Is(err, consent.ErrInexactID) {
			return consent.Record{}, err
		}
		if bad := badCategory(raw); bad != nil {
			return consent.Record{}, bad
		}
		return consent.Record{}, jsonError(err)
	}
	return rec, nil
}

// UnmarshalRecord decodes a record in the wire format of the
// consent-record contract into rec, as [consent.Record.UnmarshalJSON]
// does, except that its "id" and "aliases" may also be JSON numbers: each
// becomes the id JavaScript's String(n) makes of it, as for a numeric
// userId of an event (123.0, 1.23e2 and 123 are all "123", see
// [consent.NumberID]). A number that cannot be an id exactly is an error
// wrapping [consent.ErrInexactID] that names the field. Every reader of
// records from outside (import, the admin API, the CLI, the http
// backend) decodes with it, so that a numeric id is one id everywhere.
func UnmarshalRecord(raw []byte, rec *consent.Record) error {
	raw, err := canonicalIDs(raw)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, rec)
}

// canonicalIDs returns raw with a numeric "id" and numeric aliases
// written as their canonical strings; raw itself when it has none (the
// usual case, which costs two lookups).
func canonicalIDs(raw []byte) ([]byte, error) {
	numeric := gjson.GetBytes(raw, "id").Type == gjson.Number
	if !numeric {
		gjson.GetBytes(raw, "aliases").ForEach(func(_, v gjson.Result) bool {
			numeric = v.Type == gjson.Number
			return !numeric
		})
	}
	if !numeric {
		return raw, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return raw, nil // the record's decoder says what is wrong
	}
	if v := gjson.ParseBytes(m["id"]); v.Type == gjson.Number {
		id, err := consent.NumberID(v.Raw)
		if err != nil {
			return nil, fmt.Errorf("id: %w", err)
		}
		m["id"], _ = json.Marshal(id)
	}
	if a := gjson.ParseBytes(m["aliases"]); a.IsArray() {
		var aliases []json.RawMessage
		var err error
		a.ForEach(func(_, v gjson.Result) bool {
			if v.Type != gjson.Number {
				aliases = append(aliases, json.RawMessage(v.Raw))
				return true
			}
			var id string
			if id, err = consent.NumberID(v.Raw); err != nil {
				err = fmt.Errorf("aliases[%d]: %w", len(aliases), err)
				return false
			}
			b, _ := json.Marshal(id)
			aliases = append(aliases, b)
			return true
		})
		if err != nil {
			return nil, err
		}
		m["aliases"], _ = json.Marshal(aliases)
	}
	return json.Marshal(m)
}

// badCategory names the category entry of a record that is neither a
// boolean nor an object, if any: the decoder's error does not say which.
func badCategory(raw []byte) error {
	var err error
	gjson.GetBytes(raw, "categoryPreferences").ForEach(func(key, value gjson.Result) bool {
		switch value.Type {
		case gjson.True, gjson.False:
			return true
		case gjson.JSON:
			if value.IsObject() {
				return true
			}
		}
		err = fmt.Errorf("categoryPreferences.%s: want true, false or {\"consented\": bool, \"timestamp_unixtime_ms\": int}, got %s", key.String(), jsonType(value))
		return false
	})
	return err
}

// lineReader reads lines of at most max bytes; line counts the lines read.
type lineReader struct {
	br   *bufio.Reader
	max  int
	line int
	buf  []byte
}

// next returns the next line without its newline, or tooLong (and no
// bytes) for a line longer than max, which it skips; io.EOF after the last
// line. The bytes are valid until the next call.
func (l *lineReader) next() (b []byte, tooLong bool, err error) {
	l.buf = l.buf[:0]
	for {
		chunk, err := l.br.ReadSlice('\n')
		if !tooLong {
			if len(l.buf)+len(chunk) > l.max+2 { // room for "\r\n"
				tooLong, l.buf = true, l.buf[:0]
			} else {
				l.buf = append(l.buf, chunk...)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			if len(l.buf) == 0 && !tooLong && len(chunk) == 0 {
				return nil, false, io.EOF
			}
		case err != nil:
			return nil, false, err
		}
		l.line++
		if tooLong {
			return nil, true, nil
		}
		return l.buf, false, nil
	}
}

// Export writes every record of s to w as NDJSON, one record per line in
// the wire format, in the order of [Store.Scan]: sorted by id for the
// memory and embedded backends, unordered for Redis. Export streams: it
// holds one record at a time, whatever the size of the store. Its output
// is an input of [Import] and [Load]. The records' history is not written.
func Export(ctx context.Context, s *Store, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	err := s.Scan(ctx, func(r *consent.Record) error {
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("record %q: %w", r.ID, err)
		}
		b = append(b, '\n')
		_, err = bw.Write(b)
		return err
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("consent store: export: %w", err)
	}
	return nil
}
