//go:build race

package app

// raceEnabled: timings under the race detector mean nothing.
const raceEnabled = true
