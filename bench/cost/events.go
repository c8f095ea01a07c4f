package cost

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/sdk/consent"
)

// Workload is what every function runs on: the events, in order, and the
// stored consent they are checked against.
type Workload struct {
	// Events are the events' JSON objects. They are shared by every
	// function and never changed.
	Events [][]byte
	// Store answers the functions' consent lookups (nil: no stored consent).
	Store consent.Store
	// Source describes where the events come from, for the report.
	Source string
}

// GenerateConfig shapes a generated workload. The zero value is ready to use.
type GenerateConfig struct {
	// Events is the number of distinct events (default 1000); the bench
	// cycles through them.
	Events int
	// Users is the number of people with stored consent (default Events/2).
	Users int
	// Mismatch is the share of events whose consent differs from the
	// person's stored consent, in [0, 1]. 0 takes the default 0.10; a
	// negative value means none.
	Mismatch float64
	// OptOut is the share of people whose stored consent opts out of the
	// sale of their data under CCPA. 0 takes the default 0.05; a negative
	// value means none.
	OptOut float64
	// Seed makes the workload reproducible; the same seed gives the same
	// events.
	Seed uint64
}

// Default shares of a generated workload.
const (
	DefaultMismatch = 0.10
	DefaultOptOut   = 0.05
)

// categories are OneTrust's category ids, as analytics.js's consent
// wrapper stamps them: strictly necessary, performance, functional,
// targeting, social media.
var categories = [...]string{"C0001", "C0002", "C0003", "C0004", "C0005"}

// share returns s with 0 meaning def and a negative value meaning none.
func share(s, def float64) (float64, error) {
	switch {
	case s == 0:
		return def, nil
	case s < 0:
		return 0, nil
	case s > 1:
		return 0, fmt.Errorf("bench: share %g is above 1", s)
	}
	return s, nil
}

// Generate makes realistic analytics.js events (track, identify and page
// calls with properties, context and context.consent.categoryPreferences)
// and the stored consent of their users. Every event's user has a stored
// record; the consent of a share of events (cfg.Mismatch) differs from it
// in one category, and a share of the records (cfg.OptOut) opts out of
// sale under CCPA. One event in ten carries only an anonymousId, an alias
// of its user's record.
//
// # Results
//   - the workload, its Store a [consentstore.Memory];
//   - an error when a share is above 1 or a count is negative.
func Generate(cfg GenerateConfig) (*Workload, error) {
	if cfg.Events < 0 || cfg.Users < 0 {
		return nil, fmt.Errorf("bench: %d events for %d users: counts must not be negative", cfg.Events, cfg.Users)
	}
	n := cfg.Events
	if n == 0 {
		n = 1000
	}
	users := cfg.Users
	if users == 0 {
		users = max(1, n/2)
	}
	mismatch, err := share(cfg.Mismatch, DefaultMismatch)
	if err != nil {
		return nil, err
	}
	optOut, err := share(cfg.OptOut, DefaultOptOut)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x1b5e7f))
	store := consentstore.NewMemory()
	prefs := make([][len(categories)]bool, users)
	for u := range users {
		rec := &consent.Record{ID: userID(u), Aliases: []string{anonID(u)}, UpdatedAt: 1700000000000}
		for i, c := range categories {
			prefs[u][i] = i == 0 || rng.Float64() < 0.6 // C0001 is always on
			rec.Categories = append(rec.Categories, consent.Category{Name: c, Consented: prefs[u][i], Timestamp: 1700000000000})
		}
		optedOut := rng.Float64() < optOut
		if optedOut || rng.Float64() < 0.5 { // half the others decided not to opt out
			rec.Purposes = append(rec.Purposes, consent.Purpose{Regulation: "ccpa", Name: "data_sale_opt_out",
				Consented: optedOut, Timestamp: 1700000000000})
		}
		if _, err := store.Put(rec); err != nil {
			return nil, fmt.Errorf("bench: stored consent of %s: %w", rec.ID, err)
		}
	}
	// Which events mismatch: exactly round(n × mismatch) of them, spread.
	events := make([][]byte, n)
	wantMismatch := int(float64(n)*mismatch + 0.5)
	for i := range n {
		u := rng.IntN(users)
		p := prefs[u]
		if i*wantMismatch/n != (i+1)*wantMismatch/n { // a Bresenham spread
			c := 1 + rng.IntN(len(categories)-1)
			p[c] = !p[c]
		}
		events[i] = event(rng, i, u, p, i%10 == 9)
	}
	return &Workload{Events: events, Store: store,
		Source: fmt.Sprintf("generated: %d events, %d users, %.0f%% consent mismatch, %.0f%% CCPA opt-out", n, users, mismatch*100, optOut*100)}, nil
}

