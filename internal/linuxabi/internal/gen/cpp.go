package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// arch describes one target architecture.
type arch struct {
	name    string // linuxabi.Arch value
	ident   string // suffix of the generated Go identifiers
	file    string // part of the generated file names
	srcArch string // directory under arch/ in the kernel tree
	// defines are the macros the target's compiler predefines that uapi
	// headers test. The preprocessor runs with -undef, so that the host
	// compiler's own target (an x86_64 GCC, usually) does not leak into
	// another target's headers.
	defines []string
}

// lp64 are the predefined macros that x86_64 and arm64, both little-endian
// LP64 Linux targets, share.
var lp64 = []string{
	"__linux__=1", "__unix__=1", "__LP64__=1", "_LP64=1",
	"__CHAR_BIT__=8", "__SIZEOF_INT__=4", "__SIZEOF_LONG__=8", "__SIZEOF_POINTER__=8",
	"__ORDER_LITTLE_ENDIAN__=1234", "__ORDER_BIG_ENDIAN__=4321",
	"__BYTE_ORDER__=__ORDER_LITTLE_ENDIAN__",
}

var (
	x86_64 = arch{
		name: "x86_64", ident: "X86_64", file: "x86_64", srcArch: "x86",
		defines: append([]string{"__x86_64__=1", "__x86_64=1"}, lp64...),
	}
	// The files are named aarch64, not arm64: Go would build a file whose
	// name ends in _arm64.go only for GOARCH=arm64.
	arm64 = arch{
		name: "arm64", ident: "ARM64", file: "aarch64", srcArch: "arm64",
		defines: append([]string{"__aarch64__=1"}, lp64...),
	}
)

// tree is a Linux source tree and the scratch space the generator uses
// beside it.
type tree struct {
	dir     string
	cc      string
	scratch string
}

// errTree is wrapped by errors about the source tree's contents.
var errTree = errors.New("unexpected Linux source tree")

// readVersion returns the kernel version that the top-level Makefile states.
func readVersion(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "Makefile"))
	if err != nil {
		return "", fmt.Errorf("read kernel version: %w", err)
	}
	vars := map[string]string{}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION":
			if _, seen := vars[k]; !seen {
				vars[k] = v
			}
		}
	}
	if vars["VERSION"] == "" || vars["PATCHLEVEL"] == "" {
		return "", fmt.Errorf("read kernel version: no VERSION and PATCHLEVEL in %s: %w", filepath.Join(dir, "Makefile"), errTree)
	}
	v := vars["VERSION"] + "." + vars["PATCHLEVEL"]
	if s := vars["SUBLEVEL"]; s != "" && s != "0" {
		v += "." + s
	}
	return v + vars["EXTRAVERSION"], nil
}

// macro is one #define the preprocessor reported.
type macro struct {
	name     string
	body     string
	funcLike bool
	file     string // where it was defined, relative to the tree
}

// macros are the definitions in effect at the end of a preprocessed input,
// in the order they were defined.
type macros struct {
	byName map[string]*macro
	order  []*macro
}

func (ms *macros) expander() expander {
	return expander{body: func(name string) (string, bool, bool) {
		m, ok := ms.byName[name]
		if !ok {
			return "", false, false
		}
		return m.body, true, m.funcLike
	}}
}

// eval evaluates the object-like macro name.
func (ms *macros) eval(name string) (int64, error) {
	m := ms.byName[name]
	if m == nil {
		return 0, fmt.Errorf("%s is not defined: %w", name, errExpr)
	}
	v, err := ms.expander().evalMacro(name)
	if err != nil {
		return 0, fmt.Errorf("%s (%s, %q): %w", name, m.file, m.body, err)
	}
	n, err := v.Int64()
	if err != nil {
		return 0, fmt.Errorf("%s (%s, %q): %w", name, m.file, m.body, err)
	}
	return n, nil
}

// decimal reports whether the object-like macro name expands to a decimal
// literal, possibly negated or in parentheses: a count or an index rather
// than a flag or a mask.
func (ms *macros) decimal(name string) bool {
	toks, err := ms.expander().expand([]token{{'i', name}}, map[string]bool{})
	if err != nil {
		return false
	}
	for len(toks) >= 2 && toks[0].text == "(" && toks[len(toks)-1].text == ")" {
		toks = toks[1 : len(toks)-1]
	}
	if len(toks) == 2 && toks[0].text == "-" {
		toks = toks[1:]
	}
	if len(toks) != 1 || toks[0].kind != 'n' {
		return false
	}
	t := strings.TrimRight(toks[0].text, "uUlL")
	return t == "0" || t[0] != '0'
}

// The uapi headers of a source tree are not quite the headers user space
// gets: scripts/headers_install.sh removes their includes of
// headersInstallStubs, for which empty files stand in here, and resolves
// the conditionals on __KERNEL__ (undefined) and __EXPORTED_HEADERS__
// (defined), which the preprocessor does here.
var headersInstallStubs = []string{"linux/compiler.h", "linux/compiler_types.h"}

