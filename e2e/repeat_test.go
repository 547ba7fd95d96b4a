package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// repeats is how often TestRepeatSuites runs each file: 2 in the suite,
// $PROVIUM_E2E_REPEAT when hunting flakes (RELIABILITY.md has 50).
func repeats(t *testing.T) int {
	t.Helper()
	s := os.Getenv("PROVIUM_E2E_REPEAT")
	if s == "" {
		return 2
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("PROVIUM_E2E_REPEAT=%q: want a positive count", s)
	}
	return n
}

// TestRepeatSuites runs the project's own Lua suites with --repeat and
// -p 2: every run of every file must pass, and the report must say so per
// file. agent_gone.lua is left out: it fails on purpose every time.
func TestRepeatSuites(t *testing.T) {
	n := repeats(t)
	workers, _ := filepath.Glob(filepath.Join("testdata", "workers", "*.lua"))
	for i, w := range workers {
		workers[i] = filepath.Base(w)
	}
	suites := []struct {
		name  string
		files map[string]string
		args  []string
		want  []string // the files the Runs table must list
	}{
		{"foundation", foundationProject(t), []string{"tests/ops.lua", "tests/protocol.lua"},
			[]string{"tests/ops.lua", "tests/protocol.lua"}},
		{"kernelapi", readTestdataDir(t, "kernelapi"), []string{"tests/"},
			[]string{"tests/syscalls.lua", "tests/commands.lua"}},
		{"workers", workerFiles(t, workers...), []string{"tests/"}, prefixed("tests/", workers)},
	}
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			e := NewEnv(t, s.files)
			e.Deadline = time.Duration(n) * 10 * time.Minute
			args := append([]string{"test", "--repeat", strconv.Itoa(n), "-p", "2"}, s.args...)
			r := e.Run(args...)
			r.MustPass(t)
			for _, f := range s.want {
				re := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(f) + ` +(\d+/\d+) passed$`)
				m := re.FindStringSubmatch(r.Stdout)
				if want := fmt.Sprintf("%d/%d", n, n); m == nil || m[1] != want {
					t.Errorf("%s: want %s passed in the runs table, got %q", f, want, m)
				}
			}
			noQEMULeft(t, e)
		})
	}
}

func prefixed(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}
