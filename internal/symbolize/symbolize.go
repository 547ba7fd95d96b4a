// Package symbolize turns the call traces of kernel reports into source
// positions, as the kernel's scripts/decode_stacktrace.sh does, but in
// process: it reads the vmlinux (and module .ko files) with debug/elf and
// debug/dwarf instead of running nm and addr2line.
//
// A frame such as " foo_ioctl+0x1c/0x40" is resolved by finding foo_ioctl
// in the ELF symbol table, adding the offset and looking the address up in
// the DWARF line table. A frame in a call trace holds a return address, the
// instruction after the call, so its line is that of the byte before it
// (offset - 1); the frame of a "RIP:" (or arm64 "pc :") line, and the
// address a WARNING names, point at the instruction itself. Functions
// inlined at the address are listed too, innermost first.
//
// Module frames (" foo+0x1c/0x40 [mod]") are resolved in mod.ko, found by
// name (with '-' and '_' alike, as modprobe does) under the module
// directory. A .ko is a relocatable object: its symbols and DWARF addresses
// are offsets into their own sections, several of which (.text,
// .init.text, .exit.text) start at zero. The package lays the allocated
// sections out one after another, as a linker would, and applies the
// relocations of the debug sections itself, so an address names one place
// in one section. It does so for x86-64 and arm64 objects; modules of
// other architectures are left undecoded.
//
// The report text comes from the guest and is untrusted: module names in it
// are only looked up in an index of the module directory (never joined to
// a path), at most MaxModules modules are opened, at most MaxDecodeLines
// lines of a text of at most MaxDecodeLine bytes each are decoded, and
// results are cached in a cache of at most MaxCache entries. The ELF files
// are the host's, but their debug data is still bounded by MaxDebugData
// before any of it is read. A frame that cannot be resolved unambiguously
// (no such symbol, several static functions of that name none of which
// the frame's size singles out, an offset past the function's end, no line
// information) stays as it was: a wrong position is worse than none.
package symbolize

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Bounds.
const (
	// MaxDebugData bounds the DWARF sections read from one ELF file; a
	// vmlinux with full debug information has well under 1 GiB of them.
	MaxDebugData = 4 << 30
	// MaxModules bounds the module files opened by one Symbolizer.
	MaxModules = 256
	// MaxModuleFiles bounds the directory entries visited to index the
	// module directory.
	MaxModuleFiles = 1 << 20
	// MaxCache bounds the cached frame lookups.
	MaxCache = 1 << 14
	// MaxDecodeLines bounds the lines of one text Decode looks at.
	MaxDecodeLines = 10000
	// MaxDecodeLine bounds the length of a line Decode looks at.
	MaxDecodeLine = 4096
)

// Sentinel errors, wrapped with the file they concern.
var (
	ErrNoSymbols   = errors.New("no symbol table")
	ErrNoDWARF     = errors.New("no DWARF line information")
	ErrTooLarge    = errors.New("debug information exceeds limit")
	ErrUnsupported = errors.New("unsupported relocatable object")
)

// Symbolizer resolves kernel frames to source positions. It is safe for
// concurrent use.
type Symbolizer struct {
	mu        sync.Mutex
	vmlinux   *object
	moduleDir string
	modIndex  map[string]string  // module name ('-' as '_') to .ko path; nil until first needed
	modules   map[string]*object // opened modules; nil for one that cannot be used
	cache     map[frameKey]position
}

type frameKey struct {
	module string
	fn     string
	off    uint64
	size   uint64
}

// position is where a frame's address is in the source.
type position struct {
	ok      bool
	file    string
	line    int
	inlined []string // "helper (file:line)", innermost first
}

