package main

import (
	"cmp"
	"fmt"
	"path"
	"slices"
	"strings"
)

// group selects constants from one header: the macros defined in files
// that match files whose names start with one of prefixes or are listed in
// names. Function-like macros are never constants and are skipped; any
// other selected macro must evaluate, or the generator fails.
type group struct {
	// include is the header the preprocessor input includes (uapi groups).
	include string
	// internal is a kernel-internal header to extract from instead (see
	// internal.go), relative to the tree.
	internal string
	// files are path.Match patterns, relative to the tree, of the files
	// whose definitions the group considers. Default: the include itself
	// under include/uapi, or the internal header.
	files    []string
	prefixes []string
	// names are selected exactly, and each must be found.
	names []string
	// enums are the enumerations of an internal header whose enumerators
	// the group may select.
	enums []string
	// exclude maps names the prefixes would select to the reason they are
	// left out.
	exclude map[string]string
}

func (g *group) selects(name string) bool {
	if _, ok := g.exclude[name]; ok {
		return false
	}
	for _, p := range g.prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	for _, n := range g.names {
		if n == name {
			return true
		}
	}
	return false
}

func (g *group) hasEnum(name string) bool {
	for _, e := range g.enums {
		if e == name {
			return true
		}
	}
	return false
}

func (g *group) considers(file string) bool {
	files := g.files
	if len(files) == 0 {
		if g.internal != "" {
			files = []string{g.internal}
		} else {
			files = []string{"include/uapi/" + g.include}
		}
	}
	for _, pat := range files {
		if ok, _ := path.Match(pat, file); ok {
			return true
		}
	}
	return false
}

// The groups of constants, in the order the generated tables list them.
// The package documentation of linuxabi describes the same selection; keep
// the two in step.
var groups = []*group{
	{
		include: "linux/fcntl.h",
		files: []string{
			"include/uapi/linux/fcntl.h",
			"include/uapi/asm-generic/fcntl.h",
			"arch/*/include/uapi/asm/fcntl.h",
		},
		prefixes: []string{"O_", "F_", "AT_", "LOCK_"},
		names:    []string{"FD_CLOEXEC"},
	},
	{include: "linux/openat2.h", prefixes: []string{"RESOLVE_"}},
	{include: "linux/fs.h", prefixes: []string{"SEEK_", "RENAME_"}},
	{
		include:  "linux/stat.h",
		prefixes: []string{"S_IF", "S_IS", "S_IR", "S_IW", "S_IX", "STATX_"},
	},
	{include: "linux/sched.h", prefixes: []string{"CLONE_", "SCHED_"}, names: []string{"CSIGNAL"}},
	{include: "linux/wait.h", prefixes: []string{"W", "P_"}},
	{include: "linux/memfd.h", prefixes: []string{"MFD_"}},
	{
		include: "linux/mman.h",
		files: []string{
			"include/uapi/linux/mman.h",
			"include/uapi/asm-generic/mman.h",
			"include/uapi/asm-generic/mman-common.h",
			"arch/*/include/uapi/asm/mman.h",
		},
		prefixes: []string{"PROT_", "MAP_", "MREMAP_", "MADV_", "MLOCK_", "MCL_", "PKEY_"},
		names:    []string{"MS_ASYNC", "MS_INVALIDATE", "MS_SYNC"},
	},
	{
		include:  "linux/mount.h",
		prefixes: []string{"MS_", "MOUNT_ATTR_", "MOVE_MOUNT_", "OPEN_TREE_", "FSOPEN_", "FSMOUNT_", "FSPICK_"},
	},
	{include: "linux/capability.h", prefixes: []string{"CAP_"}},
	{include: "linux/prctl.h", prefixes: []string{"PR_"}, exclude: map[string]string{
		"PR_SET_PTRACER_ANY": "a pointer-sized cast, ((unsigned long)-1)",
	}},
	{
		include: "asm/signal.h",
		files: []string{
			"arch/*/include/uapi/asm/signal.h",
			"include/uapi/asm-generic/signal.h",
			"include/uapi/asm-generic/signal-defs.h",
		},
		prefixes: []string{"SIG", "SA_", "SS_"},
		names:    []string{"MINSIGSTKSZ"},
		exclude: map[string]string{
			"SIG_DFL": "a handler pointer, not a number",
			"SIG_IGN": "a handler pointer, not a number",
			"SIG_ERR": "a handler pointer, not a number",
			// x86 defines _NSIG only in its kernel-internal asm/signal.h.
			"SIGRTMAX": "defined as _NSIG, which the x86 uapi headers lack",
		},
	},
	{
		include:  "asm/resource.h",
		files:    []string{"include/uapi/asm-generic/resource.h", "arch/*/include/uapi/asm/resource.h"},
		prefixes: []string{"RLIMIT_"},
	},
	{
		include:  "linux/loop.h",
		prefixes: []string{"LOOP_"},
		exclude: map[string]string{
			"LOOP_SET_STATUS_SETTABLE_FLAGS":  "refers to enumerators, which the preprocessor does not see",
			"LOOP_SET_STATUS_CLEARABLE_FLAGS": "refers to enumerators, which the preprocessor does not see",
			"LOOP_CONFIGURE_SETTABLE_FLAGS":   "refers to enumerators, which the preprocessor does not see",
		},
	},
	{
		include: "asm/socket.h",
		files: []string{
			"include/uapi/asm-generic/socket.h",
			"arch/*/include/uapi/asm/socket.h",
		},
		prefixes: []string{"SO_"},
		names:    []string{"SOL_SOCKET"},
	},
	{
		internal: "include/linux/socket.h",
		prefixes: []string{"AF_", "PF_", "SOL_"},
		names: []string{
			"MSG_OOB", "MSG_PEEK", "MSG_DONTROUTE", "MSG_CTRUNC", "MSG_PROBE",
			"MSG_TRUNC", "MSG_DONTWAIT", "MSG_EOR", "MSG_WAITALL", "MSG_FIN",
			"MSG_SYN", "MSG_CONFIRM", "MSG_RST", "MSG_ERRQUEUE", "MSG_NOSIGNAL",
			"MSG_MORE", "MSG_WAITFORONE", "MSG_BATCH", "MSG_ZEROCOPY",
			"MSG_FASTOPEN", "MSG_CMSG_CLOEXEC",
			"SCM_RIGHTS", "SCM_CREDENTIALS",
		},
	},
	{
		internal: "include/linux/net.h",
		enums:    []string{"sock_type"},
		names: []string{
			"SOCK_STREAM", "SOCK_DGRAM", "SOCK_RAW", "SOCK_RDM", "SOCK_SEQPACKET",
			"SOCK_DCCP", "SOCK_PACKET", "SOCK_CLOEXEC", "SOCK_NONBLOCK",
		},
	},
	{
		internal: "include/linux/eventfd.h",
		names:    []string{"EFD_SEMAPHORE", "EFD_CLOEXEC", "EFD_NONBLOCK"},
	},
}

