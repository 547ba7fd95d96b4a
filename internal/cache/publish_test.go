package cache

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileIsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "archive.cpio")
	err := WriteFile(path, 0o644, func(w io.Writer) error {
		io.WriteString(w, "half")
		return errors.New("disk full")
	})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("WriteFile = %v", err)
	}
	if got := names(t, filepath.Join(dir, "sub")); len(got) != 0 {
		t.Errorf("a failed write left %v", got)
	}
	if err := WriteFile(path, 0o644, func(w io.Writer) error { _, err := io.WriteString(w, "whole"); return err }); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "whole" {
		t.Errorf("content %q", b)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}
}

func TestPublishReplacesAnEntryWhole(t *testing.T) {
	root := t.TempDir()
	final := filepath.Join(root, "base-1")
	for _, content := range []string{"v1", "v2"} {
		tmp, err := NewDir(final)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(tmp, "snapshot"), []byte(content), 0o644)
		if err := Publish(tmp, final); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(final, "snapshot")); string(b) != content {
			t.Errorf("entry holds %q, want %q", b, content)
		}
	}
	if got := names(t, root); len(got) != 1 {
		t.Errorf("left %v", got)
	}
}

func TestHashRemembersByFingerprint(t *testing.T) {
	t.Setenv("PROVIUM_CACHE", t.TempDir())
	p := filepath.Join(t.TempDir(), "kernel")
	os.WriteFile(p, []byte("one"), 0o644)
	h1, err := Hash(p)
	if err != nil {
		t.Fatal(err)
	}
	if h1 != "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed" {
		t.Errorf("Hash = %s, not the SHA-256 of the content", h1)
	}
	// Rewritten in place with the same size and modification time: the
	// change time still tells the new version from the old.
	st, _ := os.Stat(p)
	os.WriteFile(p, []byte("two"), 0o644)
	os.Chtimes(p, st.ModTime(), st.ModTime())
	h2, err := Hash(p)
	if err != nil {
		t.Fatal(err)
	}
	if h2 == h1 {
		t.Error("a rewritten file kept its old hash")
	}
	if len(names(t, Hashes())) != 2 {
		t.Errorf("hashes remembered on disk: %v", names(t, Hashes()))
	}
}

func TestKeyParts(t *testing.T) {
	if Key("ab", "c") == Key("a", "bc") {
		t.Error("parts run into each other")
	}
}

func TestDir(t *testing.T) {
	t.Setenv("PROVIUM_CACHE", "/x/y")
	if d := Dir(); d != "/x/y" {
		t.Errorf("Dir = %s with PROVIUM_CACHE", d)
	}
	t.Setenv("PROVIUM_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if d := Dir(); d != "/xdg/provium" {
		t.Errorf("Dir = %s, want /xdg/provium", d)
	}
}
