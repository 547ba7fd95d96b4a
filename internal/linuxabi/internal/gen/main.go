// Command gen writes the generated tables of package linuxabi from a Linux
// source tree:
//
//	go run ./internal/gen -linux /path/to/linux-source [-out DIR] [-cc gcc]
//
// It writes zversion.go, zsyscalls_x86_64.go, zsyscalls_aarch64.go,
// zerrno.go, zconst_x86_64.go and zconst_aarch64.go into DIR (default: the
// current directory, which go generate sets to the package's).
//
// The tree need not be complete or configured. The generator reads the
// top-level Makefile (for the version), include/uapi, arch/x86/include/uapi,
// arch/arm64/include/uapi, arch/x86/entry/syscalls/syscall_64.tbl and three
// kernel-internal headers: include/linux/socket.h, include/linux/net.h and
// include/linux/eventfd.h. From Debian's linux-source package:
//
//	apt-get install linux-source-6.1
//	tar -C /tmp -xJf /usr/src/linux-source-6.1.tar.xz --wildcards \
//		'linux-source-6.1/Makefile' \
//		'linux-source-6.1/include/uapi/*' \
//		'linux-source-6.1/arch/*/include/uapi/*' \
//		'linux-source-6.1/arch/x86/entry/syscalls/*' \
//		linux-source-6.1/include/linux/socket.h \
//		linux-source-6.1/include/linux/net.h \
//		linux-source-6.1/include/linux/eventfd.h
//
// Headers are read through the C preprocessor (-cc, GCC or Clang), run with
// -undef -nostdinc and the target's own predefined macros, so the tables for
// arm64 come out the same on any host. Macro values are evaluated by a small
// evaluator of C constant expressions that fails on anything it does not
// understand; so does every other step, rather than write a doubtful table.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/format"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

func main() {
	linux := flag.String("linux", "", "Linux source `dir`ectory (required)")
	out := flag.String("out", ".", "`dir`ectory to write the generated files to")
	cc := flag.String("cc", "gcc", "C `compiler` to run as a preprocessor")
	flag.Parse()
	if *linux == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: gen -linux DIR [-out DIR] [-cc gcc]")
		fmt.Fprintln(os.Stderr, "(go generate passes $LINUX_SRC as DIR: set it to a Linux source tree)")
		os.Exit(2)
	}
	if err := run(*linux, *out, *cc); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// run generates every file in memory and writes them only when all
// succeeded, so a failure leaves the previous tables in place.
func run(linux, out, cc string) error {
	files, err := generate(linux, cc)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(out, f.name), f.src, 0o644); err != nil {
			return fmt.Errorf("write generated file: %w", err)
		}
	}
	return nil
}

// genFile is one generated Go file.
type genFile struct {
	name string
	src  []byte
}

func generate(linux, cc string) ([]genFile, error) {
	dir, err := filepath.Abs(linux)
	if err != nil {
		return nil, fmt.Errorf("linux source tree: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "include/uapi")); err != nil {
		return nil, fmt.Errorf("linux source tree %s: %w", dir, err)
	}
	version, err := readVersion(dir)
	if err != nil {
		return nil, err
	}
	scratch, err := os.MkdirTemp("", "linuxabi-gen-")
	if err != nil {
		return nil, fmt.Errorf("scratch directory: %w", err)
	}
	defer os.RemoveAll(scratch)
	t := &tree{dir: dir, cc: cc, scratch: scratch}

	var files []genFile
	add := func(name, source, body string) error {
		src, err := goFile(version, source, body)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		files = append(files, genFile{name, src})
		return nil
	}

	if err := add("zversion.go", "Makefile", fmt.Sprintf(
		"// KernelVersion is the version of the Linux sources the tables come from.\nconst KernelVersion = %q\n", version)); err != nil {
		return nil, err
	}

	x86, err := t.syscallsX86()
	if err != nil {
		return nil, err
	}
	generic, err := t.syscallsGeneric(arm64)
	if err != nil {
		return nil, err
	}
	for _, s := range []struct {
		a      arch
		source string
		calls  []syscall
	}{
		{x86_64, x86Table + ", ABIs common and 64", x86},
		{arm64, "include/uapi/asm-generic/unistd.h with arch/arm64/include/uapi/asm/unistd.h", generic},
	} {
		if err := add("zsyscalls_"+s.a.file+".go", s.source, syscallsBody(s.a, s.calls)); err != nil {
			return nil, err
		}
	}

	var errnos [][]errno
	for _, a := range []arch{x86_64, arm64} {
		e, err := t.errnos(a)
		if err != nil {
			return nil, err
		}
		errnos = append(errnos, e)
	}
	if !slices.Equal(errnos[0], errnos[1]) {
		return nil, fmt.Errorf("error numbers differ between %s and %s: %w", x86_64.name, arm64.name, errTree)
	}
	if err := add("zerrno.go", "include/uapi/asm-generic/errno-base.h and errno.h", errnoBody(errnos[0])); err != nil {
		return nil, err
	}

	for _, a := range []arch{x86_64, arm64} {
		cs, err := t.constants(a)
		if err != nil {
			return nil, err
		}
		if err := add("zconst_"+a.file+".go", "the uapi headers of "+a.name+" and include/linux/{socket,net,eventfd}.h", constantsBody(a, cs)); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// goFile returns a formatted generated Go file of package linuxabi.
func goFile(version, source, body string) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by linuxabi/internal/gen from Linux %s (%s). DO NOT EDIT.\n\n", version, source)
	b.WriteString("package linuxabi\n\n")
	b.WriteString(body)
	src, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("format generated code: %w", err)
	}
	return src, nil
}

func syscallsBody(a arch, calls []syscall) string {
	var b strings.Builder
	fmt.Fprintf(&b, "// syscalls%s maps the %s system call names to their numbers.\n", a.ident, a.name)
	fmt.Fprintf(&b, "var syscalls%s = map[string]int{\n", a.ident)
	for _, c := range calls {
		fmt.Fprintf(&b, "\t%q: %d,\n", c.name, c.nr)
	}
	b.WriteString("}\n")
	return b.String()
}

func errnoBody(es []errno) string {
	var b strings.Builder
	b.WriteString("// errnos maps every error name to its number, aliases included.\n")
	b.WriteString("var errnos = map[string]int{\n")
	for _, e := range es {
		fmt.Fprintf(&b, "\t%q: %d,\n", e.name, e.value)
	}
	b.WriteString("}\n\n")
	b.WriteString("// errnoNames holds the primary name of each error number.\n")
	b.WriteString("var errnoNames = [...]string{\n")
	for _, e := range es {
		if !e.alias {
			fmt.Fprintf(&b, "\t%d: %q,\n", e.value, e.name)
		}
	}
	b.WriteString("}\n")
	return b.String()
}

func constantsBody(a arch, cs []constant) string {
	var b strings.Builder
	fmt.Fprintf(&b, "// constants%s maps the %s constants to their values, under the\n", a.ident, a.name)
	b.WriteString("// header that defines each.\n")
	fmt.Fprintf(&b, "var constants%s = map[string]int64{\n", a.ident)
	file := ""
	for _, c := range cs {
		if c.file != file {
			if file != "" {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "\t// %s\n", c.file)
			file = c.file
		}
		fmt.Fprintf(&b, "\t%q: %s,\n", c.name, formatValue(c.value, c.decimal))
	}
	b.WriteString("}\n")
	return b.String()
}

// formatValue writes in decimal what the header writes in decimal, and
// small and negative numbers; flags and masks in hexadecimal.
func formatValue(v int64, decimal bool) string {
	if decimal || v < 10 {
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("%#x", v)
}
