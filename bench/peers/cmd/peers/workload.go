package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/insertfn/insertfn/sdk/consent"
)

// The workload is bench/runtime_bench_test.go's: 1000 realistic
// analytics.js track events (1 KB each, consent stamped in
// context.consent.categoryPreferences) against the stored consent of 1000
// users. Mixed (the default), it has two changes so that every verdict path
// runs and the counts say something: the stored consent of every user whose
// number ends in 7 disagrees with the event in C0003 (the event is
// dropped), and users whose number ends in 99 have no stored consent (the
// event passes). Unmixed, it is bench/'s workload exactly: every event
// agrees with its stored consent.
const users = 1000

var categories = []string{"C0001", "C0002", "C0003", "C0004", "C0005"}

// event is bench/runtime_bench_test.go's event, byte for byte.
func event(user int) []byte {
	return fmt.Appendf(nil, `{"type":"track","event":"Order Completed","userId":"user-%d","anonymousId":"0b5c7e4e-9f6a-4d3b-8c2a-%012d",`+
		`"messageId":"ajs-next-1700000000000-%d","timestamp":"2026-11-23T10:00:00.000Z","sentAt":"2026-11-23T10:00:00.100Z",`+
		`"properties":{"order_id":"50314b8e9bcf000000000000","total":27.5,"revenue":25,"currency":"USD","products":[{"product_id":"507f1f77bcf86cd799439011","sku":"45790-32","name":"Monopoly: 3rd Edition","price":19,"quantity":1}]},`+
		`"context":{"library":{"name":"analytics.js","version":"next-1.55.0"},"page":{"path":"/checkout","url":"https://shop.example.com/checkout","title":"Checkout"},`+
		`"userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36","ip":"203.0.113.7","locale":"en-US",`+
		`"consent":{"categoryPreferences":{"C0001":true,"C0002":%t,"C0003":%t,"C0004":%t,"C0005":false}}},"integrations":{"All":true}}`,
		user, user, user, user%2 == 0, user%3 == 0, user%5 == 0)
}

// storedRecord is bench/runtime_bench_test.go's stored record, with the
// changes described above when mixed; ok is false for a user without one.
func storedRecord(user int, mixed bool) (r *consent.Record, ok bool) {
	if mixed && user%100 == 99 {
		return nil, false
	}
	vals := []bool{true, user%2 == 0, user%3 == 0, user%5 == 0, false}
	if mixed && user%10 == 7 {
		vals[2] = !vals[2]
	}
	r = &consent.Record{ID: fmt.Sprintf("user-%d", user)}
	for i, c := range categories {
		r.Categories = append(r.Categories, consent.Category{Name: c, Consented: vals[i], Timestamp: 1700000000000})
	}
	return r, true
}

// expected returns the verdict counts every implementation must reach on
// one pass over the workload.
func expected(mixed bool) counts {
	var c counts
	for u := range users {
		if mixed && u%10 == 7 && u%100 != 99 {
			c.dropped++
		} else {
			c.delivered++
		}
	}
	return c
}

// recordStore is insertfn's consent store: a map of shared, read-only
// records.
type recordStore map[string]*consent.Record

// Get returns the user's record, or consent.ErrNotFound.
func (s recordStore) Get(_ context.Context, id string) (*consent.Record, error) {
	if r, ok := s[id]; ok {
		return r, nil
	}
	return nil, consent.ErrNotFound
}

// workload holds the events and the same stored consent in the form each
// implementation reads it, all made before any clock starts.
type workload struct {
	events  [][]byte
	records recordStore                // insertfn
	native  map[string]map[string]bool // native Go
	json    map[string][]byte          // Extism: the categories as a JSON object
}

func newWorkload(mixed bool) (*workload, error) {
	w := &workload{
		records: make(recordStore, users),
		native:  make(map[string]map[string]bool, users),
		json:    make(map[string][]byte, users),
	}
	for u := range users {
		w.events = append(w.events, event(u))
		r, ok := storedRecord(u, mixed)
		if !ok {
			continue
		}
		m := r.CategoryMap()
		js, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		w.records[r.ID], w.native[r.ID], w.json[r.ID] = r, m, js
	}
	return w, nil
}
