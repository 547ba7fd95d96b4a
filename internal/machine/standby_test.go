package machine

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFileIdentity(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	os.WriteFile(path, []byte("state"), 0o644)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	loaded, err := identify(f.Stat())
	if err != nil {
		t.Fatal(err)
	}
	same := func() bool {
		t.Helper()
		now, err := identify(os.Stat(path))
		if err != nil {
			t.Fatal(err)
		}
		return now == loaded
	}
	if !same() {
		t.Fatal("a file is not the same as itself")
	}
	time.Sleep(10 * time.Millisecond)
	os.WriteFile(path, []byte("state"), 0o644) // the same bytes, written again
	if same() {
		t.Error("a file rewritten in place kept its identity")
	}
	if loaded, err = identify(os.Stat(path)); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other")
	os.WriteFile(other, []byte("state"), 0o644)
	os.Chtimes(other, time.Time{}, time.Unix(0, 0))
	os.Chtimes(path, time.Time{}, time.Unix(0, 0))
	if loaded, err = identify(os.Stat(path)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	if same() {
		t.Error("another file renamed over it, of the same size and time, kept its identity")
	}
	if _, err := identify(os.Stat(filepath.Join(dir, "gone"))); err == nil {
		t.Error("a missing file has an identity")
	}
}

func TestHandoffKeepsTheConsoleUntilClaimed(t *testing.T) {
	h := &handoff{max: 8}
	h.Write([]byte("early"))
	h.Write([]byte(" and more than it keeps"))
	var to bytes.Buffer
	h.attach(&to)
	h.Write([]byte("|after"))
	if got := to.String(); got != "early an|after" {
		t.Errorf("console after the claim: %q", got)
	}
}

func TestClaimRefusesAnotherResume(t *testing.T) {
	saved := Saved{State: "/x/state", Memory: "/x/memory"}
	shape := Shape{Kernel: "k", MemoryMiB: 512, CPUs: 1}
	for _, c := range []struct {
		name  string
		cfg   Config
		saved Saved
		shape Shape
		want  string
	}{
		{"another snapshot", Config{}, Saved{State: "/y/state", Memory: "/y/memory"}, shape, "not /y/state"},
		{"another shape", Config{}, saved, Shape{Kernel: "k", MemoryMiB: 1024, CPUs: 1}, "another machine shape"},
		{"RAM saved in turn", Config{RAMDir: "/r"}, saved, shape, "saved in turn"},
		{"a debugger", Config{Debug: Debug{GDB: true}}, saved, shape, "debugger"},
		{"network cards", Config{NICSockets: []*os.File{os.Stdin}}, saved, shape, "network cards"},
	} {
		s := &Standby{saved: saved, shape: shape}
		_, err := s.claim(c.cfg, c.saved, c.shape)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: claim: %v, want %q", c.name, err, c.want)
		}
	}
	s := &Standby{saved: saved, shape: shape, ended: true}
	if _, err := s.claim(Config{}, saved, shape); err == nil {
		t.Error("a standby was claimed twice")
	}
}
