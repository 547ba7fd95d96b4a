package symbolize

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// mainC has a function with an always-inlined helper, and a function in
// a second section, as a module's init code is.
const mainC = `static inline __attribute__((always_inline)) int helper(int x)
{
	int y = x * 3;
	return y ^ (x >> 2);
}

__attribute__((noinline)) int myfunc(int a)
{
	int s = 0;
	for (int i = 0; i < a; i++)
		s += helper(i);
	return s;
}

__attribute__((noinline)) int other(volatile int *p)
{
	return myfunc(*p) + 7;
}

__attribute__((noinline, section(".init.text"))) int init_fn(volatile int *p)
{
	int v = *p;
	v += other(p);
	return v * 5;
}

int main(void)
{
	volatile int n = 3;
	return init_fn(&n);
}
`

// dupC defines a second static function named dup, of another size.
const dupC = `__attribute__((noinline)) static int dup(int x) { return x + 1; }
int use_a(int x) { return dup(x); }
`

const dup2C = `__attribute__((noinline)) static int dup(int x)
{
	int r = 0;
	for (int i = 0; i < x; i++)
		r += i * i;
	return r;
}
int use_b(int x) { return dup(x); }
`

// build writes the C sources into a temporary directory and compiles them
// with gcc, skipping the test when gcc is missing.
func build(t *testing.T, args []string, sources map[string]string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: the symbolizer tests compile a small ELF with DWARF")
	}
	dir := t.TempDir()
	for name, src := range sources {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(gcc, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc %v: %v\n%s", args, err, out)
	}
	return dir
}

// symbolOf returns the value, size and section name of a function symbol.
func symbolOf(t *testing.T, path, name string) (value, size uint64, section string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			return s.Value, s.Size, f.Sections[s.Section].Name
		}
	}
	t.Fatalf("%s: no function %s", path, name)
	return 0, 0, ""
}

// level is one entry of an inline chain: a function and a source position.
type level struct {
	fn   string
	file string
	line int
}

// addr2line returns, for each address, the inline chain addr2line -i
// prints (innermost first), with file names reduced to their base. section
// is "" for a linked file and the section of the addresses for an object.
func addr2line(t *testing.T, path, section string, addrs []uint64) [][]level {
	t.Helper()
	bin, err := exec.LookPath("addr2line")
	if err != nil {
		return nil
	}
	args := []string{"-f", "-i", "-a", "-e", path}
	if section != "" {
		args = append(args, "-j", section)
	}
	for _, a := range addrs {
		args = append(args, fmt.Sprintf("%#x", a))
	}
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatalf("addr2line: %v", err)
	}
	var res [][]level
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	var pending string
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "0x"):
			res = append(res, nil)
		case pending == "":
			pending = l
		default:
			loc, _, _ := strings.Cut(l, " (discriminator")
			file, ln, _ := strings.Cut(loc, ":")
			n, _ := strconv.Atoi(ln)
			res[len(res)-1] = append(res[len(res)-1], level{pending, filepath.Base(file), n})
			pending = ""
		}
	}
	if len(res) != len(addrs) {
		t.Fatalf("addr2line answered for %d of %d addresses:\n%s", len(res), len(addrs), out)
	}
	return res
}

// chainOf turns Frame's answer into an inline chain, innermost first.
func chainOf(t *testing.T, fn, file string, line int, inlined []string) []level {
	t.Helper()
	var c []level
	for _, in := range inlined {
		name, loc, ok := strings.Cut(in, " (")
		loc = strings.TrimSuffix(loc, ")")
		f, ln, ok2 := strings.Cut(loc, ":")
		n, err := strconv.Atoi(ln)
		if !ok || !ok2 || err != nil {
			t.Fatalf("inlined entry %q is not \"name (file:line)\"", in)
		}
		c = append(c, level{name, filepath.Base(f), n})
	}
	return append(c, level{fn, filepath.Base(file), line})
}