// asmWrappers writes, for the headers include/uapi/asm-generic/Kbuild makes
// mandatory and the arch neither provides nor generates, the one-line
// wrappers the kernel build puts in arch/ARCH/include/generated/uapi/asm
// (for example asm/errno.h including asm-generic/errno.h). It returns the
// directory to put on the include path after the arch's own headers.
func (t *tree) asmWrappers(a arch) (string, error) {
	dir := filepath.Join(t.scratch, "generated", a.srcArch)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	var headers []string
	kbuild := filepath.Join(t.dir, "include/uapi/asm-generic/Kbuild")
	b, err := os.ReadFile(kbuild)
	if err != nil {
		return "", fmt.Errorf("list mandatory asm headers: %w", err)
	}
	headers = append(headers, kbuildList(b, "mandatory-y")...)
	if len(headers) == 0 {
		return "", fmt.Errorf("no mandatory-y headers in %s: %w", kbuild, errTree)
	}
	if b, err := os.ReadFile(filepath.Join(t.dir, "arch", a.srcArch, "include/uapi/asm/Kbuild")); err == nil {
		headers = append(headers, kbuildList(b, "generic-y")...)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("list %s asm headers: %w", a.name, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "asm"), 0o755); err != nil {
		return "", fmt.Errorf("write asm wrappers: %w", err)
	}
	for _, h := range headers {
		if _, err := os.Stat(filepath.Join(t.dir, "arch", a.srcArch, "include/uapi/asm", h)); err == nil {
			continue
		}
		src := fmt.Sprintf("#include <asm-generic/%s>\n", h)
		if err := os.WriteFile(filepath.Join(dir, "asm", h), []byte(src), 0o644); err != nil {
			return "", fmt.Errorf("write asm wrappers: %w", err)
		}
	}
	for _, h := range headersInstallStubs {
		p := filepath.Join(dir, h)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", fmt.Errorf("write header stubs: %w", err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			return "", fmt.Errorf("write header stubs: %w", err)
		}
	}
	return dir, nil
}

// kbuildList returns the files a Kbuild file adds to the variable v.
func kbuildList(b []byte, v string) []string {
	var files []string
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == v && f[1] == "+=" {
			files = append(files, f[2])
		}
	}
	return files
}

// preprocess runs the C preprocessor on src for the arch a, with the include
// path the kernel's own uapi build uses, and returns the macros defined at
// the end. Warnings are errors, so a macro that two headers define
// differently stops the generator.
func (t *tree) preprocess(a arch, src string) (*macros, error) {
	wrappers, err := t.asmWrappers(a)
	if err != nil {
		return nil, err
	}
	args := []string{"-E", "-dD", "-undef", "-nostdinc", "-Werror", "-x", "c", "-D__EXPORTED_HEADERS__", "-U__KERNEL__"}
	for _, d := range a.defines {
		args = append(args, "-D"+d)
	}
	args = append(args,
		"-I", filepath.Join(t.dir, "arch", a.srcArch, "include/uapi"),
		"-I", wrappers,
		"-I", filepath.Join(t.dir, "include/uapi"),
		"-")
	cmd := exec.Command(t.cc, args...)
	cmd.Stdin = strings.NewReader(src)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("preprocess for %s: %s: %w\n%s", a.name, cmd, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return t.parseDefines(&stdout)
}

var (
	lineMarker = regexp.MustCompile(`^# [0-9]+ "([^"]*)"`)
	defineLine = regexp.MustCompile(`^#define ([A-Za-z_][A-Za-z0-9_]*)(\(?)(.*)$`)
	undefLine  = regexp.MustCompile(`^#undef ([A-Za-z_][A-Za-z0-9_]*)`)
)

// parseDefines reads the output of "cc -E -dD": the definitions, in order,
// between line markers that name the file each comes from.
func (t *tree) parseDefines(out *bytes.Buffer) (*macros, error) {
	ms := &macros{byName: map[string]*macro{}}
	file := ""
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := lineMarker.FindStringSubmatch(line); m != nil {
			f, err := strconv.Unquote(`"` + m[1] + `"`)
			if err != nil {
				f = m[1]
			}
			file = t.relative(f)
			continue
		}
		if m := undefLine.FindStringSubmatch(line); m != nil {
			delete(ms.byName, m[1])
			continue
		}
		m := defineLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		d := &macro{name: m[1], funcLike: m[2] == "(", body: strings.TrimSpace(m[3]), file: file}
		ms.byName[d.name] = d
		ms.order = append(ms.order, d)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read preprocessor output: %w", err)
	}
	// Drop definitions that a later #undef or #define replaced.
	live := ms.order[:0]
	for _, d := range ms.order {
		if ms.byName[d.name] == d {
			live = append(live, d)
		}
	}
	ms.order = live
	return ms, nil
}

// relative names a header by its path in the kernel tree. Extracts of
// kernel-internal headers (see internal.go) are named after the header they
// come from.
func (t *tree) relative(f string) string {
	for _, base := range []string{t.dir, filepath.Join(t.scratch, "kernel")} {
		if r, err := filepath.Rel(base, f); err == nil && !strings.HasPrefix(r, "..") {
			return filepath.ToSlash(r)
		}
	}
	return f
}
