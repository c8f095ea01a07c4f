//go:build race

package host

// raceEnabled: timings under the race detector mean nothing.
const raceEnabled = true
