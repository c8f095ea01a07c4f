package cost

import "math"

// Prices are what a serverless provider charges; see the package
// documentation for the formula.
type Prices struct {
	// GBSecond is the price of one GB-second of compute, in dollars.
	GBSecond float64 `json:"gb_second"`
	// PerMillionRequests is the price of a million invocations, in dollars.
	PerMillionRequests float64 `json:"per_million_requests"`
}

// Default prices: AWS Lambda's public list prices (x86, us-east-1), the
// infrastructure Segment's functions run on.
const (
	LambdaGBSecond           = 0.0000166667
	LambdaPerMillionRequests = 0.20
)

// DefaultPrices returns AWS Lambda's public list prices for x86.
func DefaultPrices() Prices {
	return Prices{GBSecond: LambdaGBSecond, PerMillionRequests: LambdaPerMillionRequests}
}

// Cost is a projection per million events, in dollars unless said.
type Cost struct {
	// GBSeconds is the compute a million events use: 1e6 × seconds per
	// event × instance GB.
	GBSeconds float64 `json:"gb_seconds"`
	Compute   float64 `json:"compute"`
	Requests  float64 `json:"requests"`
	Total     float64 `json:"total"`
	// LambdaBilled is what a million events cost as one Lambda invocation
	// each, billed at least 1 ms and 128 MB per invocation (whole ms).
	LambdaBilled float64 `json:"lambda_billed"`
}

// Project prices a million events that take meanNS nanoseconds each in an
// instance of instanceBytes bytes.
func (p Prices) Project(meanNS float64, instanceBytes int64) Cost {
	const million = 1e6
	gb := float64(instanceBytes) / (1 << 30)
	c := Cost{GBSeconds: million * meanNS / 1e9 * gb}
	c.Compute = c.GBSeconds * p.GBSecond
	c.Requests = p.PerMillionRequests
	c.Total = c.Compute + c.Requests
	billedMS := max(1, math.Ceil(meanNS/1e6))
	billedGB := max(gb, 0.125)
	c.LambdaBilled = million*billedMS/1000*billedGB*p.GBSecond + p.PerMillionRequests
	return c
}