// constant is one generated constant.
type constant struct {
	name    string
	value   int64
	file    string
	decimal bool // written as a decimal literal in the header
}

// constants evaluates the groups for the arch a.
func (t *tree) constants(a arch) ([]constant, error) {
	var src strings.Builder
	for _, g := range groups {
		if g.include != "" {
			fmt.Fprintf(&src, "#include <%s>\n", g.include)
		}
	}
	// Extracts come last: they refer to uapi macros such as O_CLOEXEC.
	for _, g := range groups {
		if g.internal == "" {
			continue
		}
		p, err := t.extract(g)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&src, "#include %q\n", p)
	}
	ms, err := t.preprocess(a, src.String())
	if err != nil {
		return nil, err
	}
	var out []constant
	seen := map[string]constant{}
	for _, g := range groups {
		found := map[string]bool{}
		n := 0
		start := len(out)
		for _, m := range ms.order {
			if m.funcLike || !g.considers(m.file) || !g.selects(m.name) {
				continue
			}
			v, err := ms.eval(m.name)
			if err != nil {
				return nil, fmt.Errorf("constants for %s: %w", a.name, err)
			}
			found[m.name] = true
			n++
			c := constant{name: m.name, value: v, file: m.file, decimal: ms.decimal(m.name)}
			if prev, ok := seen[m.name]; ok {
				if prev.value != v {
					return nil, fmt.Errorf("constants for %s: %s is %d in %s and %d in %s: %w", a.name, m.name, prev.value, prev.file, v, m.file, errTree)
				}
				continue
			}
			seen[m.name] = c
			out = append(out, c)
		}
		for _, name := range g.names {
			if !found[name] {
				return nil, fmt.Errorf("constants for %s: %s not defined in %s: %w", a.name, name, g.source(), errTree)
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("constants for %s: nothing selected from %s: %w", a.name, g.source(), errTree)
		}
		// Keep each file's definitions together, files in the order the
		// preprocessor first met them.
		rank := map[string]int{}
		for _, c := range out[start:] {
			if _, ok := rank[c.file]; !ok {
				rank[c.file] = len(rank)
			}
		}
		slices.SortStableFunc(out[start:], func(x, y constant) int { return cmp.Compare(rank[x.file], rank[y.file]) })
	}
	return out, nil
}

func (g *group) source() string {
	if g.internal != "" {
		return g.internal
	}
	return "<" + g.include + ">"
}
