package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadVersion(t *testing.T) {
	for _, tc := range []struct {
		makefile string
		want     string
	}{
		{"VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\nEXTRAVERSION =\nNAME = Curry Ramen\n", "6.1.192"},
		{"VERSION = 6\nPATCHLEVEL = 8\nSUBLEVEL = 0\nEXTRAVERSION = -rc3\n", "6.8-rc3"},
	} {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "Makefile"), tc.makefile)
		got, err := readVersion(dir)
		if err != nil || got != tc.want {
			t.Errorf("readVersion(%q) = %q, %v; want %q", tc.makefile, got, err, tc.want)
		}
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Makefile"), "all:\n")
	if _, err := readVersion(dir); !errors.Is(err, errTree) {
		t.Errorf("readVersion of a Makefile without a version: %v; want errTree", err)
	}
}

const sockHeader = `/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _LINUX_FAKE_H
#define _LINUX_FAKE_H
#include <linux/stringify.h>

/* A comment that mentions
#define AF_COMMENTED 99
and should not count. */
#define AF_UNIX	1	/* Unix domain sockets */
#define AF_INET	2 // Internet
#define PF_UNIX	AF_UNIX
#define AF_LONG (AF_UNIX | \
		 AF_INET)
#define OTHER 3

#ifndef ARCH_HAS_SOCKET_TYPES
enum sock_type {
	SOCK_STREAM	= 1,
	SOCK_DGRAM	= 2,
};
#define SOCK_CLOEXEC O_CLOEXEC
#endif

enum other { SOCK_NOT_THIS = 7 };
#endif
`

func TestExtract(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "include/linux/fake.h"), sockHeader)
	tr := &tree{dir: dir, scratch: t.TempDir()}
	g := &group{
		internal: "include/linux/fake.h",
		prefixes: []string{"AF_", "PF_"},
		names:    []string{"SOCK_STREAM", "SOCK_DGRAM", "SOCK_CLOEXEC", "SOCK_NOT_THIS"},
		enums:    []string{"sock_type"},
	}
	p, err := tr.extract(g)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"#ifndef _LINUX_FAKE_H",
		"#define AF_UNIX\t1",
		"#define AF_INET\t2",
		"#define PF_UNIX\tAF_UNIX",
		"#define AF_LONG (AF_UNIX |  \t\t AF_INET)",
		"#ifndef ARCH_HAS_SOCKET_TYPES",
		"#define SOCK_STREAM 1",
		"#define SOCK_DGRAM 2",
		"#define SOCK_CLOEXEC O_CLOEXEC",
		"#endif",
		"#endif",
		"",
	}, "\n")
	if got := normalizeSpace(string(b)); got != normalizeSpace(want) {
		t.Errorf("extract:\n%s\nwant:\n%s", b, want)
	}
	if rel := tr.relative(p); rel != "include/linux/fake.h" {
		t.Errorf("relative(%s) = %s; want include/linux/fake.h", p, rel)
	}
}

// normalizeSpace collapses runs of blanks, which the extract keeps as the
// header has them.
func normalizeSpace(s string) string {
	var lines []string
	for l := range strings.SplitSeq(s, "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(lines, "\n")
}

func TestExtractRejectsConfigDependentValues(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "include/linux/fake.h"), `
#if defined(CONFIG_COMPAT)
#define MSG_CMSG_COMPAT 0x80000000
#else
#define MSG_CMSG_COMPAT 0
#endif
`)
	tr := &tree{dir: dir, scratch: t.TempDir()}
	if _, err := tr.extract(&group{internal: "include/linux/fake.h", names: []string{"MSG_CMSG_COMPAT"}}); !errors.Is(err, errTree) {
		t.Errorf("extract of a CONFIG_-dependent value: %v; want errTree", err)
	}
	writeFile(t, filepath.Join(dir, "include/linux/enum.h"), "enum sock_type {\n\tSOCK_STREAM,\n};\n")
	if _, err := tr.extract(&group{internal: "include/linux/enum.h", names: []string{"SOCK_STREAM"}, enums: []string{"sock_type"}}); !errors.Is(err, errTree) {
		t.Errorf("extract of an enumerator without a value: %v; want errTree", err)
	}
}

func TestStripComments(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a /* b */ c", "a   c"},
		{"a /* b\nc */ d", "a \n  d"},
		{"a // b\nc", "a \nc"},
		{`"/* not */" x`, `"/* not */" x`},
		{`'"' /* y */`, `'"'  `},
		{"a /* unterminated", "a  "},
	} {
		if got := stripComments(tc.in); got != tc.want {
			t.Errorf("stripComments(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

// TestGeneratedFilesUpToDate regenerates the tables from the tree LINUX_SRC
// names and compares them with the checked-in files.
func TestGeneratedFilesUpToDate(t *testing.T) {
	src := os.Getenv("LINUX_SRC")
	if src == "" {
		t.Skip("LINUX_SRC is not set; set it to a Linux source tree to check the generated files against it")
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc is not installed")
	}
	files, err := generate(src, "gcc")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		have, err := os.ReadFile(filepath.Join("..", "..", f.name))
		if err != nil {
			t.Error(err)
			continue
		}
		if !bytes.Equal(have, f.src) {
			t.Errorf("%s differs from what %s generates; run go generate in internal/linuxabi", f.name, src)
		}
	}
}

func TestJoinContinued(t *testing.T) {
	in := "#define A (1 | \\\n\t2)\n#define B 3\n"
	want := "#define A (1 |  \t2)\n\n#define B 3\n"
	if got := joinContinued(in); got != want {
		t.Errorf("joinContinued(%q) = %q; want %q", in, got, want)
	}
}