// Open returns a Symbolizer for the kernel image vmlinux (an ELF file with
// DWARF; "" for none, so that only module frames decode) and the modules
// under moduleDir ("" for none), searched recursively for NAME.ko files.
func Open(vmlinux, moduleDir string) (*Symbolizer, error) {
	s := &Symbolizer{modules: map[string]*object{}, cache: map[frameKey]position{}}
	if vmlinux != "" {
		o, err := openObject(vmlinux)
		if err != nil {
			return nil, fmt.Errorf("symbolize: %w", err)
		}
		s.vmlinux = o
	}
	if moduleDir != "" {
		st, err := os.Stat(moduleDir)
		if err == nil && !st.IsDir() {
			err = fmt.Errorf("not a directory")
		}
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("symbolize: module directory %s: %w", moduleDir, err)
		}
		s.moduleDir = moduleDir
	}
	return s, nil
}

// Close closes the files the Symbolizer opened.
func (s *Symbolizer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if s.vmlinux != nil {
		errs = append(errs, s.vmlinux.close())
		s.vmlinux = nil
	}
	for name, o := range s.modules {
		if o != nil {
			errs = append(errs, o.close())
		}
		delete(s.modules, name)
	}
	return errors.Join(errs...)
}

// Frame returns the source position of fn+off, in module's .ko if module
// is not "" and in the vmlinux otherwise: the file and line within fn and
// the functions inlined into fn at that address, innermost first, each as
// "name (file:line)". Frame looks up the address as given; for a return
// address the caller passes off-1.
func (s *Symbolizer) Frame(fn string, off uint64, module string) (file string, line int, inlined []string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.frame(fn, off, 0, module)
	return p.file, p.line, p.inlined, p.ok
}

// frame resolves fn+off in the object of module; size is the function size
// the frame printed (0 if unknown), which singles out one of several
// functions of the same name.
func (s *Symbolizer) frame(fn string, off, size uint64, module string) position {
	key := frameKey{module, fn, off, size}
	if p, ok := s.cache[key]; ok {
		return p
	}
	var p position
	if o := s.object(module); o != nil {
		p = o.position(fn, off, size)
	}
	if len(s.cache) >= MaxCache {
		clear(s.cache)
	}
	s.cache[key] = p
	return p
}

// object returns the object frames of module are in, or nil.
func (s *Symbolizer) object(module string) *object {
	if module == "" {
		return s.vmlinux
	}
	name := strings.ReplaceAll(module, "-", "_")
	if o, ok := s.modules[name]; ok {
		return o
	}
	if s.moduleDir == "" || !validModuleName(module) || len(s.modules) >= MaxModules {
		return nil
	}
	if s.modIndex == nil {
		s.modIndex = indexModules(s.moduleDir)
	}
	var o *object
	if path, ok := s.modIndex[name]; ok {
		// A module that fails to open stays undecoded; the report is
		// still worth showing.
		o, _ = openObject(path)
	}
	s.modules[name] = o
	return o
}

// validModuleName reports whether name can be a kernel module's name
// (MODULE_NAME_LEN is 56 with its terminating NUL).
func validModuleName(name string) bool {
	if name == "" || len(name) > 55 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c == '-' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')) {
			return false
		}
	}
	return true
}

// indexModules maps the names of the .ko files under dir to their paths.
// The first file of a name found wins.
func indexModules(dir string) map[string]string {
	index := map[string]string{}
	seen := 0
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if seen++; seen > MaxModuleFiles {
			return filepath.SkipAll
		}
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		if base, ok := strings.CutSuffix(d.Name(), ".ko"); ok && base != "" {
			name := strings.ReplaceAll(base, "-", "_")
			if _, dup := index[name]; !dup {
				index[name] = path
			}
		}
		return nil
	})
	return index
}

// Decode returns text with every call-trace frame it can resolve followed
// by " (file:line)" and preceded by one line for each function inlined at
// its address, like
//
//	helper (drivers/foo.c:12) [inline]
//	foo_ioctl+0x1c/0x40 [foo] (drivers/foo.c:40)
//
// Lines it cannot decode stay exactly as they were.
func (s *Symbolizer) Decode(text string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	b.Grow(len(text) + len(text)/4)
	n := 0
	for line := range strings.SplitSeq(text, "\n") {
		if n > 0 {
			b.WriteByte('\n')
		}
		n++
		if n <= MaxDecodeLines && len(line) <= MaxDecodeLine {
			if s.decodeLine(&b, line) {
				continue
			}
		}
		b.WriteString(line)
	}
	return b.String()
}

