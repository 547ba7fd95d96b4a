package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

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
	for range 2 {
		if err := h.main.MountVFS(h.ctx()); err != nil {
			t.Fatal(err)
		}
	}
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
