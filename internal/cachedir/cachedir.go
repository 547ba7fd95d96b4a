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
	"time"
)

// Used marks path as just used. Errors are ignored: a file that cannot be
// marked is at worst removed a little early and derived again.
func Used(path string) {
	now := time.Now()
	os.Chtimes(path, now, now)
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
		mod  time.Time
	}
	var entries []entry
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			entries = append(entries, entry{p, st.ModTime()})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return b.mod.Compare(a.mod) })
	removed := 0
	for _, e := range entries[min(keep, len(entries)):] {
		if os.Remove(e.path) == nil {
			removed++
		}
	}
	return removed
}