// decodeLine writes the decoded form of line to b and reports whether it
// could decode it.
func (s *Symbolizer) decodeLine(b *strings.Builder, line string) bool {
	f, ok := findFrame(line)
	if !ok {
		return false
	}
	off := f.off
	if !f.exact && off > 0 {
		off--
	}
	p := s.frame(f.fn, off, f.size, f.module)
	if !p.ok {
		return false
	}
	indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
	if f.start > len(indent) && !f.unsure {
		// "RIP: 0010:foo+0x1c/0x40": the inlined functions go on lines
		// of their own, indented like call-trace frames.
		indent = " "
	}
	mark := ""
	if f.unsure {
		mark = "? "
	}
	for _, in := range p.inlined {
		b.WriteString(indent)
		b.WriteString(mark)
		b.WriteString(in)
		b.WriteString(" [inline]\n")
	}
	b.WriteString(strings.TrimRight(line, " \t"))
	fmt.Fprintf(b, " (%s:%d)", p.file, p.line)
	return true
}

// frameRef is a frame found in a line of text.
type frameRef struct {
	fn     string
	off    uint64
	size   uint64
	module string
	start  int  // where fn starts in the line
	exact  bool // the address is an instruction's, not a return address
	unsure bool // the unwinder marked the frame "?"
}

// findFrame finds the frame a line ends with: "foo+0x1c/0x40", optionally
// followed by a module ("[mod]" or "[mod buildid]") and by an arm64 unwinder
// mark ("(T)"), as decode_stacktrace.sh takes the last word of a line.
func findFrame(line string) (frameRef, bool) {
	s := strings.TrimRight(line, " \t")
	if len(s) > 4 && s[len(s)-1] == ')' && s[len(s)-4] == ' ' && s[len(s)-3] == '(' {
		s = strings.TrimRight(s[:len(s)-4], " \t") // arm64 "(T)", "(P)", "(L)"
	}
	var f frameRef
	if strings.HasSuffix(s, "]") {
		open := strings.LastIndexByte(s, '[')
		if open < 1 || s[open-1] != ' ' {
			return f, false
		}
		mod := s[open+1 : len(s)-1]
		if sp := strings.IndexByte(mod, ' '); sp >= 0 {
			mod = mod[:sp] // a build ID follows the name
		}
		if !validModuleName(mod) {
			return f, false
		}
		f.module = mod
		s = strings.TrimRight(s[:open], " ")
	}
	// s now ends with "foo+0xOFF/0xSIZE".
	slash := strings.LastIndex(s, "/0x")
	plus := strings.LastIndex(s, "+0x")
	if slash < 0 || plus < 0 || plus > slash {
		return f, false
	}
	var ok bool
	if f.off, ok = parseHex(s[plus+3 : slash]); !ok {
		return f, false
	}
	if f.size, ok = parseHex(s[slash+3:]); !ok {
		return f, false
	}
	start := plus
	for start > 0 && isSymbolByte(s[start-1]) {
		start--
	}
	if start == plus {
		return f, false
	}
	f.fn, f.start = s[start:plus], start
	prefix := s[:start]
	f.unsure = strings.HasSuffix(prefix, "? ")
	f.exact = strings.Contains(prefix, "RIP: ") || strings.Contains(prefix, "EIP: ") ||
		strings.Contains(prefix, "pc : ") || strings.HasPrefix(strings.TrimSpace(prefix), "WARNING: ")
	if start > 0 && !strings.ContainsRune(" \t:>(", rune(s[start-1])) {
		return f, false
	}
	return f, true
}

func isSymbolByte(c byte) bool {
	return c == '_' || c == '.' || c == '$' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func parseHex(s string) (uint64, bool) {
	if s == "" || len(s) > 16 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | uint64(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		case 'A' <= c && c <= 'F':
			v = v<<4 | uint64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}
