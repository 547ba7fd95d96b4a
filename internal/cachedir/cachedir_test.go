package cachedir

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestPruneKeepsTheMostRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-time.Hour)
	var paths []string
	for i, name := range []string{"a.cpio", "b.cpio", "c.cpio", "d.cpio"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		// a is the oldest, d the newest.
		at := old.Add(time.Duration(i) * time.Minute)
		os.Chtimes(p, at, at)
		paths = append(paths, p)
	}
	other := filepath.Join(dir, "keep.elf")
	os.WriteFile(other, nil, 0o644)
	os.Chtimes(other, old, old)

	before, _ := os.Stat(paths[0])
	Used(paths[0]) // a becomes the most recently used
	if after, _ := os.Stat(paths[0]); !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("Used moved the modification time from %v to %v", before.ModTime(), after.ModTime())
	}
	if n := Prune(dir, "*.cpio", 2); n != 2 {
		t.Errorf("Prune removed %d files, want 2", n)
	}
	var left []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if want := []string{"a.cpio", "d.cpio", "keep.elf"}; !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
	if n := Prune(dir, "*.cpio", 2); n != 0 {
		t.Errorf("a second Prune removed %d files", n)
	}
}
