package cache

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Touch marks path (a file) as used just now, in its access time; the
// modification time stays. It changes the file's fingerprint (its change
// time), so Hash is for files nobody touches: inputs, not derived files.
// Errors are ignored: a file that cannot be marked (a read-only cache) is
// at worst removed a little early and derived again.
func Touch(path string) {
	os.Chtimes(path, time.Now(), time.Time{})
}

// Entry is one entry of a cache directory.
type Entry struct {
	Path string
	Size int64     // bytes on disk; a directory's files added up
	Used time.Time // last use, as Touch marked it
}

// Limit bounds a cache directory; a zero field is no bound.
type Limit struct {
	MaxEntries int
	MaxBytes   int64
}

// Marker is the file whose access time says when a directory entry was
// last used.
const Marker = "manifest.json"

// Scan lists the entries of dir whose names match pattern (filepath.Match
// syntax), ignoring entries under construction and lock files. A directory
// entry's last use is that of its Marker file.
func Scan(dir, pattern string) []Entry {
	paths, _ := filepath.Glob(filepath.Join(dir, pattern))
	var out []Entry
	for _, p := range paths {
		name := filepath.Base(p)
		if strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".lock") || strings.Contains(name, ".building-") {
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		e := Entry{Path: p, Size: onDisk(st), Used: lastUse(st)}
		if st.IsDir() {
			e.Size = 0
			filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					if info, err := d.Info(); err == nil {
						e.Size += onDisk(info)
					}
				}
				return nil
			})
			if m, err := os.Stat(filepath.Join(p, Marker)); err == nil {
				e.Used = lastUse(m)
			}
		} else if !st.Mode().IsRegular() {
			continue
		}
		out = append(out, e)
	}
	return out
}

// onDisk is the bytes a file takes: its size, or less when it is sparse
// (a fixture's RAM file is mostly holes).
func onDisk(st os.FileInfo) int64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok && s.Blocks*512 < st.Size() {
		return s.Blocks * 512
	}
	return st.Size()
}

func lastUse(st os.FileInfo) time.Time {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return time.Unix(s.Atim.Unix())
	}
	return st.ModTime()
}

// Prune removes the least recently used entries of dir matching pattern
// until the rest fit limit, and returns how many it removed. keep is never
// removed. A directory entry is removed only under its lock, so one being
// built or used by another process stays; a file is removed at once: a
// process that has it open keeps reading it, and one that looks for it
// later derives it again.
func Prune(dir, pattern string, limit Limit, keep string) int {
	entries := Scan(dir, pattern)
	slices.SortFunc(entries, func(a, b Entry) int { return b.Used.Compare(a.Used) })
	var total int64
	for _, e := range entries {
		total += e.Size
	}
	removed := 0
	for i := len(entries) - 1; i >= 0; i-- {
		over := (limit.MaxEntries > 0 && len(entries)-removed > limit.MaxEntries) ||
			(limit.MaxBytes > 0 && total > limit.MaxBytes)
		if !over {
			break
		}
		e := entries[i]
		if e.Path == keep {
			continue
		}
		if Remove(e.Path) {
			removed++
			total -= e.Size
		}
	}
	return removed
}

// Remove removes one entry (a directory under its lock, with the lock
// file) and reports whether it is gone.
func Remove(path string) bool {
	st, err := os.Lstat(path)
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	if !st.IsDir() {
		return os.Remove(path) == nil
	}
	unlock, ok := TryLock(path)
	if !ok {
		return false
	}
	err = os.RemoveAll(path)
	os.Remove(path + ".lock")
	unlock()
	return err == nil
}

// Sweep removes what interrupted builders left in dir: directories under
// construction whose entry nobody holds the lock of, and lock files of
// entries that are gone.
func Sweep(dir string) int {
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	n := 0
	for _, p := range names {
		base := filepath.Base(p)
		switch {
		case strings.Contains(base, ".building-"):
			entry := filepath.Join(dir, base[:strings.Index(base, ".building-")])
			if unlock, ok := TryLock(entry); ok {
				if os.RemoveAll(p) == nil {
					n++
				}
				if _, err := os.Stat(entry); errors.Is(err, fs.ErrNotExist) {
					os.Remove(entry + ".lock")
				}
				unlock()
			}
		case strings.HasSuffix(base, ".lock"):
			entry := strings.TrimSuffix(p, ".lock")
			if _, err := os.Stat(entry); errors.Is(err, fs.ErrNotExist) {
				if unlock, ok := TryLock(entry); ok {
					if os.Remove(p) == nil {
						n++
					}
					unlock()
				}
			}
		}
	}
	return n
}

// Lock takes the exclusive lock of the entry at path (the file
// path+".lock"), waiting until ctx is done. In a cache that cannot be
// written, where the lock file cannot be created, it locks nothing: nobody
// can change such a cache either.
func Lock(ctx context.Context, path string) (unlock func(), err error) {
	for {
		unlock, ok, err := lock(path)
		if err != nil || ok {
			return unlock, err
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TryLock takes the lock of the entry at path if nobody holds it.
func TryLock(path string) (unlock func(), ok bool) {
	unlock, ok, err := lock(path)
	return unlock, ok && err == nil
}

func lock(path string) (unlock func(), ok bool, err error) {
	name := path + ".lock"
	os.MkdirAll(filepath.Dir(name), 0o755) // a read-only cache fails below
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o644)
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrNotExist) {
		if f, err = os.Open(name); err != nil {
			// A read-only cache without the lock file.
			return func() {}, true, nil
		}
	} else if err != nil {
		return nil, false, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, err
	}
	// Whoever held the lock before may have removed the lock file (see
	// Remove): a lock on a file no longer there locks nothing.
	held, err1 := f.Stat()
	now, err2 := os.Stat(name)
	if err1 != nil || err2 != nil || !os.SameFile(held, now) {
		f.Close()
		return nil, false, nil
	}
	return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, true, nil
}
