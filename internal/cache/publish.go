package cache

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFile publishes the file path with the contents write produces: it
// is written under a temporary name in the same directory, synced, given
// perm and renamed into place, so that a reader (in this process or
// another) sees either no file or a complete one, even after a crash. Two
// writers may race; the last rename wins, and both wrote a whole file.
func WriteFile(path string, perm os.FileMode, write func(io.Writer) error) error {
	return FillFile(path, perm, func(f *os.File) error {
		bw := bufio.NewWriterSize(f, 1<<20)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
}

// FillFile is WriteFile for a writer that needs the file itself (QEMU
// migrating into its descriptor): fill writes f, which is then published.
func FillFile(path string, perm os.FileMode, fill func(f *os.File) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	published := false
	defer func() {
		if !published {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := fill(tmp); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := finish(tmp, perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	published = true
	syncDir(dir)
	return nil
}

// finish makes a written temporary file durable and readable: CreateTemp's
// 0600 would hide it from a QEMU running as another user.
func finish(f *os.File, perm os.FileMode) error {
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// CopyFile publishes a copy of src at dst, as WriteFile does; on the same
// file system it is a hard link instead, which costs nothing (both are
// read-only to their users).
func CopyFile(dst, src string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return WriteFile(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// NewDir makes a directory to build an entry in, beside final: build it
// there, then Publish it.
func NewDir(final string) (string, error) {
	parent := filepath.Dir(final)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	dir, err := os.MkdirTemp(parent, filepath.Base(final)+".building-")
	if err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	return dir, nil
}

// Publish makes the directory tmp (from NewDir, complete) the entry final:
// its files are synced, then it is renamed into place, replacing an entry
// that was there. A reader sees the old entry, no entry, or the new one,
// whole.
func Publish(tmp, final string) error {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(tmp, e.Name()))
		if err != nil {
			return fmt.Errorf("cache: %w", err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("cache: sync %s: %w", e.Name(), err)
		}
	}
	syncDir(tmp)
	if err := os.RemoveAll(final); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	syncDir(filepath.Dir(final))
	return nil
}

// syncDir makes a rename in dir durable. Errors are ignored: some file
// systems cannot sync a directory, and the rename itself succeeded.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Writable reports whether the cache directory dir can take new entries.
func Writable(dir string) bool {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return false
	}
	f.Close()
	os.Remove(f.Name())
	return true
}
