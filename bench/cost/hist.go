package cost

import "math/bits"

// subBits sets the histogram's precision: 2^subBits buckets per power of two.
const subBits = 6

const (
	subCount   = 1 << subBits
	numBuckets = subCount * (64 - subBits + 1)
)

// histogram counts durations in nanoseconds in log-linear buckets: values
// below 64 exactly, above that 64 buckets per power of two, so a bucket is
// at most 1/64 of its lower bound wide. Recording allocates nothing.
type histogram struct {
	counts   [numBuckets]uint64
	n        uint64
	sum      uint64
	min, max uint64
}

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return (shift+1)*subCount + int(v>>uint(shift)) - subCount
}

// bucketBounds returns the smallest and largest value of bucket i.
func bucketBounds(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i)
	}
	shift := uint(i/subCount - 1)
	m := uint64(i%subCount + subCount)
	return m << shift, (m+1)<<shift - 1
}

func (h *histogram) record(v uint64) {
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += v
}

func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

func (h *histogram) mean() float64 {
	if h.n == 0 {
		return 0
	}
	return float64(h.sum) / float64(h.n)
}

// quantile returns the value below which a share q of the values fall: the
// middle of its bucket, kept within the values seen.
func (h *histogram) quantile(q float64) uint64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketBounds(i)
			return min(max(lo+(hi-lo)/2, h.min), h.max)
		}
	}
	return h.max
}

// Bucket is one bucket of a latency histogram.
type Bucket struct {
	// UpToNS is the bucket's upper bound in nanoseconds (inclusive).
	UpToNS uint64 `json:"up_to_ns"`
	// Count is the events that took longer than the previous bucket's
	// bound and at most UpToNS.
	Count uint64 `json:"count"`
}

// buckets returns the non-empty buckets in order.
func (h *histogram) buckets() []Bucket {
	var out []Bucket
	for i, c := range h.counts {
		if c > 0 {
			_, hi := bucketBounds(i)
			out = append(out, Bucket{UpToNS: hi, Count: c})
		}
	}
	return out
}
