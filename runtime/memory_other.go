//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package runtime

// mapping is, on systems without mmap here, a slice of the Go heap of the
// whole cap, allocated when the instance starts (the system maps it lazily)
// and left to the garbage collector when the instance closes.
type mapping struct{ region []byte }

func reserve(n uint64) mapping {
	if n == 0 || n > 1<<32 {
		return mapping{}
	}
	return mapping{region: make([]byte, n)}
}

func (m *mapping) size() int { return len(m.region) }

func (m *mapping) commit(n int) ([]byte, bool) {
	if n > len(m.region) {
		return nil, false
	}
	return m.region[:n], true
}

func (m *mapping) release() { m.region = nil }
