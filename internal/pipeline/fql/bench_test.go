package fql

import (
	"strings"
	"testing"
)

// benchEvent is a realistic 1 KB track event, its members in the order
// the ingest stores them.
var benchEvent = []byte(`{"type":"track","event":"Order Completed","userId":"u-12345","anonymousId":"a-6789-abcdef","messageId":"ifn-0f3c2a9e8d7b6a5c",` +
	`"integrations":{"All":true},"context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false,"Functional":true}},` +
	`"library":{"name":"analytics.js","version":"2.11.1"},"page":{"path":"/checkout/complete","url":"https://shop.example.com/checkout/complete","referrer":"https://shop.example.com/cart","title":"Thank you"},` +
	`"userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36","ip":"203.0.113.7","locale":"en-US","timezone":"Europe/Berlin"},` +
	`"properties":{"order_id":"50314b8e9bcf000000000000","total":27.5,"revenue":25,"shipping":3,"tax":2,"discount":2.5,"coupon":"hasbros","currency":"EUR",` +
	`"products":[{"product_id":"507f1f77bcf86cd799439011","sku":"45790-32","name":"Monopoly: 3rd Edition","price":19,"quantity":1,"category":"Games"},` +
	`{"product_id":"505bd76785ebb509fc183733","sku":"46493-32","name":"Uno Card Game","price":3,"quantity":2,"category":"Games"}]},` +
	`"timestamp":"2026-12-07T10:00:00.000Z","receivedAt":"2026-12-07T10:00:00.120Z","sentAt":"2026-12-07T10:00:00.100Z"}`)

// benchFilters are five filters a destination might have.
var benchFilters = []string{
	`type = 'track' and event = 'Order Completed'`,
	`context.consent.categoryPreferences.Advertising = true`,
	`properties.total > 100 or properties.currency in ['USD', 'GBP']`,
	`match(context.page.path, '/checkout/*') and !contains(context.userAgent, 'bot')`,
	`length(userId) > 0 and typeof(properties.products) = 'list'`,
}

// BenchmarkMatch: five filters on a 1 KB event, read once into an Event
// as the pipeline reads it; ns/op is per event, for the five, ns/filter
// per filter.
func BenchmarkMatch(b *testing.B) {
	if len(benchEvent) < 1000 || len(benchEvent) > 1400 {
		b.Fatalf("the event is %d bytes, not about 1 KB", len(benchEvent))
	}
	var exprs []*Expr
	for _, src := range benchFilters {
		e, err := Parse(src)
		if err != nil {
			b.Fatal(err)
		}
		exprs = append(exprs, e)
	}
	b.ReportAllocs()
	n := 0
	var ev Event
	for b.Loop() {
		ev.Reset(benchEvent)
		for _, e := range exprs {
			if e.MatchEvent(&ev) {
				n++
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(exprs)), "ns/filter")
	if n == 0 {
		b.Fatal("no filter matched")
	}
}

func BenchmarkParse(b *testing.B) {
	src := strings.Join(benchFilters, " or ")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(src); err != nil {
			b.Fatal(err)
		}
	}
}
