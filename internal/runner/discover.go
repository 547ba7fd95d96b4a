package runner

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Discover returns the test files that args name, sorted by path. A
// directory stands for every *.lua file below it, except in directories
// named "fixtures" (fixture scripts are not tests) and hidden ones; a file is taken as given,
// whatever its name. Relative args are resolved against startDir, and the
// result is relative to startDir when inside it, absolute otherwise, so that
// paths read the same in output, logs and shards wherever the tree lives.
func Discover(startDir string, args []string) ([]string, error) {
	seen := map[string]bool{}
	var files []string
	add := func(path string) {
		p := displayPath(startDir, path)
		if !seen[p] {
			seen[p] = true
			files = append(files, p)
		}
	}
	for _, arg := range args {
		root := absPath(startDir, arg)
		info, err := os.Stat(root)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", arg, unwrapPathError(err))
		}
		if !info.IsDir() {
			add(root)
			continue
		}
		err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			// A fixtures directory the user named is walked: the
			// exclusion is for what discovery finds, not for what
			// was asked for.
			if d.IsDir() && d.Name() == "fixtures" && path != root {
				return filepath.SkipDir
			}
			// Hidden directories hold tools' files (.git, the editor
			// definitions in .provium), not tests.
			if d.IsDir() && strings.HasPrefix(d.Name(), ".") && len(d.Name()) > 1 && path != root {
				return filepath.SkipDir
			}
			if !d.IsDir() && strings.HasSuffix(d.Name(), ".lua") {
				add(path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("walking %s: %w", arg, err)
		}
	}
	slices.Sort(files)
	return files, nil
}

// unwrapPathError drops the path an *fs.PathError repeats, since the caller
// names the argument as the user gave it.
func unwrapPathError(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// displayPath is path relative to startDir when inside it, else absolute.
func displayPath(startDir, path string) string {
	abs := filepath.Clean(absPath(startDir, path))
	rel, err := filepath.Rel(startDir, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return abs
	}
	return rel
}

// absPath resolves a path against startDir, the inverse of displayPath.
func absPath(startDir, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(startDir, path)
}

// Filter keeps the files whose path contains any of patterns; no pattern
// keeps all.
func Filter(files, patterns []string) []string {
	if len(patterns) == 0 {
		return files
	}
	var kept []string
	for _, f := range files {
		if slices.ContainsFunc(patterns, func(p string) bool { return strings.Contains(f, p) }) {
			kept = append(kept, f)
		}
	}
	return kept
}
