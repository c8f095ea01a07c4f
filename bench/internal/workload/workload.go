// Package workload is the benchmarks' workload, shared by the go test
// benchmarks of bench/ and the programs beside them: realistic
// analytics.js track events of Users people whose consent agrees with
// what is stored for them (the common case: most events pass), their
// stored records, and /v1/batch bodies of 100 such events.
package workload

import (
	"bytes"
	"cmp"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/sdk/consent"
)

// Users is how many people the workload's events are of.
const Users = 1000

// Categories are the consent categories of the stored records.
var Categories = []string{"C0001", "C0002", "C0003", "C0004", "C0005"}

// Event returns a track event (1 KB) of user, its consent as stored.
func Event(user int) []byte {
	return fmt.Appendf(nil, `{"type":"track","event":"Order Completed","userId":"user-%d","anonymousId":"0b5c7e4e-9f6a-4d3b-8c2a-%012d",`+
		`"messageId":"ajs-next-1700000000000-%d","timestamp":"2026-11-23T10:00:00.000Z","sentAt":"2026-11-23T10:00:00.100Z",`+
		`"properties":{"order_id":"50314b8e9bcf000000000000","total":27.5,"revenue":25,"currency":"USD","products":[{"product_id":"507f1f77bcf86cd799439011","sku":"45790-32","name":"Monopoly: 3rd Edition","price":19,"quantity":1}]},`+
		`"context":{"library":{"name":"analytics.js","version":"next-1.55.0"},"page":{"path":"/checkout","url":"https://shop.example.com/checkout","title":"Checkout"},`+
		`"userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36","ip":"203.0.113.7","locale":"en-US",`+
		`"consent":{"categoryPreferences":{"C0001":true,"C0002":%t,"C0003":%t,"C0004":%t,"C0005":false}}},"integrations":{"All":true}}`,
		user, user, user, user%2 == 0, user%3 == 0, user%5 == 0)
}

// StoredRecord returns the stored consent of user.
func StoredRecord(user int) *consent.Record {
	vals := []bool{true, user%2 == 0, user%3 == 0, user%5 == 0, false}
	r := &consent.Record{ID: fmt.Sprintf("user-%d", user)}
	for i, c := range Categories {
		r.Categories = append(r.Categories, consent.Category{Name: c, Consented: vals[i], Timestamp: 1700000000000})
	}
	return r
}

// Batch returns a /v1/batch body of 100 realistic events whose
// messageIds start with 16 zeros, and the offsets of those zeros.
func Batch() ([]byte, []int) { return batch(nil) }

// batch builds Batch's body, each event passed through vary (when not
// nil) after its messageId is set.
func batch(vary func(ev []byte) []byte) ([]byte, []int) {
	var buf bytes.Buffer
	var slots []int
	buf.WriteString(`{"batch":[`)
	for j := range 100 {
		if j > 0 {
			buf.WriteByte(',')
		}
		ev := Event(j * 7 % Users)
		id := gjson.GetBytes(ev, "messageId")
		ev = bytes.Replace(ev, []byte(id.Raw), fmt.Appendf(nil, `"%016d-%03d"`, 0, j), 1)
		if vary != nil {
			ev = vary(ev)
		}
		slots = append(slots, buf.Len()+bytes.Index(ev, []byte(`"messageId":"`))+len(`"messageId":"`))
		buf.Write(ev)
	}
	buf.WriteString(`]}`)
	return buf.Bytes(), slots
}

// VariedBatch is Batch with events that differ as those
// of a real batch do: each its own timestamp, order (id, total, one to
// three products of a catalog with their quantities), page, browser,
// address and locale, drawn from a fixed seed. Batch's events
// differ in their ids only, so its batches compress about 30 times,
// which would flatter a queue that compresses; these compress about as
// much as real batches of one source (see bench/README.md).
func VariedBatch() ([]byte, []int) {
	r := rand.New(rand.NewPCG(1, 2))
	type product struct {
		id, sku, name string
		price         float64
	}
	catalog := make([]product, 40)
	for i := range catalog {
		catalog[i] = product{fmt.Sprintf("%016x%08x", r.Uint64(), r.Uint32()), fmt.Sprintf("%05d-%02d", r.IntN(100000), r.IntN(100)),
			[]string{"Monopoly", "Scrabble", "Catan", "Ticket to Ride", "Carcassonne", "Azul", "Pandemic", "Codenames"}[i%8] + fmt.Sprintf(": edition %d", 1+r.IntN(9)),
			float64(r.IntN(20000)) / 100}
	}
	pages := []string{"/", "/checkout", "/cart", "/search", "/account", "/products/board-games", "/products/puzzles", "/sale", "/help/returns", "/blog/top-10-games"}
	agents := []string{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Edg/120.0",
	}
	locales := []string{"en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "nl-NL", "pt-BR"}
	return batch(func(ev []byte) []byte {
		ts := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).Add(time.Duration(r.IntN(3_600_000)) * time.Millisecond)
		page := pages[r.IntN(len(pages))]
		var products []map[string]any
		total := 0.0
		for range 1 + r.IntN(3) {
			p := catalog[r.IntN(len(catalog))]
			q := 1 + r.IntN(4)
			total += p.price * float64(q)
			products = append(products, map[string]any{"product_id": p.id, "sku": p.sku, "name": p.name, "price": p.price, "quantity": q})
		}
		for _, set := range []struct {
			path string
			v    any
		}{
			{"timestamp", ts.Format("2006-01-02T15:04:05.000Z")},
			{"sentAt", ts.Add(time.Duration(r.IntN(2000)) * time.Millisecond).Format("2006-01-02T15:04:05.000Z")},
			{"properties.order_id", fmt.Sprintf("%016x%08x", r.Uint64(), r.Uint32())},
			{"properties.total", float64(int(total*100)) / 100},
			{"properties.revenue", float64(int(total*85)) / 100},
			{"properties.products", products},
			{"context.page", map[string]any{"path": page, "url": "https://shop.example.com" + page, "title": cmp.Or(strings.Trim(page, "/"), "home") + " | Shop", "referrer": "https://www.google.com/search?q=" + fmt.Sprint(r.Uint32())}},
			{"context.userAgent", agents[r.IntN(len(agents))]},
			{"context.ip", fmt.Sprintf("%d.%d.%d.%d", 1+r.IntN(223), r.IntN(256), r.IntN(256), 1+r.IntN(254))},
			{"context.locale", locales[r.IntN(len(locales))]},
		} {
			var err error
			if ev, err = sjson.SetBytes(ev, set.path, set.v); err != nil {
				panic(err)
			}
		}
		return ev
	})
}

// Records are the workload's stored people: five categories, a
// GDPR purpose and an alias each.
func Records(n int) []consentstore.Update {
	out := make([]consentstore.Update, n)
	for u := range n {
		r := StoredRecord(u)
		r.Aliases = []string{fmt.Sprintf("anon-%d", u)}
		r.Purposes = []consent.Purpose{{Regulation: "gdpr", Name: "location_collection", Consented: u%2 == 0, Timestamp: 1700000000000, Document: "v43"}}
		out[u] = consentstore.Update{Record: *r, Source: "bench"}
	}
	return out
}
