package agent

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire"
)

func TestWriteAndReadFile(t *testing.T) {
	h := newSession(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "f")

	// Larger than one frame, so it crosses the wire in pieces.
	data := bytes.Repeat([]byte("0123456789abcdef"), 3*wire.MaxChunk/16+7)
	h.ok(wire.MainChannel, wire.OpWriteFile, wire.WriteFile{Path: path}, data)
	m := h.ok(wire.MainChannel, wire.OpReadFile, wire.Path{Path: path})
	if !bytes.Equal(m.Blob(0), data) {
		t.Errorf("read back %d bytes, want the %d written", len(m.Blob(0)), len(data))
	}

	// Rewriting truncates.
	h.ok(wire.MainChannel, wire.OpWriteFile, wire.WriteFile{Path: path}, []byte("short"))
	if m := h.ok(wire.MainChannel, wire.OpReadFile, wire.Path{Path: path}); string(m.Blob(0)) != "short" {
		t.Errorf("after rewrite: %q", m.Blob(0))
	}

	// An explicit mode is applied exactly, whatever the umask.
	exact := filepath.Join(dir, "exact")
	h.ok(wire.MainChannel, wire.OpWriteFile, wire.WriteFile{Path: exact, Mode: 0o4777}, nil)
	var st unix.Stat_t
	if err := unix.Stat(exact, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != 0o4777 {
		t.Errorf("mode %#o, want 04777", st.Mode&0o7777)
	}

	// Files that report size 0 are read to the end.
	if m := h.ok(wire.MainChannel, wire.OpReadFile, wire.Path{Path: "/proc/self/status"}); !bytes.Contains(m.Blob(0), []byte("Pid:")) {
		t.Errorf("/proc/self/status read as %q", m.Blob(0))
	}
}

func TestFileErrors(t *testing.T) {
	h := newSession(t)
	e := h.fail(wire.MainChannel, wire.OpReadFile, wire.Path{Path: "/nonexistent/x"})
	want := "read_file /nonexistent/x: open /nonexistent/x: no such file or directory (ENOENT)"
	if e.Message != want || e.Errno != int(unix.ENOENT) || e.ErrnoName != "ENOENT" {
		t.Errorf("error = %+v, want message %q with errno ENOENT", e, want)
	}
	e = h.fail(wire.MainChannel, wire.OpWriteFile, wire.WriteFile{Path: "/nonexistent/x"}, []byte("x"))
	if e.ErrnoName != "ENOENT" || !strings.HasPrefix(e.Message, "write_file /nonexistent/x: ") {
		t.Errorf("write error = %+v", e)
	}
	e = h.fail(wire.MainChannel, wire.OpReadFile, wire.Path{Path: t.TempDir()})
	if e.ErrnoName != "EISDIR" {
		t.Errorf("reading a directory: %+v", e)
	}
	e = h.fail(wire.MainChannel, wire.OpWriteFile, wire.WriteFile{Path: filepath.Join(t.TempDir(), "x"), Mode: 0o170000}, nil)
	if e.ErrnoName != "EINVAL" {
		t.Errorf("bad mode: %+v", e)
	}
}

func TestDmesg(t *testing.T) {
	h := newSession(t)
	if _, err := unix.Klogctl(syslogActionSizeBuffer, nil); err != nil {
		t.Skipf("no access to the kernel log here: %v", err)
	}
	m := h.ok(wire.MainChannel, wire.OpDmesg, nil)
	if len(m.Blobs) != 1 {
		t.Errorf("dmesg reply has %d blobs, want 1", len(m.Blobs))
	}
}

func TestMountTable(t *testing.T) {
	table := `proc /proc proc rw,nosuid 0 0
sysfs /sys sysfs rw 0 0
none /mnt/with\040space tmpfs rw 0 0
devtmpfs /dev devtmpfs rw 0 0
`
	for _, tc := range []struct {
		target, fstype string
		want           bool
	}{
		{"/proc", "proc", true},
		{"/sys", "sysfs", true},
		{"/dev", "devtmpfs", true},
		{"/mnt/with space", "tmpfs", true},
		{"/sys/kernel/security", "securityfs", false},
		{"/sys", "proc", false},
	} {
		if got := inMountTable(strings.NewReader(table), tc.target, tc.fstype); got != tc.want {
			t.Errorf("inMountTable(%q, %q) = %v, want %v", tc.target, tc.fstype, got, tc.want)
		}
	}
}

func TestFilesystems(t *testing.T) {
	list := "nodev\tsysfs\nnodev\tproc\n\text4\nnodev\tdevtmpfs\n"
	for fs, want := range map[string]bool{"sysfs": true, "ext4": true, "devtmpfs": true, "securityfs": false, "nodev": false} {
		if got := inFilesystems(strings.NewReader(list), fs); got != want {
			t.Errorf("inFilesystems(%q) = %v, want %v", fs, got, want)
		}
	}
}

// OpMountVFS itself is exercised only where it cannot change the host:
// when every file system it mounts is there already.
func TestMountVFSIsIdempotent(t *testing.T) {
	for _, mt := range vfsMounts {
		if !mounted(mt.target, mt.fstype) {
			t.Skipf("%s is not mounted on %s here; not mounting it on the host", mt.fstype, mt.target)
		}
	}
	h := newSession(t)
	h.ok(wire.MainChannel, wire.OpMountVFS, nil)
	h.ok(wire.MainChannel, wire.OpMountVFS, nil)
	if _, err := os.Stat("/proc/self"); err != nil {
		t.Error(err)
	}
}

// Past 16 MiB a read stops at half the guest's available memory, with
// EFBIG, rather than have the OOM killer end the agent.
func TestReadFileStopsAtHalfTheAvailableMemory(t *testing.T) {
	saved := memAvailable
	memAvailable = func() (int64, error) { return 40 << 20, nil }
	t.Cleanup(func() { memAvailable = saved })
	dir := t.TempDir()
	sized := func(name string, size int64) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		return p
	}

	if data, err := readFile(sized("fits", 18<<20)); err != nil || len(data) != 18<<20 {
		t.Errorf("18 MiB with 40 MiB available: %d bytes, %v", len(data), err)
	}
	_, err := readFile(sized("too-big", 24<<20))
	if !errors.Is(err, unix.EFBIG) || !strings.Contains(err.Error(), "larger than 20971520 bytes, half of the guest's available memory") {
		t.Errorf("24 MiB with 40 MiB available: %v, want EFBIG naming the limit", err)
	}
	// Small reads never look at the memory.
	memAvailable = func() (int64, error) { t.Error("memAvailable called for a small file"); return 0, nil }
	if _, err := readFile(sized("small", 1<<20)); err != nil {
		t.Error(err)
	}
}

func TestMemAvailable(t *testing.T) {
	n, err := memAvailable()
	if err != nil || n <= 0 {
		t.Errorf("memAvailable = %d, %v", n, err)
	}
}