func userID(u int) string { return fmt.Sprintf("user-%d", u) }
func anonID(u int) string { return fmt.Sprintf("0b5c7e4e-9f6a-4d3b-8c2a-%012d", u) }

var (
	trackNames = [...]string{"Order Completed", "Product Viewed", "Product Added", "Checkout Started", "Signed Up"}
	pages      = [...]struct{ path, title string }{{"/", "Home"}, {"/products/monopoly", "Monopoly: 3rd Edition"}, {"/cart", "Cart"}, {"/checkout", "Checkout"}, {"/blog/consent", "Why consent matters"}}
)

// event writes one analytics.js event: 60% track, 20% identify, 20% page.
func event(rng *rand.Rand, i, u int, prefs [len(categories)]bool, anonymous bool) []byte {
	var b bytes.Buffer
	kind := rng.IntN(10)
	typ := "track"
	switch {
	case kind >= 8:
		typ = "page"
	case kind >= 6:
		typ = "identify"
	}
	fmt.Fprintf(&b, `{"type":%q,`, typ)
	if !anonymous {
		fmt.Fprintf(&b, `"userId":%q,`, userID(u))
	}
	fmt.Fprintf(&b, `"anonymousId":%q,"messageId":"ajs-next-1700000000000-%08d","timestamp":"2026-11-23T10:%02d:%02d.000Z","sentAt":"2026-11-23T10:%02d:%02d.100Z",`,
		anonID(u), i, i/60%60, i%60, i/60%60, i%60)
	pg := pages[rng.IntN(len(pages))]
	switch typ {
	case "track":
		name := trackNames[rng.IntN(len(trackNames))]
		fmt.Fprintf(&b, `"event":%q,"properties":{"order_id":"50314b8e9bcf%012d","total":%.2f,"revenue":%.2f,"currency":"USD",`+
			`"products":[{"product_id":"507f1f77bcf86cd799439011","sku":"45790-32","name":"Monopoly: 3rd Edition","price":19,"quantity":%d}]},`,
			name, i, 10+rng.Float64()*90, 8+rng.Float64()*80, 1+rng.IntN(3))
	case "identify":
		fmt.Fprintf(&b, `"traits":{"email":"person%d@example.com","name":"Person %d","plan":%q,"logins":%d},`,
			u, u, [...]string{"free", "pro", "enterprise"}[rng.IntN(3)], rng.IntN(200))
	case "page":
		fmt.Fprintf(&b, `"name":%q,"properties":{"path":%q,"url":"https://shop.example.com%s","title":%q,"referrer":"https://www.google.com/"},`,
			pg.title, pg.path, pg.path, pg.title)
	}
	fmt.Fprintf(&b, `"context":{"library":{"name":"analytics.js","version":"next-1.55.0"},"page":{"path":%q,"url":"https://shop.example.com%s","title":%q},`+
		`"userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36","ip":"203.0.113.%d","locale":"en-US",`+
		`"consent":{"categoryPreferences":{`, pg.path, pg.path, pg.title, 1+u%250)
	for c, name := range categories {
		if c > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `%q:%t`, name, prefs[c])
	}
	b.WriteString(`}}},"integrations":{"All":true}}`)
	return b.Bytes()
}

// MaxEventBytes bounds one event line of ReadEvents.
const MaxEventBytes = 1 << 20

// ReadEvents reads NDJSON events: one JSON object per line, blank lines
// skipped. name identifies the input in errors, which say the line.
//
// # Results
//   - the events, each its own buffer;
//   - an error for a line that is not a JSON object or is longer than
//     [MaxEventBytes], or when the input holds no event.
func ReadEvents(r io.Reader, name string) ([][]byte, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxEventBytes)
	var events [][]byte
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if b[0] != '{' || !json.Valid(b) {
			return nil, fmt.Errorf("bench: events %s:%d: not a JSON object: %.60q", name, line, b)
		}
		events = append(events, bytes.Clone(b))
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("bench: events %s:%d: a line is longer than %d bytes: one event per line?", name, line+1, MaxEventBytes)
		}
		return nil, fmt.Errorf("bench: events %s: %w", name, err)
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("bench: events %s: no event in it (NDJSON expected: one JSON object per line)", name)
	}
	return events, nil
}

// LoadEvents reads the NDJSON events of a file; see [ReadEvents].
func LoadEvents(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bench: events: %w", err)
	}
	defer f.Close()
	return ReadEvents(f, path)
}
