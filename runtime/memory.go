package runtime

import (
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
)

// linearMemory is one instance's linear memory, kept out of the Go heap
// (memory_unix.go): the address range of its cap is reserved when the
// instance starts, pages are committed as the guest grows, and the whole
// range is unmapped when the instance closes, so that the operating system
// has the memory back at once.
//
// wazero's own memory is a Go slice that grows by append: each memory.grow
// copies the memory into a larger slice and leaves the old one to the
// garbage collector, which also lets the heap grow to twice what is live
// before it collects. An instance at a 128 MiB cap cost the host about
// 3.3 times its cap that way, and the heap stayed large after the instance
// was gone. Here an instance costs the pages it uses, at most its cap.
//
// A linearMemory also enforces the cap itself, so that it sees every
// memory.grow refused for it (wazero refuses a grow past its own limit
// without asking the allocator): a guest that traps after a refused grow
// ran out of memory, whatever its trap says.
type linearMemory struct {
	limit uint64  // the cap, in bytes
	mem   mapping // the reservation, committed up to len(buf)
	buf   []byte
	// refused is the largest size a memory.grow asked for past the cap;
	// 0 when none was refused.
	refused atomic.Uint64
	// committed is len(buf), for Stats, which reads it while the
	// instance may be running.
	committed atomic.Uint64
	freed     bool
}

// Allocate implements experimental.MemoryAllocator for the instance's one
// memory: it reserves min(max, limit) bytes.
func (m *linearMemory) Allocate(_, max uint64) experimental.LinearMemory {
	m.mem = reserve(min(max, m.limit))
	return m
}

// Reallocate implements experimental.LinearMemory: it commits the memory
// up to size bytes, or returns nil (memory.grow returns -1) past the cap
// or when the operating system refuses.
func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > m.limit || size > uint64(m.mem.size()) {
		if size > m.refused.Load() {
			m.refused.Store(size)
		}
		return nil
	}
	if size > uint64(len(m.buf)) {
		b, ok := m.mem.commit(int(size))
		if !ok {
			m.refused.Store(size)
			return nil
		}
		m.buf = b
		m.committed.Store(uint64(len(b)))
	}
	return m.buf[:size:size]
}

// Free implements experimental.LinearMemory: it gives the memory back to
// the operating system. wazero calls it when the module closes, and
// instance.close calls it for an instance that failed to instantiate;
// the second call does nothing.
func (m *linearMemory) Free() {
	if m == nil || m.freed {
		return
	}
	m.freed = true
	m.buf = nil
	m.committed.Store(0)
	m.mem.release()
}

// refusedGrow returns the largest size refused to a memory.grow, 0 if none.
func (m *linearMemory) refusedGrow() uint64 {
	if m == nil {
		return 0
	}
	return m.refused.Load()
}
