package symbolize

import (
	"debug/dwarf"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// object is one ELF file with its symbols and DWARF.
type object struct {
	path  string
	f     *elf.File
	syms  map[string][]symbol
	d     *dwarf.Data
	units []unit // address ranges of the compilation units; built on first use
	built bool
}

// symbol is a function's address and size. In a relocatable object the
// address is in the layout relocatedDWARF gives its sections.
type symbol struct {
	addr, size uint64
}

type unit struct {
	lo, hi uint64
	off    dwarf.Offset
}

// relBase is where the first allocated section of a relocatable object is
// placed, so that no function is at address 0.
const relBase = 1 << 20

func openObject(path string) (*object, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	o := &object{path: path, f: f}
	if err := o.load(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return o, nil
}

func (o *object) close() error {
	if err := o.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", o.path, err)
	}
	return nil
}

func (o *object) load() error {
	var debug uint64
	for _, s := range o.f.Sections {
		if strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			debug += s.Size
		}
	}
	if debug == 0 {
		return ErrNoDWARF
	}
	if debug > MaxDebugData {
		return fmt.Errorf("%d bytes of DWARF: %w", debug, ErrTooLarge)
	}
	var bases []uint64
	if o.f.Type == elf.ET_REL {
		bases = layout(o.f)
	}
	syms, err := o.f.Symbols()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoSymbols, err)
	}
	o.syms = make(map[string][]symbol)
	for _, sym := range syms {
		if sym.Name == "" || sym.Section == elf.SHN_UNDEF || sym.Section >= elf.SHN_LORESERVE ||
			int(sym.Section) >= len(o.f.Sections) {
			continue
		}
		sec := o.f.Sections[sym.Section]
		switch t := elf.ST_TYPE(sym.Info); {
		case t == elf.STT_FUNC:
		case t == elf.STT_NOTYPE && sec.Flags&elf.SHF_EXECINSTR != 0:
			// Assembly entry points are often untyped labels.
		default:
			continue
		}
		addr := sym.Value
		if bases != nil {
			addr += bases[sym.Section]
		}
		o.syms[sym.Name] = append(o.syms[sym.Name], symbol{addr: addr, size: sym.Size})
	}
	if len(o.syms) == 0 {
		return ErrNoSymbols
	}
	if o.f.Type == elf.ET_REL {
		o.d, err = relocatedDWARF(o.f, syms, bases)
	} else {
		o.d, err = o.f.DWARF()
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoDWARF, err)
	}
	return nil
}

// layout places the allocated sections of a relocatable object one after
// another, each at its alignment, and returns their addresses by section
// index (0 for sections not loaded).
func layout(f *elf.File) []uint64 {
	bases := make([]uint64, len(f.Sections))
	next := uint64(relBase)
	for i, s := range f.Sections {
		if s.Type == elf.SHT_NULL || s.Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		align := max(s.Addralign, 1)
		next = (next + align - 1) / align * align
		bases[i] = next
		next += max(s.Size, 1)
	}
	return bases
}

