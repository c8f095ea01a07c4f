package runtime

import "syscall"

// mapNoReserve: a reservation takes no swap space (and counts for nothing
// under strict overcommit) until it is committed.
const mapNoReserve = syscall.MAP_NORESERVE
