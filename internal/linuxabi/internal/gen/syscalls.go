package main

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// syscall is one system call of an arch.
type syscall struct {
	name string
	nr   int
}

// x86Table is the x86_64 system call table, relative to the tree.
const x86Table = "arch/x86/entry/syscalls/syscall_64.tbl"

// syscallsX86 reads the x86_64 table: lines of "<number> <abi> <name>
// [<entry point> [<compat entry point>]]". The ABIs "common" and "64" are
// the x86_64 system calls; "x32" entries belong to the x32 ABI only.
func (t *tree) syscallsX86() ([]syscall, error) {
	b, err := os.ReadFile(filepath.Join(t.dir, x86Table))
	if err != nil {
		return nil, fmt.Errorf("read x86_64 system calls: %w", err)
	}
	var calls []syscall
	for i, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("%s:%d: want <number> <abi> <name>, have %q: %w", x86Table, i+1, line, errTree)
		}
		nr, err := strconv.Atoi(f[0])
		if err != nil || nr < 0 {
			return nil, fmt.Errorf("%s:%d: bad number %q: %w", x86Table, i+1, f[0], errTree)
		}
		switch f[1] {
		case "common", "64":
			calls = append(calls, syscall{name: f[2], nr: nr})
		case "x32":
		default:
			return nil, fmt.Errorf("%s:%d: unknown ABI %q: %w", x86Table, i+1, f[1], errTree)
		}
	}
	return checkSyscalls(x86_64, calls)
}

// genericMarkers are __NR_ macros of the generic table that are not system
// calls: the size of the table and the start of the arch-specific range.
var genericMarkers = map[string]bool{"__NR_syscalls": true, "__NR_arch_specific_syscall": true}

// syscallsGeneric reads the table of an arch that uses the generic one
// (include/uapi/asm-generic/unistd.h): the preprocessor includes the arch's
// asm/unistd.h, which sets the __ARCH_WANT_* switches the arch needs, and
// the generator evaluates every __NR_ macro defined there or in the arch's
// own uapi headers.
func (t *tree) syscallsGeneric(a arch) ([]syscall, error) {
	ms, err := t.preprocess(a, "#include <asm/unistd.h>\n")
	if err != nil {
		return nil, err
	}
	var calls []syscall
	for _, m := range ms.order {
		if !strings.HasPrefix(m.name, "__NR_") || genericMarkers[m.name] {
			continue
		}
		if m.file != "include/uapi/asm-generic/unistd.h" && !strings.HasPrefix(m.file, "arch/"+a.srcArch+"/include/uapi/") {
			continue
		}
		nr, err := ms.eval(m.name)
		if err != nil {
			return nil, fmt.Errorf("%s system calls: %w", a.name, err)
		}
		calls = append(calls, syscall{name: strings.TrimPrefix(m.name, "__NR_"), nr: int(nr)})
	}
	return checkSyscalls(a, calls)
}

var syscallName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// checkSyscalls sorts calls by number and rejects a table in which a name
// or a number appears twice, a name is not a C identifier or the table is
// implausibly small.
func checkSyscalls(a arch, calls []syscall) ([]syscall, error) {
	if len(calls) < 250 {
		return nil, fmt.Errorf("%s system calls: only %d found: %w", a.name, len(calls), errTree)
	}
	names := map[string]int{}
	nrs := map[int]string{}
	for _, c := range calls {
		if !syscallName.MatchString(c.name) {
			return nil, fmt.Errorf("%s system calls: bad name %q: %w", a.name, c.name, errTree)
		}
		if c.nr < 0 || c.nr > 4095 {
			return nil, fmt.Errorf("%s system calls: %s has number %d: %w", a.name, c.name, c.nr, errTree)
		}
		if n, ok := names[c.name]; ok {
			return nil, fmt.Errorf("%s system calls: %s is both %d and %d: %w", a.name, c.name, n, c.nr, errTree)
		}
		if n, ok := nrs[c.nr]; ok {
			return nil, fmt.Errorf("%s system calls: %d is both %s and %s: %w", a.name, c.nr, n, c.name, errTree)
		}
		names[c.name], nrs[c.nr] = c.nr, c.name
	}
	slices.SortFunc(calls, func(x, y syscall) int { return cmp.Compare(x.nr, y.nr) })
	return calls, nil
}

// errno is one error number.
type errno struct {
	name  string
	value int
	alias bool // defined as another name (EWOULDBLOCK is EAGAIN)
}

var errnoMacro = regexp.MustCompile(`^E[A-Z0-9]+$`)

// errnos reads the error numbers of the arch a from its asm/errno.h, which
// for x86_64 and arm64 is include/uapi/asm-generic/errno.h (including
// errno-base.h).
func (t *tree) errnos(a arch) ([]errno, error) {
	ms, err := t.preprocess(a, "#include <asm/errno.h>\n")
	if err != nil {
		return nil, err
	}
	var out []errno
	for _, m := range ms.order {
		if m.funcLike || !errnoMacro.MatchString(m.name) {
			continue
		}
		if !strings.HasPrefix(m.file, "include/uapi/asm-generic/errno") && m.file != "arch/"+a.srcArch+"/include/uapi/asm/errno.h" {
			continue
		}
		v, err := ms.eval(m.name)
		if err != nil {
			return nil, fmt.Errorf("%s error numbers: %w", a.name, err)
		}
		_, isMacro := ms.byName[m.body]
		out = append(out, errno{name: m.name, value: int(v), alias: isMacro})
	}
	// Every number has exactly one primary name.
	primary := map[int]string{}
	for _, e := range out {
		if e.value <= 0 || e.value > 4095 {
			return nil, fmt.Errorf("%s error numbers: %s is %d: %w", a.name, e.name, e.value, errTree)
		}
		if e.alias {
			continue
		}
		if p, ok := primary[e.value]; ok {
			return nil, fmt.Errorf("%s error numbers: %d is both %s and %s: %w", a.name, e.value, p, e.name, errTree)
		}
		primary[e.value] = e.name
	}
	for _, e := range out {
		if _, ok := primary[e.value]; !ok {
			return nil, fmt.Errorf("%s error numbers: alias %s names %d, which has no primary name: %w", a.name, e.name, e.value, errTree)
		}
	}
	if len(primary) < 100 {
		return nil, fmt.Errorf("%s error numbers: only %d found: %w", a.name, len(primary), errTree)
	}
	slices.SortStableFunc(out, func(x, y errno) int { return cmp.Compare(x.value, y.value) })
	return out, nil
}
