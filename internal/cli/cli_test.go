package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provium/provium/internal/harness"
	"github.com/provium/provium/internal/result"
	"github.com/provium/provium/internal/runner"
)

// fakeRun is a test command with a fake executor over a small project.
type fakeRun struct {
	env            testEnv
	stdout, stderr bytes.Buffer
	harnessCfg     harness.Config
	closed         bool

	mu   sync.Mutex
	ran  []string
	fail map[string]bool // files that fail
}

func newFakeRun(t *testing.T) *fakeRun {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"tests/a.lua", "tests/b.lua", "tests/c.lua", "tests/helpers.lua", "tests/fixtures/base.lua"} {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := &fakeRun{fail: map[string]bool{}}
	r.env = testEnv{
		stdout:   &r.stdout,
		stderr:   &r.stderr,
		startDir: dir,
		runsBase: t.TempDir(),
		ctx:      context.Background(),
		start: func(cfg harness.Config) (runner.Executor, func(), error) {
			r.harnessCfg = cfg
			return r.exec, func() { r.closed = true }, nil
		},
	}
	return r
}

func (r *fakeRun) exec(_ context.Context, file string, _ io.Writer, emit func(result.Event)) *result.File {
	r.mu.Lock()
	r.ran = append(r.ran, file)
	fail := r.fail[file]
	r.mu.Unlock()
	emit(result.Event{Kind: result.SubtestEnded, Name: "one", Status: "ok"})
	switch {
	case fail:
		return &result.File{Status: result.Failed, Touched: true, Failure: &result.Failure{Message: file + ":1: boom"}}
	case strings.HasSuffix(file, "helpers.lua"):
		return &result.File{Status: result.Passed}
	}
	return &result.File{Status: result.Passed, Touched: true, Subtests: []result.Subtest{{Name: "one", Status: result.Passed}}}
}

func (r *fakeRun) run(args ...string) int {
	r.stdout.Reset()
	r.stderr.Reset()
	r.mu.Lock()
	r.ran = nil
	r.mu.Unlock()
	return r.env.run(args)
}

func (r *fakeRun) files() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(slices.Values(r.ran))
}

func TestTestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{}, "no test paths given"},
		{[]string{"-v", "-q", "tests"}, "-v and -q do not go together"},
		{[]string{"--shard", "5/4", "tests"}, `invalid value "5/4" for flag --shard: want K/N with 1 <= K <= N`},
		{[]string{"--shard=0/2", "tests"}, "--shard"},
		{[]string{"--mem", "lots", "tests"}, "--mem: want a size"},
		{[]string{"--mem", "0", "tests"}, "--mem: want a size"},
		{[]string{"--cpus", "0", "tests"}, "--cpus: want a positive number"},
		{[]string{"--timeout", "-1s", "tests"}, "--timeout: a timeout cannot be negative"},
		{[]string{"--timeout", "soon", "tests"}, "--timeout: want a duration"},
		{[]string{"-p", "x", "tests"}, "-p: want a number"},
		{[]string{"tests", "-p"}, "option -p needs a value"},
		{[]string{"--bogus", "tests"}, "unknown option --bogus"},
		{[]string{"nope"}, "nope: no such file or directory"},
		{[]string{"-f", "zzz", "tests"}, "no test file matches -f zzz"},
		{[]string{"--rerun-failed"}, "--rerun-failed: no previous run"},
		{[]string{"--junit", "/nonexistent/dir/report.xml", "tests"}, "--junit: open /nonexistent/dir/report.xml"},
		{[]string{"--list", "--junit", "x.xml", "tests"}, "--junit and --list do not go together"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := newFakeRun(t)
			if code := r.run(tt.args...); code != exitUsage {
				t.Errorf("exit %d, want 2; stderr %s", code, r.stderr.String())
			}
			msg := r.stderr.String()
			if !strings.HasPrefix(msg, "provium test: ") || !strings.Contains(msg, tt.want) ||
				!strings.HasSuffix(msg, "\nRun 'provium help test' for usage.\n") || strings.Count(msg, "\n") != 2 {
				t.Errorf("stderr = %q, want one line with %q and a hint", msg, tt.want)
			}
			if len(r.files()) > 0 {
				t.Errorf("files ran after a usage error: %q", r.files())
			}
		})
	}
}