// relocatedDWARF reads the DWARF of a relocatable object with the
// relocations of its debug sections applied against the layout bases.
// debug/elf applies them too, but with every section at address 0, where
// the .text and .init.text of a module overlap.
func relocatedDWARF(f *elf.File, syms []elf.Symbol, bases []uint64) (*dwarf.Data, error) {
	if f.Class != elf.ELFCLASS64 {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, f.Class)
	}
	var width func(typ uint32) (int, bool)
	switch f.Machine {
	case elf.EM_X86_64:
		width = func(typ uint32) (int, bool) {
			switch elf.R_X86_64(typ) {
			case elf.R_X86_64_NONE:
				return 0, true
			case elf.R_X86_64_64:
				return 8, true
			case elf.R_X86_64_32, elf.R_X86_64_32S:
				return 4, true
			}
			return 0, false
		}
	case elf.EM_AARCH64:
		width = func(typ uint32) (int, bool) {
			switch elf.R_AARCH64(typ) {
			case elf.R_AARCH64_NONE:
				return 0, true
			case elf.R_AARCH64_ABS64:
				return 8, true
			case elf.R_AARCH64_ABS32:
				return 4, true
			}
			return 0, false
		}
	default:
		return nil, fmt.Errorf("%w: machine %v", ErrUnsupported, f.Machine)
	}
	data := map[string][]byte{}
	for i, sec := range f.Sections {
		name, ok := strings.CutPrefix(sec.Name, ".debug_")
		if !ok {
			continue
		}
		switch name {
		case "abbrev", "info", "str", "line", "ranges", "addr", "line_str", "str_offsets", "rnglists":
		default:
			continue
		}
		b, err := sec.Data()
		if err != nil {
			return nil, fmt.Errorf("section %s: %w", sec.Name, err)
		}
		for _, r := range f.Sections {
			if (r.Type != elf.SHT_RELA && r.Type != elf.SHT_REL) || int(r.Info) != i {
				continue
			}
			if r.Type == elf.SHT_REL {
				return nil, fmt.Errorf("%w: %s has no addends", ErrUnsupported, r.Name)
			}
			rd, err := r.Data()
			if err != nil {
				return nil, fmt.Errorf("section %s: %w", r.Name, err)
			}
			if err := applyRela(f.ByteOrder, b, rd, syms, bases, width); err != nil {
				return nil, fmt.Errorf("section %s: %w", r.Name, err)
			}
		}
		data[name] = b
	}
	d, err := dwarf.New(data["abbrev"], nil, nil, data["info"], data["line"], nil, data["ranges"], data["str"])
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"addr", "line_str", "str_offsets", "rnglists"} {
		if b, ok := data[name]; ok {
			if err := d.AddSection(".debug_"+name, b); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

// applyRela applies the Elf64_Rela entries rd to the section contents b.
func applyRela(bo binary.ByteOrder, b, rd []byte, syms []elf.Symbol, bases []uint64, width func(uint32) (int, bool)) error {
	const entSize = 24
	for ; len(rd) >= entSize; rd = rd[entSize:] {
		off := bo.Uint64(rd[0:])
		info := bo.Uint64(rd[8:])
		addend := bo.Uint64(rd[16:])
		typ, idx := uint32(info), info>>32
		w, ok := width(typ)
		if !ok {
			return fmt.Errorf("%w: relocation type %d", ErrUnsupported, typ)
		}
		if w == 0 {
			continue
		}
		var v uint64
		if idx != 0 {
			if idx > uint64(len(syms)) {
				return fmt.Errorf("relocation against symbol %d of %d", idx, len(syms))
			}
			sym := syms[idx-1]
			v = sym.Value
			if sym.Section > elf.SHN_UNDEF && sym.Section < elf.SHN_LORESERVE && int(sym.Section) < len(bases) {
				v += bases[sym.Section]
			}
		}
		v += addend
		if off > uint64(len(b)) || uint64(len(b))-off < uint64(w) {
			return fmt.Errorf("relocation at %#x outside a section of %d bytes", off, len(b))
		}
		if w == 8 {
			bo.PutUint64(b[off:], v)
		} else {
			bo.PutUint32(b[off:], uint32(v))
		}
	}
	return nil
}

// position returns the source position of fn+off.
func (o *object) position(fn string, off, size uint64) position {
	addr, ok := o.resolve(fn, off, size)
	if !ok {
		return position{}
	}
	return o.locate(addr)
}

// resolve returns the address of fn+off. Of several functions named fn
// (static functions of different files), it takes the one whose size is
// closest to the size the frame printed (kallsyms counts the padding up to
// the next symbol, so the sizes need not be equal); when that does not
// single one out, or off is past the function's end, there is no answer.
func (o *object) resolve(fn string, off, size uint64) (uint64, bool) {
	cands := o.syms[fn]
	best, tie := -1, false
	for i, c := range cands {
		if c.size != 0 && off >= c.size {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		b := cands[best]
		if c.addr == b.addr {
			continue // an alias
		}
		switch db, dc := dist(b.size, size), dist(c.size, size); {
		case size != 0 && dc < db:
			best, tie = i, false
		case size == 0 || dc == db:
			tie = true
		}
	}
	if best < 0 || tie {
		return 0, false
	}
	return cands[best].addr + off, true
}

func dist(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}

// locate returns the source position of the instruction at pc.
func (o *object) locate(pc uint64) position {
	u, ok := o.unitFor(pc)
	if !ok {
		return position{}
	}
	r := o.d.Reader()
	r.Seek(u.off)
	cu, err := r.Next()
	if err != nil || cu == nil {
		return position{}
	}
	lr, err := o.d.LineReader(cu)
	if err != nil || lr == nil {
		return position{}
	}
	var le dwarf.LineEntry
	if err := lr.SeekPC(pc, &le); err != nil || le.Line == 0 || le.File == nil {
		return position{}
	}
	compDir, _ := cu.Val(dwarf.AttrCompDir).(string)
	files := lr.Files()
	chain := o.inlineChain(r, pc)

	p := position{ok: true}
	file, line := cleanPath(le.File.Name, compDir), le.Line
	for i := len(chain) - 1; i >= 0; i-- {
		e := chain[i]
		p.inlined = append(p.inlined, fmt.Sprintf("%s (%s:%d)", o.name(e), file, line))
		file, line = "??", 0
		if cf, ok := e.Val(dwarf.AttrCallFile).(int64); ok && cf >= 0 && cf < int64(len(files)) && files[cf] != nil {
			file = cleanPath(files[cf].Name, compDir)
		}
		if cl, ok := e.Val(dwarf.AttrCallLine).(int64); ok {
			line = int(cl)
		}
	}
	p.file, p.line = file, line
	return p
}

// unitFor returns the compilation unit whose code includes pc.
func (o *object) unitFor(pc uint64) (unit, bool) {
	if !o.built {
		o.buildUnits()
	}
	i := sort.Search(len(o.units), func(i int) bool { return o.units[i].lo > pc })
	// Ranges may nest (a unit's hull around another's code); look at a
	// few of the candidates that start at or before pc.
	for j := i - 1; j >= 0 && j >= i-8; j-- {
		if u := o.units[j]; u.lo <= pc && pc < u.hi {
			return u, true
		}
	}
	return unit{}, false
}

func (o *object) buildUnits() {
	o.built = true
	r := o.d.Reader()
	for {
		e, err := r.Next()
		if err != nil || e == nil {
			break
		}
		if e.Tag == dwarf.TagCompileUnit || e.Tag == dwarf.TagPartialUnit {
			if ranges, err := o.d.Ranges(e); err == nil {
				for _, rg := range ranges {
					if rg[1] > rg[0] {
						o.units = append(o.units, unit{lo: rg[0], hi: rg[1], off: e.Offset})
					}
				}
			}
		}
		r.SkipChildren()
	}
	sort.Slice(o.units, func(i, j int) bool { return o.units[i].lo < o.units[j].lo })
}

// inlineChain returns the inlined subroutines that contain pc, outermost
// first. r is positioned just after the compilation unit's entry.
func (o *object) inlineChain(r *dwarf.Reader, pc uint64) []*dwarf.Entry {
	var chain []*dwarf.Entry
	for {
		e, err := r.Next()
		if err != nil || e == nil || e.Tag == 0 {
			// The end of the unit, or of the children of the innermost
			// entry that contains pc.
			return chain
		}
		switch e.Tag {
		case dwarf.TagSubprogram, dwarf.TagInlinedSubroutine, dwarf.TagLexDwarfBlock:
			if o.contains(e, pc) {
				if e.Tag == dwarf.TagInlinedSubroutine {
					chain = append(chain, e)
				}
				if !e.Children {
					return chain
				}
				continue // on to e's children
			}
		}
		if e.Children {
			r.SkipChildren()
		}
	}
}

func (o *object) contains(e *dwarf.Entry, pc uint64) bool {
	ranges, err := o.d.Ranges(e)
	if err != nil {
		return false
	}
	for _, rg := range ranges {
		if rg[0] <= pc && pc < rg[1] {
			return true
		}
	}
	return false
}

// name returns the name of a subprogram or inlined subroutine, following
// its abstract origin.
func (o *object) name(e *dwarf.Entry) string {
	for range 4 {
		if n, ok := e.Val(dwarf.AttrName).(string); ok {
			return n
		}
		off, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset)
		if !ok {
			off, ok = e.Val(dwarf.AttrSpecification).(dwarf.Offset)
		}
		if !ok {
			break
		}
		r := o.d.Reader()
		r.Seek(off)
		next, err := r.Next()
		if err != nil || next == nil {
			break
		}
		e = next
	}
	return "??"
}

// cleanPath makes a source file name relative to the compilation directory,
// as decode_stacktrace.sh strips the kernel source directory.
func cleanPath(name, compDir string) string {
	if compDir != "" {
		if rel, ok := strings.CutPrefix(name, strings.TrimSuffix(compDir, "/")+"/"); ok {
			name = rel
		}
	}
	return filepath.Clean(name)
}
