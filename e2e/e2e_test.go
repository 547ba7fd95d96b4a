// Package e2e runs provium end to end: it builds the real binary, boots real
// VMs under QEMU and checks what users see — output, exit codes, logs,
// caches and leftover processes.
//
// The tests need QEMU, a static busybox and a guest kernel (scripts/setup
// installs them). Each test gets its own fixture cache; the kernel is taken
// from the user's cache as provium setup left it.
package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// provium is the binary under test, built once by TestMain.
var provium string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// Every test here boots VMs: -short is the fast inner loop.
		fmt.Println("e2e: every test boots VMs; skipped with -short")
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "provium-e2e-")
	if err != nil {
		panic(err)
	}
	provium = filepath.Join(dir, "provium")
	build := exec.Command("go", "build", "-o", provium, "../cmd/provium")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic("build provium: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Result is one provium invocation.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Env is an isolated place to run provium: a project directory and a
// fixture cache of its own.
type Env struct {
	t     *testing.T
	Dir   string // the project: provium runs here
	Cache string // PROVIUM_CACHE
	Tmp   string // TMPDIR: the run directories live here
	Extra []string
	// Deadline bounds each Run; 10 minutes when zero.
	Deadline time.Duration
}

// NewEnv makes an empty project whose files are given as path -> content.
func NewEnv(t *testing.T, files map[string]string) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("boots VMs: skipped with -short")
	}
	e := &Env{t: t, Dir: t.TempDir(), Cache: t.TempDir(), Tmp: t.TempDir()}
	for p, c := range files {
		e.Write(p, c)
	}
	e.Extra = kernelEnv(t)
	return e
}

// Write creates or replaces a project file.
func (e *Env) Write(path, content string) {
	e.t.Helper()
	full := filepath.Join(e.Dir, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// Run runs provium with args in the project and waits (at most 10 minutes).
func (e *Env) Run(args ...string) Result {
	e.t.Helper()
	deadline := e.Deadline
	if deadline == 0 {
		deadline = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cmd := e.Command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("provium %v: %v", args, err)
	}
	e.t.Logf("provium %s -> exit %d\n%s%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	return r
}

// Command prepares provium with args in the project without starting it.
func (e *Env) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, provium, args...)
	cmd.Dir = e.Dir
	cmd.Env = append(os.Environ(), "PROVIUM_CACHE="+e.Cache, "TMPDIR="+e.Tmp)
	cmd.Env = append(cmd.Env, e.Extra...)
	return cmd
}

// kernelEnv points the built-in profiles at the kernel provium setup
// stored in the user's cache, since each test has a cache of its own.
func kernelEnv(t *testing.T) []string {
	t.Helper()
	if k := os.Getenv("PROVIUM_KERNEL"); k != "" {
		return nil
	}
	home, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	cache := os.Getenv("PROVIUM_CACHE")
	if cache == "" {
		cache = filepath.Join(home, "provium")
	}
	kernels, _ := filepath.Glob(filepath.Join(cache, "kernel", "boot", "vmlinuz-*"))
	if len(kernels) == 0 {
		t.Fatalf("no guest kernel in %s: run scripts/setup (provium setup) first", cache)
	}
	k := kernels[len(kernels)-1]
	ver := strings.TrimPrefix(filepath.Base(k), "vmlinuz-")
	return []string{
		"PROVIUM_KERNEL=" + k,
		"PROVIUM_MODULES=" + filepath.Join(cache, "kernel", "lib", "modules", ver),
		"PROVIUM_ACCEL=" + accel(),
	}
}

func accel() string {
	if a := os.Getenv("PROVIUM_ACCEL"); a != "" {
		return a
	}
	return "tcg"
}

// MustPass fails the test unless provium exited 0 with an ok summary.
func (r Result) MustPass(t *testing.T) {
	t.Helper()
	if r.Code != 0 || !strings.Contains(r.Stdout, "\nok: ") && !strings.HasPrefix(r.Stdout, "ok: ") {
		t.Fatalf("want a passing run, got exit %d:\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
}

// MustFail fails the test unless provium exited 1 and printed want.
func (r Result) MustFail(t *testing.T, want ...string) {
	t.Helper()
	if r.Code != 1 {
		t.Fatalf("want exit 1, got %d:\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.Stdout+r.Stderr, w) {
			t.Errorf("output lacks %q:\n%s\n%s", w, r.Stdout, r.Stderr)
		}
	}
}

// FileLog reads the log a run kept (provium test -v) of test file rel,
// e.g. "tests/a_test.lua", and removes it, so that the next run's log of
// it is the only one.
func (e *Env) FileLog(rel string) string {
	e.t.Helper()
	name := strings.ReplaceAll(rel, "/", "_") + ".log"
	logs, _ := filepath.Glob(filepath.Join(e.Tmp, "provium-runs-*", "run-*", name))
	if len(logs) != 1 {
		out, _ := exec.Command("find", e.Tmp, "-name", "*.log").CombinedOutput()
		e.t.Fatalf("want one log of %s, found %v; there are:\n%s", rel, logs, out)
	}
	b, err := os.ReadFile(logs[0])
	if err != nil {
		e.t.Fatal(err)
	}
	os.Remove(logs[0])
	return string(b)
}

// qemuProcesses lists the pids of QEMU processes whose command line
// mentions dir; every VM of an Env boots an initramfs from Env.Cache.
func qemuProcesses(t *testing.T, dir string) []string {
	t.Helper()
	out, _ := exec.Command("pgrep", "-f", "qemu-system.*"+dir).Output()
	return strings.Fields(string(out))
}
