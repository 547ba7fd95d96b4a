// Package cachedir keeps the on-disk caches of derived files (initramfs
// archives, extracted kernels) from growing without bound: each use marks
// a file as recent, and the oldest files beyond a count are removed.
//
// Every new provium build and every new kernel derives new files; without
// a bound the user's cache collects them forever.
package cachedir

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// Used marks path as just used, in its access time. The modification
// time stays: other caches key a file's hash by it, and a run boots from
// the same initramfs many times. Errors are ignored: a file that cannot
// be marked is at worst removed a little early and derived again.
func Used(path string) {
	os.Chtimes(path, time.Now(), time.Time{})
}

// lastUse is when path was last used: its access time, which reads
// advance too.
func lastUse(st os.FileInfo) time.Time {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return time.Unix(s.Atim.Unix())
	}
	return st.ModTime()
}

// Prune removes the files in dir matching pattern (filepath.Match syntax)
// beyond the keep most recently used, and returns how many it removed.
// Another process may still hold a removed file open; that is safe, and a
// process that looks for it later derives it again.
func Prune(dir, pattern string, keep int) int {
	paths, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(paths) <= keep {
		return 0
	}
	type entry struct {
		path string
		used time.Time
	}
	var entries []entry
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			entries = append(entries, entry{p, lastUse(st)})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return b.used.Compare(a.used) })
	removed := 0
	for _, e := range entries[min(keep, len(entries)):] {
		if os.Remove(e.path) == nil {
			removed++
		}
	}
	return removed
}
