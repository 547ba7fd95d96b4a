package scaffold

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/provium/provium/internal/profile"
)

func TestFilesOfANewSuite(t *testing.T) {
	files, err := Files([]string{"github", "kubernetes"})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
		if len(f.Data) == 0 {
			t.Errorf("%s is empty", f.Path)
		}
	}
	for _, want := range []string{
		"provium.toml", "tests/first.lua", "tests/prepared.lua", "tests/fixtures/prepared.lua",
		".luarc.json", ".provium/stubs/provium.lua", ".provium/stubs/provium_names.lua",
		".github/workflows/provium.yml", "ci/provium-job.yaml",
	} {
		if !slices.Contains(paths, want) {
			t.Errorf("a new suite lacks %s (has %v)", want, paths)
		}
	}
	if slices.Contains(paths, ".gitlab-ci.yml") {
		t.Errorf("a recipe not asked for was added")
	}
	if _, err := Files([]string{"jenkins"}); err == nil || !strings.Contains(err.Error(), "github, gitlab, kubernetes") {
		t.Errorf("an unknown recipe: %v", err)
	}
}

func TestWriteOverwritesNothing(t *testing.T) {
	dir := t.TempDir()
	files := []File{{"a/one.txt", []byte("1")}, {"two.txt", []byte("2")}, {"b/three.txt", []byte("3")}}
	os.WriteFile(filepath.Join(dir, "two.txt"), []byte("mine"), 0o644)
	os.MkdirAll(filepath.Join(dir, "b"), 0o755)
	os.Symlink("/nonexistent", filepath.Join(dir, "b", "three.txt")) // a dangling link is there too
	err := Write(dir, files)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "two.txt, b/three.txt") {
		t.Fatalf("Write over existing files: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a", "one.txt")); err == nil {
		t.Errorf("a file was written although others were there")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "two.txt")); string(b) != "mine" {
		t.Errorf("an existing file was changed: %q", b)
	}
	os.Remove(filepath.Join(dir, "two.txt"))
	os.Remove(filepath.Join(dir, "b", "three.txt"))
	if err := Write(dir, files); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "b", "three.txt")); string(b) != "3" {
		t.Errorf("b/three.txt = %q", b)
	}
}

// The provium.toml of a new suite configures nothing, and the profile it
// shows commented is one provium reads, key for key.
func TestProviumTomlShowsAProfileThatLoads(t *testing.T) {
	data, err := templates.ReadFile("templates/suite/provium.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, profile.FileName), data, 0o644)
	c, err := profile.Load(dir)
	if err != nil {
		t.Fatalf("the template as written: %v", err)
	}
	if names := c.Names(); !slices.Equal(names, []string{"default", "minimal"}) {
		t.Fatalf("the template as written defines profiles: %v", names)
	}

	// Uncommented, with its paths pointing at files that exist.
	var block []string
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		if line == "# [profile.minimal]" {
			in = true
		}
		if in {
			if !strings.HasPrefix(line, "# ") {
				break
			}
			block = append(block, strings.TrimPrefix(line, "# "))
		}
	}
	if len(block) < 10 {
		t.Fatalf("the template shows no profile: %q", block)
	}
	path := regexp.MustCompile(`"(\.\./[^"]*|[\w.]+\.(?:gz|img))"`)
	conf := path.ReplaceAllStringFunc(strings.Join(block, "\n"), func(m string) string {
		p := filepath.Join(dir, filepath.Base(strings.Trim(m, `"`)))
		os.WriteFile(p, []byte("x"), 0o644)
		return `"` + p + `"`
	})
	os.WriteFile(filepath.Join(dir, profile.FileName), []byte(conf), 0o644)
	c, err = profile.Load(dir)
	if err != nil {
		t.Fatalf("the commented profile, uncommented:\n%s\n%v", conf, err)
	}
	p, err := c.Get("minimal")
	if err != nil || p.Builtin || p.Kmemleak != true || len(p.KernelIgnore) != 1 {
		t.Fatalf("the commented profile does not load as written: %+v, %v", p, err)
	}
}
