package runtime

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"sync"
)

// InstanceOverhead is what an instance costs the host besides its linear
// memory, as the memory budget counts it: the module instance, its tables,
// globals and stack, and the host's buffers for it. Measured: under 2 MiB
// for a Go guest of the SDK.
const InstanceOverhead = 4 << 20

// budget bounds the memory of every instance of an Engine's functions:
// each counts for its memory cap plus InstanceOverhead from the moment it
// starts until it is closed, so that the sum of what instances can use
// never exceeds the total, whatever the guests do.
type budget struct {
	total int64 // bytes; 0: no bound

	mu   sync.Mutex
	used int64
	// freed is closed (and replaced) whenever memory is given back, to
	// wake those waiting for some.
	freed chan struct{}
}

func newBudget(total int64) *budget {
	return &budget{total: max(total, 0), freed: make(chan struct{})}
}

// A nil *budget has no bound (a Function made without an Engine, in tests).

// take counts n bytes if the budget has them. When it has not, it returns
// a channel closed the next time memory is given back.
func (b *budget) take(n int64) (bool, <-chan struct{}) {
	if b == nil || b.total == 0 {
		return true, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n <= b.total {
		b.used += n
		return true, nil
	}
	return false, b.freed
}

// give gives back n bytes taken before.
func (b *budget) give(n int64) {
	if b == nil || b.total == 0 || n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

// inUse returns the bytes counted now.
func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// DefaultMemoryBudget returns the default of Config.MemoryBudget: half of
// the memory this process may use, the machine's (MemTotal of
// /proc/meminfo) or its control group's limit (cgroup v2 memory.max, or v1
// memory.limit_in_bytes) if lower; 4 GiB where neither can be read. The
// other half is for the host itself: the queue, the consent store's cache,
// compilation, and events in flight.
func DefaultMemoryBudget() int64 {
	mem := physicalMemory()
	if mem <= 0 {
		return 4 << 30
	}
	return mem / 2
}

// physicalMemory returns the memory the process may use, 0 if unknown.
func physicalMemory() int64 {
	var mem int64
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := bytes.Fields(sc.Bytes())
			if len(f) >= 2 && string(f[0]) == "MemTotal:" {
				if kb, err := strconv.ParseInt(string(f[1]), 10, 64); err == nil {
					mem = kb << 10
				}
				break
			}
		}
	}
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		limit, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
		if err != nil || limit <= 0 { // "max": no limit
			continue
		}
		if mem == 0 || limit < mem {
			mem = limit
		}
	}
	return mem
}
