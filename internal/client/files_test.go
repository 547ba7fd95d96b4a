package client_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire"
)

func TestWriteAndReadFile(t *testing.T) {
	a := open(t, newGuest(t)).Main()
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	read := func(path string) []byte {
		t.Helper()
		b, err := a.ReadFile(bounded(t), path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	write := func(path string, data []byte, mode uint32) {
		t.Helper()
		if err := a.WriteFile(bounded(t), path, data, mode); err != nil {
			t.Fatal(err)
		}
	}

	// Larger than one frame, so it crosses the wire in pieces.
	data := bytes.Repeat([]byte("0123456789abcdef"), 3*wire.MaxChunk/16+7)
	write(path, data, 0)
	if got := read(path); !bytes.Equal(got, data) {
		t.Errorf("read back %d bytes, want the %d written", len(got), len(data))
	}

	// Rewriting truncates.
	write(path, []byte("short"), 0)
	if got := read(path); string(got) != "short" {
		t.Errorf("after rewrite: %q", got)
	}

	// An explicit mode is applied exactly, whatever the umask.
	exact := filepath.Join(dir, "exact")
	write(exact, nil, 0o4777)
	var st unix.Stat_t
	if err := unix.Stat(exact, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != 0o4777 {
		t.Errorf("mode %#o, want 04777", st.Mode&0o7777)
	}

	// Files that report size 0 are read to the end.
	if got := read("/proc/self/status"); !bytes.Contains(got, []byte("Pid:")) {
		t.Errorf("/proc/self/status read as %q", got)
	}
}

func TestFileErrors(t *testing.T) {
	a := open(t, newGuest(t)).Main()
	_, err := a.ReadFile(bounded(t), "/nonexistent/x")
	want := "read_file /nonexistent/x: open /nonexistent/x: no such file or directory (ENOENT)"
	if e := opError(t, err); e.Message != want || e.Errno != int(unix.ENOENT) || e.ErrnoName != "ENOENT" {
		t.Errorf("error = %+v, want message %q with errno ENOENT", e, want)
	}
	if !errors.Is(err, unix.ENOENT) {
		t.Errorf("%v is not ENOENT", err)
	}
	err = a.WriteFile(bounded(t), "/nonexistent/x", []byte("x"), 0)
	if e := opError(t, err); e.ErrnoName != "ENOENT" || !strings.HasPrefix(e.Message, "write_file /nonexistent/x: ") {
		t.Errorf("write error = %+v", e)
	}
	_, err = a.ReadFile(bounded(t), t.TempDir())
	if e := opError(t, err); e.ErrnoName != "EISDIR" {
		t.Errorf("reading a directory: %+v", e)
	}
	err = a.WriteFile(bounded(t), filepath.Join(t.TempDir(), "x"), nil, 0o170000)
	if e := opError(t, err); e.ErrnoName != "EINVAL" {
		t.Errorf("bad mode: %+v", e)
	}
}

// Dmesg returns the kernel log: it ends with what the log held when the
// test read it itself, unless the kernel logged more meanwhile.
func TestDmesg(t *testing.T) {
	a := open(t, newGuest(t)).Main()
	size, err := unix.Klogctl(unix.SYSLOG_ACTION_SIZE_BUFFER, nil)
	if err != nil {
		t.Skipf("no access to the kernel log here: %v", err)
	}
	mine := make([]byte, size)
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, mine)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Skip("the kernel log is empty here")
	}
	got, err := a.Dmesg(bounded(t))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(mine[:n])), "\n")
	if last := lines[len(lines)-1]; !bytes.Contains(got, []byte(last)) {
		t.Errorf("dmesg (%d bytes) lacks the log's last line %q", len(got), last)
	}
}
