package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFixtureHome resolves --fixture to the file whose host finds the
// fixture: by path, by name here, by the only name below, and says which
// scripts a name could mean.
func TestFixtureHome(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{
		"fixtures/top.lua",
		"tests/fixtures/db.lua",
		"tests/fixtures/web.lua",
		"examples/fixtures/web.lua",
		"examples/fixtures/top.lua",
		".hidden/fixtures/db.lua",
		"tests/loose.lua",
	} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("-- fixture\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ arg, want string }{
		{"db", "tests/interactive"}, // the only one: the hidden directory's is not looked at
		{"top", "interactive"},      // a file here would resume fixtures/top.lua
		{"examples/fixtures/web.lua", "examples/interactive"},
		{filepath.Join(dir, "tests/fixtures/web.lua"), "tests/interactive"},
		{"./tests/../tests/fixtures/db.lua", "tests/interactive"},
	} {
		got, err := fixtureHome(dir, c.arg)
		if want := filepath.Join(dir, c.want); err != nil || got != want {
			t.Errorf("fixtureHome(%s) = %q, %v; want %q", c.arg, got, err, want)
		}
	}
	for _, c := range []struct{ arg, want string }{
		{"web", "2 scripts of that name (examples/fixtures/web.lua, tests/fixtures/web.lua); give one's path"},
		{"none", "no fixtures/none.lua in or under " + dir},
		{"..", "not a fixture name"},
		{"tests/loose.lua", "a fixture script is fixtures/NAME.lua"},
		{"tests/fixtures/gone.lua", "no such file"},
		{"tests/fixtures", "a fixture script is fixtures/NAME.lua"},
	} {
		_, err := fixtureHome(dir, c.arg)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "--fixture") {
			t.Errorf("fixtureHome(%s) error = %v, want one saying %q", c.arg, err, c.want)
		}
	}
}
