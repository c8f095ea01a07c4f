package runtime

import (
	"errors"
	"fmt"
	stdruntime "runtime"
	"time"
)

// Limits bound one function. The zero value of each field takes its default.
type Limits struct {
	// MemoryPages caps the guest's linear memory, in 64 KiB pages.
	// Default 2048 (128 MiB).
	MemoryPages uint32
	// HighWaterPages recycles an instance whose memory has grown past this
	// many pages after an event (standard Go guests grow under load).
	// Default: half of MemoryPages.
	HighWaterPages uint32
	// Timeout is the time one event may take. Default 1s (Segment's is 5s).
	// The Engine's watchdog stops an event between Timeout and Timeout plus
	// 10 ms (two of its ticks); Timeout counts in whole milliseconds.
	Timeout time.Duration
	// StartTimeout is the time an instance's start-up (_initialize) may take.
	// Default 10s.
	StartTimeout time.Duration
	// MaxEventBytes caps the event after the function's changes.
	// Default 64 KiB (twice Segment's 32 KB per event).
	MaxEventBytes int
	// MaxLogBytes caps what one event may log. Default 4 KiB (Segment's cap
	// on test-run logs).
	MaxLogBytes int
	// PoolSize is the most instances running at once. Default GOMAXPROCS.
	PoolSize int
}

// Default limits.
const (
	DefaultMemoryPages   = 2048
	DefaultTimeout       = time.Second
	DefaultStartTimeout  = 10 * time.Second
	DefaultMaxEventBytes = 64 << 10
	DefaultMaxLogBytes   = 4 << 10
	// MaxTimeout caps Timeout and StartTimeout.
	MaxTimeout = 24 * time.Hour
)

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	if l.MemoryPages == 0 {
		l.MemoryPages = DefaultMemoryPages
	}
	if l.MemoryPages > 65536 {
		l.MemoryPages = 65536
	}
	if l.HighWaterPages == 0 || l.HighWaterPages > l.MemoryPages {
		l.HighWaterPages = l.MemoryPages / 2
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	if l.StartTimeout <= 0 {
		l.StartTimeout = DefaultStartTimeout
	}
	l.Timeout, l.StartTimeout = min(l.Timeout, MaxTimeout), min(l.StartTimeout, MaxTimeout)
	if l.MaxEventBytes <= 0 {
		l.MaxEventBytes = DefaultMaxEventBytes
	}
	if l.MaxLogBytes <= 0 {
		l.MaxLogBytes = DefaultMaxLogBytes
	}
	if l.PoolSize <= 0 {
		l.PoolSize = stdruntime.GOMAXPROCS(0)
	}
	return l
}

// ModuleLimits bound what a module may be, checked before it is compiled
// (the runtime section of insertfn's configuration file, under the keys
// its fields' tags give)
// (nothing is allocated for a module that breaks one): its size, its code,
// its functions, tables and locals, and the entries of each section. They
// are the Engine's, for every function ([Config]); MaxFunctionBlocks is
// checked while the module is instrumented, still before compilation. The zero value of each
// field takes its default. A module's declared memory minimum is checked
// against its function's Limits.MemoryPages at the same time.
type ModuleLimits struct {
	// MaxModuleBytes bounds the module's size. Default 32 MiB (the admin
	// API's upload limit); a Go guest of the SDK is about 3 MiB.
	MaxModuleBytes int `yaml:"max_module_bytes" json:"max_module_bytes"`
	// MaxCodeBytes bounds the code section, which compilation's time and
	// memory follow. Default 16 MiB (about 12 s and 300 MB to compile on
	// a 2020s core; a Go guest of the SDK has 1.7 MiB of code).
	MaxCodeBytes int `yaml:"max_code_bytes" json:"max_code_bytes"`
	// MaxFunctionBytes bounds one function's body. Default 2 MiB.
	MaxFunctionBytes int `yaml:"max_function_bytes" json:"max_function_bytes"`
	// MaxFunctions bounds the functions, imported and defined. Default
	// 100 000 (a Go guest of the SDK has about 1 900).
	MaxFunctions int `yaml:"max_functions" json:"max_functions"`
	// MaxLocals bounds the locals of one function. Default 50 000.
	MaxLocals int `yaml:"max_locals" json:"max_locals"`
	// MaxTables bounds the tables. Default 16.
	MaxTables int `yaml:"max_tables" json:"max_tables"`
	// MaxTableElements bounds a table's initial size, in entries (each
	// costs every instance 8 bytes). Default 100 000.
	MaxTableElements int `yaml:"max_table_elements" json:"max_table_elements"`
	// MaxFunctionBlocks bounds the blocks (block, loop, if, try) of one
	// function. Default 5 000 (the Go guests of the SDK's examples have at
	// most 799). wazero's compiler takes time in proportion to a
	// function's blocks times its reads of locals: at 5 000 blocks a
	// function of MaxFunctionBytes compiled in 23 s on a 2020s core.
	MaxFunctionBlocks int `yaml:"max_function_blocks" json:"max_function_blocks"`
	// MaxSectionItems bounds the entries of any one section (types,
	// imports, globals, exports, element and data segments). Default
	// 1 000 000 (a Go guest of the SDK has 32 585 data segments).
	MaxSectionItems int `yaml:"max_section_items" json:"max_section_items"`
}

