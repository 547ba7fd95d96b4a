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
// named "fixtures" and hidden ones (see walkProject); a file is taken as given,
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
		err = walkProject(root, true, func(path string, d fs.DirEntry) {
			if strings.HasSuffix(d.Name(), ".lua") {
				add(path)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("walking %s: %w", arg, err)
		}
	}
	slices.Sort(files)
	return files, nil
}

// walkProject calls file for every file under root that a walk of the
// project looks at. Hidden directories hold tools' files (.git, the
// editor definitions in .provium), not tests or fixtures, and are left
// out; with tests, so are directories named "fixtures" (fixture scripts
// are not tests). root itself is walked whatever its name: the exclusions
// are for what the walk finds, not for what was asked for.
func walkProject(root string, tests bool, file func(path string, d fs.DirEntry)) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			file(path, d)
			return nil
		}
		if path == root {
			return nil
		}
		if (tests && d.Name() == "fixtures") || (strings.HasPrefix(d.Name(), ".") && len(d.Name()) > 1) {
			return filepath.SkipDir
		}
		return nil
	})
}

// FixtureScripts returns every script of fixture name under startDir,
// fixtures/<name>.lua at any depth, walked as Discover walks (hidden
// directories left out), sorted, as absolute paths.
func FixtureScripts(startDir, name string) ([]string, error) {
	root, err := filepath.Abs(startDir)
	if err != nil {
		return nil, err
	}
	var found []string
	err = walkProject(root, false, func(path string, d fs.DirEntry) {
		if d.Name() == name+".lua" && filepath.Base(filepath.Dir(path)) == "fixtures" {
			found = append(found, path)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("walking %s: %w", startDir, err)
	}
	slices.Sort(found)
	return found, nil
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
