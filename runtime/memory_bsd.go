//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package runtime

// mapNoReserve: these systems reserve nothing for PROT_NONE mappings.
const mapNoReserve = 0