func TestTestHelp(t *testing.T) {
	r := newFakeRun(t)
	if code := r.run("-h"); code != exitOK {
		t.Errorf("exit %d", code)
	}
	if !strings.HasPrefix(r.stdout.String(), "Usage: provium test [options] <path>...") {
		t.Errorf("help = %q", r.stdout.String())
	}
	for _, opt := range []string{"-p N", "-f PATTERN", "--fail-fast", "--rerun-failed", "--timeout", "--mem", "--cpus", "--shard", "--list", "--junit", "--json", "-v", "-q", "--no-cache"} {
		if !strings.Contains(r.stdout.String(), opt) {
			t.Errorf("help lacks %s", opt)
		}
	}
}

func TestList(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--list", "tests"}, "tests/a.lua\ntests/b.lua\ntests/c.lua\ntests/helpers.lua\n"},
		// options after paths, -f repeated
		{[]string{"tests", "-f", "a.lua", "-f", "c.lua", "--list"}, "tests/a.lua\ntests/c.lua\n"},
		{[]string{"--list", "--shard", "2/2", "tests"}, "tests/b.lua\ntests/helpers.lua\n"},
		{[]string{"--list", "--", "tests"}, "tests/a.lua\ntests/b.lua\ntests/c.lua\ntests/helpers.lua\n"},
		{[]string{"--list", "--shard", "5/5", "tests/a.lua"}, ""}, // an empty shard is no error
	}
	for _, tt := range tests {
		r := newFakeRun(t)
		if code := r.run(tt.args...); code != exitOK {
			t.Errorf("%q: exit %d, stderr %s", tt.args, code, r.stderr.String())
		}
		if r.stdout.String() != tt.want {
			t.Errorf("%q: listed %q, want %q", tt.args, r.stdout.String(), tt.want)
		}
		if len(r.files()) > 0 {
			t.Errorf("%q: --list ran files", tt.args)
		}
	}
}

func TestRunExitCodesAndOutput(t *testing.T) {
	r := newFakeRun(t)
	if code := r.run("tests"); code != exitOK {
		t.Fatalf("passing run: exit %d\n%s%s", code, r.stdout.String(), r.stderr.String())
	}
	out := r.stdout.String()
	if !strings.HasSuffix(out, "\nok: 3 passed, 0 failed\n") || strings.Contains(out, "helpers.lua") {
		t.Errorf("stdout:\n%s", out)
	}
	if !r.closed {
		t.Error("the harness was not closed")
	}
	if got := r.files(); !slices.Equal(got, []string{"tests/a.lua", "tests/b.lua", "tests/c.lua", "tests/helpers.lua"}) {
		t.Errorf("ran %q", got)
	}
	if r.harnessCfg.StartDir != r.env.startDir || !strings.HasPrefix(r.harnessCfg.RunDir, r.env.runsBase+"/run-") || r.harnessCfg.Pool == nil {
		t.Errorf("harness config %+v", r.harnessCfg)
	}
	if !r.harnessCfg.Pool.Usage().Auto {
		t.Error("without --mem/--cpus the pool is not in auto mode")
	}

	r.fail["tests/b.lua"] = true
	if code := r.run("tests", "-q"); code != exitFail {
		t.Fatalf("failing run: exit %d", code)
	}
	out = r.stdout.String()
	if strings.Contains(out, "a.lua") || !strings.Contains(out, "tests/b.lua ... FAIL") || !strings.HasSuffix(out, "\nFAIL: 2 passed, 1 failed\n") {
		t.Errorf("quiet stdout:\n%s", out)
	}
}

func TestEmptyShardStillReports(t *testing.T) {
	r := newFakeRun(t)
	junit := filepath.Join(t.TempDir(), "report.xml")
	if code := r.run("--shard", "4/4", "--junit", junit, "tests/a.lua", "tests/b.lua"); code != exitOK {
		t.Fatalf("exit %d: %s", code, r.stderr.String())
	}
	if r.stdout.String() != "\nok: 0 passed, 0 failed\n" || len(r.files()) != 0 {
		t.Errorf("stdout %q, ran %q", r.stdout.String(), r.files())
	}
	data, err := os.ReadFile(junit)
	if err != nil || !strings.Contains(string(data), `<testsuites name="provium" tests="0"`) {
		t.Errorf("JUnit of an empty shard: %v\n%s", err, data)
	}
}

