package memfile

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestProbe(t *testing.T) {
	dir := t.TempDir()
	if err := Probe(dir); err != nil {
		t.Fatalf("Probe of a temporary directory: %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("Probe left %v", left)
	}
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
	if err := Probe(filepath.Join(dir, "file", "sub")); err == nil {
		t.Error("Probe succeeded under a regular file")
	}
}

// sample makes an unnamed memory file of 64 pages in dir with data at
// pages 3 and 40, and a page of written zeros at 10, and names it.
func sample(t *testing.T, dir string) string {
	t.Helper()
	f, err := Create(dir, 64*pageSize)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("an unnamed file shows in its directory: %v", left)
	}
	f.WriteAt(bytes.Repeat([]byte("a"), 100), 3*pageSize+7)
	f.WriteAt(make([]byte, pageSize), 10*pageSize)
	f.WriteAt(bytes.Repeat([]byte("b"), pageSize), 40*pageSize)
	p := filepath.Join(dir, "memory")
	if err := Link(f, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCopyIsSparseAndEqual(t *testing.T) {
	dir := t.TempDir()
	src := sample(t, dir)
	out, err := Copy(dir, src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "copy")
	if err := Link(out, dst); err != nil {
		t.Fatal(err)
	}
	out.Close()
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(dst)
	if !bytes.Equal(a, b) {
		t.Fatal("the copy reads differently from the original")
	}
	if n, err := Allocated(dst); err != nil || n > 8*pageSize {
		t.Errorf("the copy of two pages of data takes %d bytes (%v)", n, err)
	}
	ha, err := Hash(src)
	if err != nil {
		t.Fatal(err)
	}
	if hb, _ := Hash(dst); ha != hb {
		t.Errorf("hash of the copy %s, of the original %s", hb, ha)
	}
}

func TestHash(t *testing.T) {
	dir := t.TempDir()
	p := sample(t, dir)
	h1, err := Hash(p)
	if err != nil {
		t.Fatal(err)
	}
	// A page of zeros written where a hole was reads the same.
	f, _ := os.OpenFile(p, os.O_WRONLY, 0)
	f.WriteAt(make([]byte, pageSize), 20*pageSize)
	f.Close()
	if h, _ := Hash(p); h != h1 {
		t.Error("written zeros changed the hash")
	}
	for _, c := range []struct {
		what string
		do   func(f *os.File)
	}{
		{"a byte changed", func(f *os.File) { f.WriteAt([]byte("c"), 40*pageSize+9) }},
		{"a byte in a hole", func(f *os.File) { f.WriteAt([]byte("c"), 50*pageSize) }},
		{"a page zeroed", func(f *os.File) { f.WriteAt(make([]byte, pageSize), 40*pageSize) }},
		{"the file longer", func(f *os.File) { f.Truncate(65 * pageSize) }},
	} {
		p := sample(t, t.TempDir())
		f, _ := os.OpenFile(p, os.O_WRONLY, 0)
		c.do(f)
		f.Close()
		if h, _ := Hash(p); h == h1 {
			t.Errorf("%s: the hash did not change", c.what)
		}
	}
}

func TestProbesAtOnce(t *testing.T) {
	dir := t.TempDir()
	errs := make(chan error, 8)
	for range 8 {
		go func() { errs <- Probe(dir) }()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Errorf("Probe beside another: %v", err)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("Probes left %v", left)
	}
}
