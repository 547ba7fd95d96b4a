package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// provium init lays out a suite that passes at once, with real VMs: its
// first test boots, runs commands, moves files and spawns a worker; its
// second builds and resumes a fixture. A second init refuses to overwrite.
func TestInitScaffoldsAPassingSuite(t *testing.T) {
	env := NewEnv(t, nil)
	suite := filepath.Join(env.Dir, "suite")
	r := env.Run("init", "--ci", "github,gitlab,kubernetes", "suite")
	if r.Code != 0 {
		t.Fatalf("provium init: exit %d\n%s", r.Code, r.Stderr)
	}
	for _, f := range []string{"provium.toml", "tests/first.lua", "tests/prepared.lua", "tests/fixtures/prepared.lua",
		".luarc.json", ".provium/stubs/provium.lua", ".github/workflows/provium.yml", ".gitlab-ci.yml", "ci/provium-job.yaml"} {
		if _, err := os.Stat(filepath.Join(suite, f)); err != nil {
			t.Errorf("provium init made no %s: %v", f, err)
		}
	}

	run := *env
	run.Dir = suite
	events := fxJSONRun(t, &run, "tests/")
	passed := map[string]bool{}
	for _, e := range events {
		if e.Event == "file_finished" && e.Status == "ok" {
			passed[e.File] = true
		}
	}
	if !passed["tests/first.lua"] || !passed["tests/prepared.lua"] {
		t.Errorf("files passed: %v, want tests/first.lua and tests/prepared.lua", passed)
	}
	if got := fxBuiltEvents(events); got["prepared"] != 1 {
		t.Errorf("fixture_built events %v, want prepared once", got)
	}
	// `provium test .` runs the same two files: the stubs in .provium
	// are not tests.
	r = run.Run("test", "--list", ".")
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != "tests/first.lua\ntests/prepared.lua" {
		t.Errorf("provium test --list . = exit %d, %q", r.Code, r.Stdout)
	}

	os.Remove(filepath.Join(suite, "tests", "first.lua"))
	r = env.Run("init", "suite")
	if r.Code == 0 || !strings.Contains(r.Stderr, "provium.toml") || !strings.Contains(r.Stderr, "nothing was written") {
		t.Errorf("init over an existing suite: exit %d, %s", r.Code, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(suite, "tests", "first.lua")); err == nil {
		t.Errorf("a refused init still wrote tests/first.lua")
	}
	workersNoQEMU(t, env)
}