// Default module limits.
const (
	DefaultMaxModuleBytes    = 32 << 20
	DefaultMaxCodeBytes      = 16 << 20
	DefaultMaxFunctionBytes  = 2 << 20
	DefaultMaxFunctions      = 100_000
	DefaultMaxLocals         = 50_000
	DefaultMaxTables         = 16
	DefaultMaxTableElements  = 100_000
	DefaultMaxSectionItems   = 1_000_000
	DefaultMaxFunctionBlocks = 5_000
)

// LimitError is a module limit set out of range, named by its key
// ("max_module_bytes").
type LimitError struct {
	Key, Problem string
}

// Error returns "runtime: KEY: PROBLEM".
func (e *LimitError) Error() string { return "runtime: " + e.Key + ": " + e.Problem }

// ConfigKey returns the key at fault.
func (e *LimitError) ConfigKey() string { return e.Key }

// ConfigProblem says what is wrong with the key.
func (e *LimitError) ConfigProblem() string { return e.Problem }

// Validate reports every limit set below zero (zero takes the default),
// each a [*LimitError], joined.
func (l ModuleLimits) Validate() error {
	var errs []error
	for _, f := range []struct {
		key string
		v   int
	}{
		{"max_module_bytes", l.MaxModuleBytes}, {"max_code_bytes", l.MaxCodeBytes}, {"max_function_bytes", l.MaxFunctionBytes},
		{"max_functions", l.MaxFunctions}, {"max_locals", l.MaxLocals}, {"max_tables", l.MaxTables},
		{"max_table_elements", l.MaxTableElements}, {"max_section_items", l.MaxSectionItems}, {"max_function_blocks", l.MaxFunctionBlocks},
	} {
		if f.v < 0 {
			errs = append(errs, &LimitError{Key: f.key, Problem: fmt.Sprintf("%d is negative (0 or absent: the default)", f.v)})
		}
	}
	return errors.Join(errs...)
}

// WithDefaults returns l with every zero (or negative) field set to its
// default.
func (l ModuleLimits) WithDefaults() ModuleLimits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxModuleBytes, DefaultMaxModuleBytes)
	def(&l.MaxCodeBytes, DefaultMaxCodeBytes)
	def(&l.MaxFunctionBytes, DefaultMaxFunctionBytes)
	def(&l.MaxFunctions, DefaultMaxFunctions)
	def(&l.MaxLocals, DefaultMaxLocals)
	def(&l.MaxTables, DefaultMaxTables)
	def(&l.MaxTableElements, DefaultMaxTableElements)
	def(&l.MaxSectionItems, DefaultMaxSectionItems)
	def(&l.MaxFunctionBlocks, DefaultMaxFunctionBlocks)
	return l
}
