// Package bench holds the benchmarks that cross packages: a consent function
// through the whole sandbox against the same check written natively, and
// the cost of an empty call. Run them with `make bench`.
package bench