// checkFunction compares Frame with addr2line at every offset of fn.
func checkFunction(t *testing.T, s *Symbolizer, path, fn, module string, relocatable bool) (inlinedAt uint64) {
	t.Helper()
	value, size, section := symbolOf(t, path, fn)
	if size == 0 {
		t.Fatalf("%s has size 0", fn)
	}
	addrs := make([]uint64, size)
	for off := range size {
		addrs[off] = value + off
	}
	sec := ""
	if relocatable {
		sec = section
	}
	want := addr2line(t, path, sec, addrs)
	if want == nil {
		t.Logf("addr2line not found: checking %s against the source only", fn)
	}
	checked := 0
	for off := range size {
		file, line, inlined, ok := s.Frame(fn, off, module)
		if want == nil {
			if !ok || filepath.Base(file) != "main.c" || line < 1 || line > strings.Count(mainC, "\n") {
				t.Fatalf("%s+%#x: %s:%d %v %v", fn, off, file, line, inlined, ok)
			}
			continue
		}
		w := want[off]
		if len(w) == 0 || w[0].line == 0 || w[0].file == "??" {
			continue // addr2line knows no line either
		}
		if !ok {
			t.Errorf("%s+%#x: not resolved, addr2line says %v", fn, off, w)
			continue
		}
		got := chainOf(t, fn, file, line, inlined)
		// addr2line names the outermost function itself; Frame's
		// caller already knows it.
		w[len(w)-1].fn = fn
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("%s+%#x: got %v, addr2line says %v", fn, off, got, w)
		}
		if len(inlined) > 0 && inlinedAt == 0 {
			inlinedAt = off
		}
		checked++
	}
	if want != nil && checked < int(size)/2 {
		t.Errorf("%s: only %d of %d offsets had a line to compare", fn, checked, size)
	}
	return inlinedAt
}

