// Package scaffold lays out a new suite for `provium init`: a provium.toml
// that shows the built-in profiles, a first test and a fixture, the editor
// type definitions, and a CI recipe. The CI recipes (GitHub Actions, GitLab
// CI, a Kubernetes Indexed Job) are kept here too, as templates the binary
// embeds.
package scaffold

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/provium/provium/internal/luastubs"
)

//go:embed all:templates
var templates embed.FS

// File is one file of a new suite.
type File struct {
	Path string // relative to the suite's root, with slashes
	Data []byte
}

// recipe is a CI recipe: its template and where a suite keeps it.
type recipe struct{ template, dest string }

// recipes are the CI recipes by name.
var recipes = map[string]recipe{
	"github":     {"templates/ci/github.yml", ".github/workflows/provium.yml"},
	"gitlab":     {"templates/ci/gitlab-ci.yml", ".gitlab-ci.yml"},
	"kubernetes": {"templates/ci/kubernetes-job.yaml", "ci/provium-job.yaml"},
}

// Recipes lists the CI recipes' names.
func Recipes() []string {
	var names []string
	for n := range recipes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Recipe returns a CI recipe and where a suite keeps it.
func Recipe(name string) (data []byte, dest string, err error) {
	r, ok := recipes[name]
	if !ok {
		return nil, "", fmt.Errorf("no CI recipe %q (there are: %s)", name, strings.Join(Recipes(), ", "))
	}
	data, err = templates.ReadFile(r.template)
	return data, r.dest, err
}

// Files returns the files of a new suite with the named CI recipes.
func Files(ci []string) ([]File, error) {
	var files []File
	err := fs.WalkDir(templates, "templates/suite", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := templates.ReadFile(p)
		files = append(files, File{Path: strings.TrimPrefix(p, "templates/suite/"), Data: data})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("scaffold: %w", err)
	}
	defs, err := luastubs.Definitions()
	if err != nil {
		return nil, err
	}
	for name, data := range defs {
		files = append(files, File{Path: path.Join(luastubs.Dir, name), Data: data})
	}
	files = append(files, File{Path: luastubs.LuaRCFile, Data: luastubs.LuaRC()})
	for _, name := range ci {
		data, dest, err := Recipe(name)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Path: dest, Data: data})
	}
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return files, nil
}

// ErrExists means files of the new suite are there already.
var ErrExists = errors.New("would overwrite")

// Write creates files under dir. It overwrites nothing: if any of them is
// there already, it writes none and names those that are.
func Write(dir string, files []File) error {
	var there []string
	for _, f := range files {
		if _, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(f.Path))); err == nil {
			there = append(there, f.Path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
	}
	if len(there) > 0 {
		return fmt.Errorf("%w %s in %s; nothing was written (move them away, or init another directory)", ErrExists, strings.Join(there, ", "), dir)
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		// O_EXCL: a file that appeared since the check is not replaced.
		out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		_, err = out.Write(f.Data)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
	}
	return nil
}
