//go:build !race

package runtime_test

// raceEnabled reports whether the test binary is built with -race.
const raceEnabled = false
