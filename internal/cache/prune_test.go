package cache

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

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
	Touch(paths[0]) // a becomes the most recently used
	if after, _ := os.Stat(paths[0]); !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("Touch moved the modification time from %v to %v", before.ModTime(), after.ModTime())
	}
	if n := Prune(dir, "*.cpio", Limit{MaxEntries: 2}, ""); n != 2 {
		t.Errorf("Prune removed %d files, want 2", n)
	}
	if got, want := names(t, dir), []string{"a.cpio", "d.cpio", "keep.elf"}; !slices.Equal(got, want) {
		t.Errorf("left %v, want %v", got, want)
	}
	if n := Prune(dir, "*.cpio", Limit{MaxEntries: 2}, ""); n != 0 {
		t.Errorf("a second Prune removed %d files", n)
	}
}

func TestPruneBySizeSparesKeepAndLockedEntries(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-time.Hour)
	for i, name := range []string{"x-1", "x-2", "x-3"} {
		d := filepath.Join(dir, name)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "snapshot"), make([]byte, 1000), 0o644)
		m := filepath.Join(d, Marker)
		os.WriteFile(m, []byte("{}"), 0o644)
		at := old.Add(time.Duration(i) * time.Minute)
		os.Chtimes(m, at, at)
	}
	// x-1 is the oldest but in use by another builder; x-3 is kept.
	unlock, err := Lock(context.Background(), filepath.Join(dir, "x-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if n := Prune(dir, "x-*", Limit{MaxBytes: 1500}, filepath.Join(dir, "x-3")); n != 1 {
		t.Errorf("Prune removed %d entries, want 1 (x-2)", n)
	}
	if got, want := names(t, dir), []string{"x-1", "x-1.lock", "x-3"}; !slices.Equal(got, want) {
		t.Errorf("left %v, want %v", got, want)
	}
}

func TestSweepRemovesWhatBuildersLeft(t *testing.T) {
	dir := t.TempDir()
	entry := filepath.Join(dir, "base-1")
	dead, _ := NewDir(entry) // its builder is gone
	os.WriteFile(filepath.Join(dead, "snapshot"), []byte("half"), 0o644)
	busy := filepath.Join(dir, "busy-1")
	live, _ := NewDir(busy)
	unlock, err := Lock(context.Background(), busy)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	os.WriteFile(filepath.Join(dir, "gone-1.lock"), nil, 0o644)

	if n := Sweep(dir); n != 2 {
		t.Errorf("Sweep removed %d, want the dead build and the orphan lock", n)
	}
	if _, err := os.Stat(dead); err == nil {
		t.Errorf("%s is still there", dead)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a build in progress was swept: %v", err)
	}
}

func TestLockIsExclusiveAndSurvivesRemoval(t *testing.T) {
	entry := filepath.Join(t.TempDir(), "e")
	unlock, err := Lock(context.Background(), entry)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := TryLock(entry); ok {
		t.Fatal("a second lock was granted while the first is held")
	}
	got := make(chan bool)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		u, err := Lock(ctx, entry)
		if err == nil {
			u()
		}
		got <- err == nil
	}()
	// The holder removes the entry and its lock file, as Remove does: the
	// waiter must then lock the new lock file, not the removed one.
	os.Remove(entry + ".lock")
	unlock()
	if !<-got {
		t.Fatal("the waiter never got the lock")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	u, _ := Lock(context.Background(), entry)
	if _, err := Lock(ctx, entry); err == nil {
		t.Error("Lock granted while held")
	}
	u()
}

func TestScanCountsTheDiskOfSparseFiles(t *testing.T) {
	dir := t.TempDir()
	e := filepath.Join(dir, "t-1")
	os.MkdirAll(e, 0o755)
	f, err := os.Create(filepath.Join(e, "memory"))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(1 << 30)
	f.WriteAt(make([]byte, 4096), 1<<20)
	f.Close()
	os.WriteFile(filepath.Join(e, Marker), []byte("{}"), 0o644)
	got := Scan(dir, "t-*")
	if len(got) != 1 || got[0].Size > 1<<20 {
		t.Errorf("Scan = %+v: a sparse file of 1 GiB with a page of data counts more than 1 MiB", got)
	}
}
