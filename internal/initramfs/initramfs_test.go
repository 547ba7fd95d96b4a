package initramfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cavaliergopher/cpio"

	"github.com/provium/provium/internal/cache"
)

type entry struct {
	mode cpio.FileMode
	data string // file contents or symlink target
}

// unpack reads concatenated archives the way the kernel does: archive
// after archive, NUL padding between them skipped, later entries replacing
// earlier ones. It also returns the entry names in archive order.
func unpack(t *testing.T, data []byte) (map[string]entry, []string) {
	t.Helper()
	files := map[string]entry{}
	var order []string
	br := bytes.NewReader(data)
	for {
		for {
			b, err := br.ReadByte()
			if err == io.EOF {
				return files, order
			}
			if b != 0 {
				br.UnreadByte()
				break
			}
		}
		r := cpio.NewReader(br)
		for {
			h, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("read archive: %v", err)
			}
			e := entry{mode: h.Mode, data: h.Linkname}
			if h.Mode&cpio.ModeType == cpio.TypeReg {
				b, err := io.ReadAll(r)
				if err != nil {
					t.Fatal(err)
				}
				e.data = string(b)
			}
			files[h.Name] = e
			order = append(order, h.Name)
		}
	}
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask
		t.Fatal(err)
	}
	return path
}

func TestClean(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{"/bin/ls", "bin/ls", false},
		{"bin//ls/", "bin/ls", false},
		{"/../../etc/passwd", "etc/passwd", false},
		{"/", "", true},
		{"", "", true},
	} {
		got, err := clean(tc.in)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("clean(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestWriteShim(t *testing.T) {
	dir := t.TempDir()
	agent := writeFile(t, filepath.Join(dir, "provium"), "AGENT", 0o700)
	m1 := writeFile(t, filepath.Join(dir, "virtio.ko"), "M1", 0o600)
	m2 := writeFile(t, filepath.Join(dir, "virtio_pci.ko"), "M2", 0o600)
	var buf bytes.Buffer
	if err := WriteShim(&buf, Shim{Agent: agent, Modules: []string{m1, m2}}); err != nil {
		t.Fatal(err)
	}
	files, order := unpack(t, buf.Bytes())
	want := map[string]entry{
		"provium":                       {cpio.TypeDir | 0o755, ""},
		"provium/modules":               {cpio.TypeDir | 0o755, ""},
		"proc":                          {cpio.TypeDir | 0o555, ""},
		"sys":                           {cpio.TypeDir | 0o555, ""},
		"dev":                           {cpio.TypeDir | 0o755, ""},
		"tmp":                           {cpio.TypeDir | 0o1777, ""},
		"provium/init":                  {cpio.TypeReg | 0o755, "AGENT"},
		"provium/modules/virtio.ko":     {cpio.TypeReg | 0o644, "M1"},
		"provium/modules/virtio_pci.ko": {cpio.TypeReg | 0o644, "M2"},
		"provium/modules.order":         {cpio.TypeReg | 0o644, "/provium/modules/virtio.ko\n/provium/modules/virtio_pci.ko\n"},
	}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("shim =\n%v\nwant\n%v", files, want)
	}
	if order[0] != "provium" || order[1] != "provium/modules" {
		t.Errorf("directories must come before their contents: %q", order)
	}

	if err := WriteShim(io.Discard, Shim{Agent: agent, Modules: []string{m1, m1}}); err == nil {
		t.Error("duplicate module file names accepted")
	}
	err := WriteShim(io.Discard, Shim{Agent: filepath.Join(dir, "missing")})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing agent: error %v does not name the file", err)
	}
}

func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	exe := writeFile(t, filepath.Join(dir, "tool"), "#!/bin/sh\n", 0o755)
	secret := writeFile(t, filepath.Join(dir, "secret"), "s3cret", 0o600)
	files := map[string]string{"/usr/local/bin/tool": exe, "/root/.secret": secret, "/tmp/x": secret}

	var a, b bytes.Buffer
	if err := WriteFiles(&a, files); err != nil {
		t.Fatal(err)
	}
	if err := WriteFiles(&b, files); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("WriteFiles is not deterministic")
	}
	got, order := unpack(t, a.Bytes())
	want := map[string]entry{
		"root":               {cpio.TypeDir | 0o700, ""},
		"root/.secret":       {cpio.TypeReg | 0o600, "s3cret"},
		"tmp":                {cpio.TypeDir | 0o1777, ""},
		"tmp/x":              {cpio.TypeReg | 0o600, "s3cret"},
		"usr":                {cpio.TypeDir | 0o755, ""},
		"usr/local":          {cpio.TypeDir | 0o755, ""},
		"usr/local/bin":      {cpio.TypeDir | 0o755, ""},
		"usr/local/bin/tool": {cpio.TypeReg | 0o755, "#!/bin/sh\n"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("archive =\n%v\nwant\n%v", got, want)
	}
	wantOrder := []string{"root", "root/.secret", "tmp", "tmp/x", "usr", "usr/local", "usr/local/bin", "usr/local/bin/tool"}
	if !reflect.DeepEqual(order, wantOrder) {
		t.Errorf("order = %q, want %q", order, wantOrder)
	}
}

func TestWriteFilesErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"missing host file", map[string]string{"/a": filepath.Join(dir, "nope")}, filepath.Join(dir, "nope")},
		{"directory", map[string]string{"/a": dir}, "not a regular file"},
		{"root as guest path", map[string]string{"/": writeFile(t, filepath.Join(dir, "f"), "", 0o644)}, "invalid guest path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := WriteFiles(io.Discard, tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// elfFile writes a minimal x86-64 ELF executable header, with a PT_INTERP
// program header when dynamic is set.
func elfFile(t *testing.T, path string, dynamic bool) string {
	t.Helper()
	var b bytes.Buffer
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	var phnum uint16
	if dynamic {
		phnum = 1
	}
	binary.Write(&b, binary.LittleEndian, struct {
		Type, Machine                                    uint16
		Version                                          uint32
		Entry, Phoff, Shoff                              uint64
		Flags                                            uint32
		Ehsize, Phentsize, Phnum, Shentsize, Shnum, Shst uint16
	}{2, 62, 1, 0x401000, 64, 0, 0, 64, 56, phnum, 64, 0, 0})
	if dynamic {
		interp := "/lib64/ld-linux-x86-64.so.2\x00"
		binary.Write(&b, binary.LittleEndian, struct {
			Type, Flags                            uint32
			Off, Vaddr, Paddr, Filesz, Memsz, Algn uint64
		}{3, 4, 120, 0, 0, uint64(len(interp)), uint64(len(interp)), 1})
		b.WriteString(interp)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckStatic(t *testing.T) {
	dir := t.TempDir()
	if err := CheckStatic(elfFile(t, filepath.Join(dir, "static"), false)); err != nil {
		t.Errorf("static: %v", err)
	}
	if err := CheckStatic(elfFile(t, filepath.Join(dir, "dynamic"), true)); !errors.Is(err, ErrNotStatic) {
		t.Errorf("dynamic: error %v, want ErrNotStatic", err)
	}
	if err := CheckStatic(writeFile(t, filepath.Join(dir, "script"), "#!/bin/sh\n", 0o755)); err == nil {
		t.Error("script accepted as a static executable")
	}
	err := WriteBusyboxRoot(io.Discard, filepath.Join(dir, "dynamic"))
	if !errors.Is(err, ErrNotStatic) || !strings.Contains(err.Error(), "busybox-static") || !strings.Contains(err.Error(), "PROVIUM_BUSYBOX") {
		t.Errorf("dynamic busybox: error %v, want ErrNotStatic with the fix", err)
	}
}

func TestWriteRoot(t *testing.T) {
	bb := writeFile(t, filepath.Join(t.TempDir(), "busybox"), "BUSYBOX", 0o755)
	var buf bytes.Buffer
	if err := writeRoot(&buf, bb, []string{"bin/busybox", "bin/sh", "bin/ls", "usr/sbin/arping", "usr/bin/["}); err != nil {
		t.Fatal(err)
	}
	files, _ := unpack(t, buf.Bytes())
	for name, want := range map[string]entry{
		"bin/busybox":     {cpio.TypeReg | 0o755, "BUSYBOX"},
		"bin/sh":          {cpio.TypeSymlink | 0o777, "/bin/busybox"},
		"usr/sbin/arping": {cpio.TypeSymlink | 0o777, "/bin/busybox"},
		"usr/bin/[":       {cpio.TypeSymlink | 0o777, "/bin/busybox"},
		"etc/passwd":      {cpio.TypeReg | 0o644, etcPasswd},
		"etc/group":       {cpio.TypeReg | 0o644, etcGroup},
		"tmp":             {cpio.TypeDir | 0o1777, ""},
		"root":            {cpio.TypeDir | 0o700, ""},
		"run":             {cpio.TypeDir | 0o755, ""},
		"var":             {cpio.TypeDir | 0o755, ""},
	} {
		if got := files[name]; got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// TestBusyboxRootAndShim builds what a built-in profile boots: the busybox
// root, then the shim, then boot files, concatenated.
func TestBusyboxRootAndShim(t *testing.T) {
	busybox := "/bin/busybox"
	if err := CheckStatic(busybox); err != nil {
		t.Skipf("no static busybox: %v", err)
	}
	dir := t.TempDir()
	var buf bytes.Buffer
	if err := WriteBusyboxRoot(&buf, busybox); err != nil {
		t.Fatal(err)
	}
	buf.Write(make([]byte, 512-buf.Len()%512)) // padding, as callers may add
	agent := writeFile(t, filepath.Join(dir, "agent"), "AGENT", 0o755)
	if err := WriteShim(&buf, Shim{Agent: agent}); err != nil {
		t.Fatal(err)
	}
	override := writeFile(t, filepath.Join(dir, "passwd"), "root::0:0::/:/bin/sh\n", 0o644)
	if err := WriteFiles(&buf, map[string]string{"/etc/passwd": override}); err != nil {
		t.Fatal(err)
	}
	files, _ := unpack(t, buf.Bytes())
	for _, name := range []string{"bin/sh", "bin/ls", "bin/mount", "sbin/modprobe"} {
		if e := files[name]; e.mode&cpio.ModeType != cpio.TypeSymlink || e.data != "/bin/busybox" {
			t.Errorf("%s = %v, want a symlink to /bin/busybox", name, e)
		}
	}
	for _, name := range []string{"sbin/init", "linuxrc"} {
		if _, ok := files[name]; ok {
			t.Errorf("%s present: the agent would not stay PID 1", name)
		}
	}
	if files["provium/init"].data != "AGENT" {
		t.Error("shim missing after the busybox root")
	}
	if files["etc/passwd"].data != "root::0:0::/:/bin/sh\n" {
		t.Error("a later archive did not override an earlier file")
	}
	if files["tmp"].mode != cpio.TypeDir|0o1777 {
		t.Errorf("tmp mode %v after the shim", files["tmp"].mode)
	}
}

func TestCached(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	calls := 0
	write := func(w io.Writer) error {
		calls++
		_, err := io.WriteString(w, "archive")
		return err
	}
	p1, err := Cached(dir, "root", cache.Key("k1"), write)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Cached(dir, "root", cache.Key("k1"), write)
	if err != nil {
		t.Fatal(err)
	}
	p3, err := Cached(dir, "root", cache.Key("k2"), write)
	if err != nil {
		t.Fatal(err)
	}
	if p1 != p2 || p1 == p3 || calls != 2 {
		t.Errorf("paths %s %s %s after %d writes; want the same key to hit the cache", p1, p2, p3, calls)
	}
	if !strings.HasPrefix(filepath.Base(p1), "root-") || filepath.Ext(p1) != ".cpio" || len(filepath.Base(p1)) != len("root-")+16+len(".cpio") {
		t.Errorf("path %s, want root-<16 hex>.cpio", p1)
	}
	if b, _ := os.ReadFile(p1); string(b) != "archive" {
		t.Errorf("contents %q", b)
	}

	boom := errors.New("boom")
	_, err = Cached(dir, "root", cache.Key("k3"), func(w io.Writer) error { io.WriteString(w, "half"); return boom })
	if !errors.Is(err, boom) {
		t.Errorf("error %v, want boom", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("cache holds %q; a failed write must leave nothing behind", names)
	}
}

func TestCachedConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	paths := make(chan string, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			p, err := Cached(dir, "x", cache.Key("same"), func(w io.Writer) error {
				_, err := w.Write(bytes.Repeat([]byte("y"), 3<<20))
				return err
			})
			paths <- p
			errs <- err
		}()
	}
	first := ""
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		p := <-paths
		if first == "" {
			first = p
		}
		if p != first {
			t.Errorf("paths differ: %s %s", p, first)
		}
		if st, err := os.Stat(p); err != nil || st.Size() != 3<<20 {
			t.Errorf("%s: incomplete file visible: %v %v", p, st, err)
		}
	}
}

// The cache keeps the most recently used archives of a name and drops the
// rest: every provium build makes new ones.
func TestCachedIsBounded(t *testing.T) {
	dir := t.TempDir()
	write := func(w io.Writer) error { _, err := io.WriteString(w, "x"); return err }
	first, err := Cached(dir, "initrd", cache.Key("key 0"), write)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= keepArchives; i++ {
		// Used again before each new one: it stays among the recent.
		if _, err := Cached(dir, "initrd", cache.Key("key 0"), write); err != nil {
			t.Fatal(err)
		}
		if _, err := Cached(dir, "initrd", cache.Key(fmt.Sprintf("key %d", i)), write); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Cached(dir, "busybox", cache.Key("other"), write); err != nil {
		t.Fatal(err)
	}
	archives, _ := filepath.Glob(filepath.Join(dir, "initrd-*.cpio"))
	if len(archives) != keepArchives {
		t.Errorf("%d initrd archives in the cache, want %d", len(archives), keepArchives)
	}
	if _, err := os.Stat(first); err != nil {
		t.Errorf("the archive used all along was dropped: %v", err)
	}
	if others, _ := filepath.Glob(filepath.Join(dir, "busybox-*.cpio")); len(others) != 1 {
		t.Errorf("archives of another name: %v", others)
	}
}