func TestFixedPool(t *testing.T) {
	r := newFakeRun(t)
	if code := r.run("--mem", "4G", "--cpus", "3", "--no-cache", "tests"); code != exitOK {
		t.Fatalf("exit %d: %s", code, r.stderr.String())
	}
	u := r.harnessCfg.Pool.Usage()
	if u.Auto || u.LimitMiB != 4096 || u.LimitCPU != 3 || !r.harnessCfg.NoCache {
		t.Errorf("pool %+v, no-cache %v", u, r.harnessCfg.NoCache)
	}
}

func TestParallelismDefault(t *testing.T) {
	tests := []struct {
		o    testOptions
		want int
	}{
		{testOptions{}, max(2, runtime.NumCPU()/2)},
		{testOptions{memMiB: 4096}, 0},
		{testOptions{cpus: 2}, 0},
		{testOptions{cpus: 2, parallel: 3, parallelSet: true}, 3},
		{testOptions{parallel: 1, parallelSet: true}, 1},
	}
	for _, tt := range tests {
		if got := tt.o.parallelism(); got != tt.want {
			t.Errorf("%+v: parallelism %d, want %d", tt.o, got, tt.want)
		}
	}
}

func TestJSONAndJUnit(t *testing.T) {
	r := newFakeRun(t)
	r.fail["tests/c.lua"] = true
	junit := filepath.Join(t.TempDir(), "report.xml")
	if code := r.run("--json", "--junit", junit, "tests"); code != exitFail {
		t.Fatalf("exit %d: %s", code, r.stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout.String(), "\n"), "\n")
	var kinds []result.EventKind
	for _, l := range lines {
		var e result.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("not a JSON event line: %q", l)
		}
		kinds = append(kinds, e.Kind)
	}
	if kinds[0] != result.RunStarted || kinds[len(kinds)-1] != result.RunFinished {
		t.Errorf("event kinds %q", kinds)
	}
	for _, k := range []result.EventKind{result.FileStarted, result.FileFinished, result.SubtestEnded} {
		if !slices.Contains(kinds, k) {
			t.Errorf("no %s event in %q", k, kinds)
		}
	}

	data, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Name string `xml:"name,attr"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("JUnit: %v\n%s", err, data)
	}
	if doc.Tests != 3 || doc.Failures != 1 || len(doc.Suites) != 3 {
		t.Errorf("JUnit tests=%d failures=%d suites=%d\n%s", doc.Tests, doc.Failures, len(doc.Suites), data)
	}
}

func TestRerunFailed(t *testing.T) {
	r := newFakeRun(t)
	r.fail["tests/b.lua"] = true
	r.fail["tests/c.lua"] = true
	if code := r.run("tests"); code != exitFail {
		t.Fatalf("exit %d", code)
	}

	// Restricted by a path and a filter.
	if code := r.run("--rerun-failed", "-f", "c.lua", "--list"); code != exitOK || r.stdout.String() != "tests/c.lua\n" {
		t.Errorf("rerun list: exit %d, %q", code, r.stdout.String())
	}
	if code := r.run("--rerun-failed", "--list", "tests/b.lua"); code != exitOK || r.stdout.String() != "tests/b.lua\n" {
		t.Errorf("rerun list under a path: exit %d, %q", code, r.stdout.String())
	}

	// b is fixed; c was deleted.
	delete(r.fail, "tests/b.lua")
	os.Remove(filepath.Join(r.env.startDir, "tests/c.lua"))
	if code := r.run("--rerun-failed"); code != exitOK {
		t.Fatalf("rerun: exit %d\n%s%s", code, r.stdout.String(), r.stderr.String())
	}
	if got := r.files(); !slices.Equal(got, []string{"tests/b.lua"}) {
		t.Errorf("rerun ran %q, want only b", got)
	}
	if !strings.Contains(r.stderr.String(), "skipping "+filepath.Join(r.env.startDir, "tests/c.lua")) {
		t.Errorf("no note about the deleted file: %q", r.stderr.String())
	}

	if code := r.run("--rerun-failed"); code != exitOK || r.stdout.String() != "no failed files in the last run\n" {
		t.Errorf("nothing to rerun: exit %d, %q", code, r.stdout.String())
	}
}

func TestInterruptExitCode(t *testing.T) {
	r := newFakeRun(t)
	ctx, cancel := context.WithCancel(context.Background())
	r.env.ctx = ctx
	r.env.start = func(harness.Config) (runner.Executor, func(), error) {
		return func(ctx context.Context, file string, _ io.Writer, _ func(result.Event)) *result.File {
			if file == "tests/b.lua" {
				cancel() // as SIGINT does
				<-ctx.Done()
				return &result.File{Status: result.Failed, Touched: true}
			}
			return &result.File{Status: result.Passed, Touched: true, Duration: time.Second}
		}, func() {}, nil
	}
	if code := r.run("-p", "1", "tests"); code != exitInterrupted {
		t.Errorf("exit %d, want 130", code)
	}
	if want := "  tests/a.lua ... ok (1.0s)\ninterrupted: 3 files did not finish\n\nFAIL: 1 passed, 0 failed\n"; r.stdout.String() != want {
		t.Errorf("stdout %q, want %q", r.stdout.String(), want)
	}
}

func TestParseTimeout(t *testing.T) {
	good := map[string]time.Duration{"90s": 90 * time.Second, "10m": 10 * time.Minute, "300": 5 * time.Minute, "1.5": 1500 * time.Millisecond, "0": 0}
	for in, want := range good {
		if got, err := parseTimeout(in); err != nil || got != want {
			t.Errorf("parseTimeout(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "-1", "-5s"} {
		if _, err := parseTimeout(in); err == nil {
			t.Errorf("parseTimeout(%q): no error", in)
		}
	}
	o, err := parseTestArgs([]string{"tests"})
	if err != nil || o.timeout != runner.DefaultTimeout {
		t.Errorf("default timeout %v, %v", o.timeout, err)
	}
}

func TestVersionString(t *testing.T) {
	tests := []struct {
		info *debug.BuildInfo
		want string
	}{
		{nil, "provium devel"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "provium devel"},
		{&debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}}, "provium v1.2.0"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"},
		}}, "provium devel (0123456789ab, modified)"},
		{&debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261127062000-0123456789ab+dirty"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"},
		}}, "provium v0.0.0-20261127062000-0123456789ab+dirty"},
	}
	for _, tt := range tests {
		if got := versionString(tt.info); got != tt.want {
			t.Errorf("versionString = %q, want %q", got, tt.want)
		}
	}
}

func TestUsageListsCommands(t *testing.T) {
	var b bytes.Buffer
	writeUsage(&b)
	for _, line := range []string{
		"  help     show help for provium or one of its commands\n",
		"  test     run test files (a directory is walked recursively)\n",
		"  version  print the provium version\n",
	} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("usage lacks %q:\n%s", line, b.String())
		}
	}
}

func TestMainExitCodes(t *testing.T) {
	// Silence what Main prints to the real stdout and stderr.
	devnull, _ := os.Open(os.DevNull)
	stdout, stderr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = devnull, devnull
	defer func() { os.Stdout, os.Stderr = stdout, stderr; devnull.Close() }()

	tests := []struct {
		args []string
		want int
	}{
		{nil, exitUsage},
		{[]string{"bogus"}, exitUsage},
		{[]string{"help"}, exitOK},
		{[]string{"--help"}, exitOK},
		{[]string{"help", "test"}, exitOK},
		{[]string{"help", "bogus"}, exitUsage},
		{[]string{"help", "help"}, exitOK},
		{[]string{"help", "test", "extra"}, exitUsage},
		{[]string{"version"}, exitOK},
		{[]string{"version", "extra"}, exitUsage},
	}
	for _, tt := range tests {
		if got := Main(tt.args); got != tt.want {
			t.Errorf("Main(%q) = %d, want %d", tt.args, got, tt.want)
		}
	}
}
