package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// indexDir walks moduleDir for module files and reads modules.builtin.
func indexDir(moduleDir string) (*index, error) {
	// WalkDir does not follow a symbolic link at its root: a module tree
	// linked into a project is still a tree.
	if real, err := filepath.EvalSymlinks(moduleDir); err == nil {
		moduleDir = real
	}
	ix := &index{
		dir:     moduleDir,
		paths:   map[string]string{},
		builtin: map[string]bool{},
		depends: fileDepends,
	}
	err := filepath.WalkDir(moduleDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !isModuleFile(d.Name()) {
			return nil
		}
		name := Name(d.Name())
		// Two files for one name (e.g. a stale uncompressed copy) would be
		// ambiguous; the first in walk order wins so results are stable.
		if _, dup := ix.paths[name]; !dup {
			ix.paths[name] = path
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index kernel modules in %s: %w", moduleDir, err)
	}
	if err := ix.readBuiltin(filepath.Join(moduleDir, "modules.builtin")); err != nil {
		return nil, err
	}
	return ix, nil
}

func isModuleFile(name string) bool {
	return strings.HasSuffix(name, ".ko") || strings.HasSuffix(name, ".ko.xz") || strings.HasSuffix(name, ".ko.zst")
}

// readBuiltin reads modules.builtin, one module path per line. A tree
// without it is fine: nothing is known to be built in.
func (ix *index) readBuiltin(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read built-in module list: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			ix.builtin[Name(line)] = true
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}
