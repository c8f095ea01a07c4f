//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package runtime

import "syscall"

// mapping is an address range reserved with mmap (no access, no swap
// reserved), of which a prefix is committed (readable and writable).
type mapping struct {
	region    []byte
	committed int
}

// reserve reserves n bytes of address space. On failure the mapping is
// empty and every commit fails: the guest's memory.grow returns -1.
func reserve(n uint64) mapping {
	if n == 0 || n > 1<<32 {
		return mapping{}
	}
	b, err := syscall.Mmap(-1, 0, int(n), syscall.PROT_NONE, syscall.MAP_PRIVATE|syscall.MAP_ANON|mapNoReserve)
	if err != nil {
		return mapping{}
	}
	return mapping{region: b}
}

func (m *mapping) size() int { return len(m.region) }

// commit makes the first n bytes usable (n is a multiple of the 64 KiB
// page of WebAssembly, so of the system's page) and returns them.
func (m *mapping) commit(n int) ([]byte, bool) {
	if n > len(m.region) {
		return nil, false
	}
	if n > m.committed {
		if err := syscall.Mprotect(m.region[m.committed:n], syscall.PROT_READ|syscall.PROT_WRITE); err != nil {
			return nil, false
		}
		m.committed = n
	}
	return m.region[:n], true
}

// release unmaps the range: its pages go back to the system at once.
func (m *mapping) release() {
	if m.region != nil {
		_ = syscall.Munmap(m.region)
		m.region, m.committed = nil, 0
	}
}