func TestFrameLinked(t *testing.T) {
	dir := build(t, []string{"-g", "-O1", "-no-pie", "-o", "prog", "main.c", "dup.c", "dup2.c"},
		map[string]string{"main.c": mainC, "dup.c": dupC, "dup2.c": dup2C})
	path := filepath.Join(dir, "prog")
	s, err := Open(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if at := checkFunction(t, s, path, "myfunc", "", false); at == 0 && hasAddr2line() {
		t.Errorf("no offset of myfunc has helper inlined; the inline test proves nothing")
	}
	checkFunction(t, s, path, "other", "", false)
	checkFunction(t, s, path, "init_fn", "", false)
}

func TestFrameModule(t *testing.T) {
	dir := build(t, []string{"-g", "-O1", "-c", "-o", "main.o", "main.c"}, map[string]string{"main.c": mainC})
	obj := filepath.Join(dir, "main.o")
	modDir := filepath.Join(dir, "lib", "modules", "6.1.0", "extra")
	if err := os.MkdirAll(modDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ko := filepath.Join(modDir, "provium-test.ko")
	if err := os.Link(obj, ko); err != nil {
		t.Fatal(err)
	}
	s, err := Open("", filepath.Join(dir, "lib"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// myfunc in .text and init_fn in .init.text both start near offset 0
	// of their sections: each must still map to its own lines.
	for _, fn := range []string{"myfunc", "other", "init_fn"} {
		checkFunction(t, s, ko, fn, "provium_test", true)
	}
	if _, _, _, ok := s.Frame("myfunc", 1, "no_such_module"); ok {
		t.Error("a frame of a module that is not there was resolved")
	}
	file, line, _, ok := s.Frame("init_fn", 3, "provium_test")
	if !ok {
		t.Fatal("init_fn+0x3 [provium_test] does not resolve")
	}
	in := " init_fn+0x4/0x20 [provium_test]"
	if got, want := s.Decode(in), fmt.Sprintf("%s (%s:%d)", in, file, line); got != want {
		t.Errorf("Decode(%q) = %q, want %q", in, got, want)
	}
}

func hasAddr2line() bool {
	_, err := exec.LookPath("addr2line")
	return err == nil
}

func TestDecode(t *testing.T) {
	dir := build(t, []string{"-g", "-O1", "-no-pie", "-o", "prog", "main.c", "dup.c", "dup2.c"},
		map[string]string{"main.c": mainC, "dup.c": dupC, "dup2.c": dup2C})
	path := filepath.Join(dir, "prog")
	s, err := Open(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// pos formats what Frame says of fn+off as Decode appends it.
	pos := func(fn string, off uint64) (string, []string) {
		file, line, inlined, ok := s.Frame(fn, off, "")
		if !ok {
			t.Fatalf("%s+%#x does not resolve", fn, off)
		}
		return fmt.Sprintf(" (%s:%d)", file, line), inlined
	}
	_, mySize, _ := symbolOf(t, path, "myfunc")
	// An offset where helper is inlined, found by asking Frame.
	var inl uint64
	for off := uint64(1); off < mySize; off++ {
		if _, _, in, ok := s.Frame("myfunc", off-1, ""); ok && len(in) > 0 {
			inl = off
			break
		}
	}
	if inl == 0 {
		t.Fatal("no offset of myfunc has an inlined function")
	}
	ret5, _ := pos("myfunc", 4) // a return address: the call is the byte before
	rip5, _ := pos("myfunc", 5) // an instruction address
	retInl, inlined := pos("myfunc", inl-1)

	frame := fmt.Sprintf(" myfunc+%#x/0x40", inl)
	var wantInl strings.Builder
	for _, in := range inlined {
		wantInl.WriteString(" " + in + " [inline]\n")
	}
	wantInl.WriteString(frame + retInl)

	tests := []struct {
		name string
		in   string
		want string
	}{
		{"return address", " myfunc+0x5/0x40", " myfunc+0x5/0x40" + ret5},
		{"unreliable frame", " ? myfunc+0x5/0x40", " ? myfunc+0x5/0x40" + ret5},
		{"instruction address", "RIP: 0010:myfunc+0x5/0x40", "RIP: 0010:myfunc+0x5/0x40" + rip5},
		{"with address", " [<ffffffff81234567>] myfunc+0x5/0x40", " [<ffffffff81234567>] myfunc+0x5/0x40" + ret5},
		{"trailing blanks", " myfunc+0x5/0x40  ", " myfunc+0x5/0x40" + ret5},
		{"inlined function", frame, wantInl.String()},
		{"unknown function", " no_such_function+0x5/0x40", " no_such_function+0x5/0x40"},
		{"past the end", " myfunc+0x5000/0x6000", " myfunc+0x5000/0x6000"},
		{"module not given", " myfunc+0x5/0x40 [provium_crash]", " myfunc+0x5/0x40 [provium_crash]"},
		{"not a frame", "Call Trace:", "Call Trace:"},
		{"frame in a word", " xmyfunc+0x5/0x40z", " xmyfunc+0x5/0x40z"},
		{"bad module name", " myfunc+0x5/0x40 [../../etc/passwd]", " myfunc+0x5/0x40 [../../etc/passwd]"},
		{"blank", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.Decode(tt.in); got != tt.want {
				t.Errorf("Decode(%q) =\n%q\nwant\n%q", tt.in, got, tt.want)
			}
		})
	}

	t.Run("whole report", func(t *testing.T) {
		in := "WARNING: CPU: 0 PID: 1 at main.c:9 myfunc+0x5/0x40\nCall Trace:\n <TASK>\n myfunc+0x5/0x40\n </TASK>\n"
		want := "WARNING: CPU: 0 PID: 1 at main.c:9 myfunc+0x5/0x40" + rip5 +
			"\nCall Trace:\n <TASK>\n myfunc+0x5/0x40" + ret5 + "\n </TASK>\n"
		if got := s.Decode(in); got != want {
			t.Errorf("Decode =\n%s\nwant\n%s", got, want)
		}
	})
}

// TestAmbiguousStatic pins that of two static functions of one name, the
// frame's size picks one, and without it neither is chosen.
func TestAmbiguousStatic(t *testing.T) {
	dir := build(t, []string{"-g", "-O1", "-no-pie", "-o", "prog", "main.c", "dup.c", "dup2.c"},
		map[string]string{"main.c": mainC, "dup.c": dupC, "dup2.c": dup2C})
	path := filepath.Join(dir, "prog")
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []uint64
	syms, _ := f.Symbols()
	for _, sym := range syms {
		if sym.Name == "dup" {
			sizes = append(sizes, sym.Size)
		}
	}
	f.Close()
	if len(sizes) != 2 || sizes[0] == sizes[1] {
		t.Fatalf("want two dup functions of different sizes, have %v", sizes)
	}
	s, err := Open(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if file, line, _, ok := s.Frame("dup", 0, ""); ok {
		t.Errorf("dup+0x0 resolved to %s:%d without a size to choose by", file, line)
	}
	big := max(sizes[0], sizes[1])
	in := fmt.Sprintf(" dup+0x1/%#x", big)
	got := s.Decode(in)
	if !strings.HasSuffix(got, ")") || !strings.Contains(got, "dup2.c:") {
		t.Errorf("Decode(%q) = %q, want a position in dup2.c", in, got)
	}
}

func TestFindFrame(t *testing.T) {
	tests := []struct {
		line   string
		want   frameRef
		wantOK bool
	}{
		{" foo_ioctl+0x1c/0x40", frameRef{fn: "foo_ioctl", off: 0x1c, size: 0x40, start: 1}, true},
		{" ? foo+0x1/0x2", frameRef{fn: "foo", off: 1, size: 2, start: 3, unsure: true}, true},
		{" foo+0x1c/0x40 [provium_crash]", frameRef{fn: "foo", off: 0x1c, size: 0x40, module: "provium_crash", start: 1}, true},
		{" foo+0x1c/0x40 [provium_crash 8e8ac1b4aa]", frameRef{fn: "foo", off: 0x1c, size: 0x40, module: "provium_crash", start: 1}, true},
		{"RIP: 0010:foo_ioctl+0x1c/0x40", frameRef{fn: "foo_ioctl", off: 0x1c, size: 0x40, start: 10, exact: true}, true},
		{"RIP: 0010:foo_ioctl+0x1c/0x40 [mod]", frameRef{fn: "foo_ioctl", off: 0x1c, size: 0x40, module: "mod", start: 10, exact: true}, true},
		{"pc : foo+0x8/0x18 [mod]", frameRef{fn: "foo", off: 8, size: 0x18, module: "mod", start: 5, exact: true}, true},
		{" __switch_to+0x2b0/0x6e0 (T)", frameRef{fn: "__switch_to", off: 0x2b0, size: 0x6e0, start: 1}, true},
		{" __handle_sysrq.cold+0x43/0x11b", frameRef{fn: "__handle_sysrq.cold", off: 0x43, size: 0x11b, start: 1}, true},
		{"ffff (&lock){+.+.}-{3:3}, at: foo+0x3c/0x80 [m]", frameRef{fn: "foo", off: 0x3c, size: 0x80, module: "m", start: 30}, true},
		{" foo+0x1c", frameRef{}, false},
		{" +0x1c/0x40", frameRef{}, false},
		{" foo+0x1c/0x40 [a/b]", frameRef{}, false},
		{" foo+0xzz/0x40", frameRef{}, false},
		{" foo+0x1c/0x40 trailing words", frameRef{}, false},
	}
	for _, tt := range tests {
		got, ok := findFrame(tt.line)
		if ok != tt.wantOK || (ok && got != tt.want) {
			t.Errorf("findFrame(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "vmlinux")
	if err := os.WriteFile(notELF, []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(notELF, ""); err == nil || !strings.Contains(err.Error(), notELF) {
		t.Errorf("Open of a non-ELF file: %v", err)
	}
	if _, err := Open("", filepath.Join(dir, "missing")); err == nil {
		t.Error("Open with a missing module directory succeeded")
	}
	if _, err := exec.LookPath("gcc"); err == nil {
		bdir := build(t, []string{"-O1", "-no-pie", "-o", "prog", "main.c"}, map[string]string{"main.c": mainC})
		if _, err := Open(filepath.Join(bdir, "prog"), ""); err == nil || !strings.Contains(err.Error(), ErrNoDWARF.Error()) {
			t.Errorf("Open of a file without DWARF: %v", err)
		}
	}
}
