package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provium/provium/internal/pool"
	"github.com/provium/provium/internal/report"
	"github.com/provium/provium/internal/result"
)

var testNow = time.Date(2026, 11, 27, 6, 20, 0, 0, time.UTC)

func passed() *result.File {
	return &result.File{Status: result.Passed, Touched: true, Duration: time.Second}
}

func failed(msg string) *result.File {
	return &result.File{Status: result.Failed, Touched: true, Failure: &result.Failure{Message: msg}}
}

// fakes runs each file with the function the test gives for it; files
// without one pass. It records the files it ran.
type fakes struct {
	mu   sync.Mutex
	ran  []string
	byFn map[string]func(ctx context.Context, log io.Writer, emit func(result.Event)) *result.File
}

func (f *fakes) exec(ctx context.Context, file string, log io.Writer, emit func(result.Event)) *result.File {
	f.mu.Lock()
	f.ran = append(f.ran, file)
	fn := f.byFn[file]
	f.mu.Unlock()
	if fn == nil {
		return passed()
	}
	return fn(ctx, log, emit)
}

func (f *fakes) files() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ran)
}

type harness struct {
	base    string
	console bytes.Buffer
	events  []result.Event
	mu      sync.Mutex
}

// config is a run of files with output captured.
func (h *harness) config(t *testing.T, files ...string) Config {
	t.Helper()
	if h.base == "" {
		h.base = t.TempDir()
	}
	rd, err := NewRunDir(h.base, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		StartDir: "/project",
		Files:    files,
		Parallel: 1,
		RunDir:   rd,
		Console:  report.NewConsole(&h.console, report.Normal),
		Emit: func(e result.Event) {
			h.mu.Lock()
			h.events = append(h.events, e)
			h.mu.Unlock()
		},
	}
}

func (h *harness) kinds(file string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var kinds []string
	for _, e := range h.events {
		if e.File == file {
			kinds = append(kinds, string(e.Kind)+":"+e.Status)
		}
	}
	return kinds
}

func mustRun(t *testing.T, ctx context.Context, cfg Config, exec Executor) *Outcome {
	t.Helper()
	out, err := Run(ctx, cfg, exec)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRunSummaryLogsAndExitCode(t *testing.T) {
	f := &fakes{byFn: map[string]func(context.Context, io.Writer, func(result.Event)) *result.File{
		"tests/bad.lua": func(_ context.Context, log io.Writer, _ func(result.Event)) *result.File {
			io.WriteString(log, "console: kernel panic\n")
			return failed("tests/bad.lua:3: boom")
		},
		"tests/good.lua": func(_ context.Context, log io.Writer, emit func(result.Event)) *result.File {
			io.WriteString(log, "console: all fine\n")
			emit(result.Event{Kind: result.VMBooted, File: "/project/tests/good.lua", Name: "minimal#1"})
			return passed()
		},
		"tests/todo.lua": func(context.Context, io.Writer, func(result.Event)) *result.File {
			return &result.File{Status: result.Skipped, Touched: true}
		},
	}}
	var h harness
	cfg := h.config(t, "tests/bad.lua", "tests/good.lua", "tests/todo.lua")
	out := mustRun(t, context.Background(), cfg, f.exec)

	if got := report.SummaryLine(out.Summary); got != "FAIL: 1 passed, 1 failed, 1 skipped" {
		t.Errorf("summary = %q", got)
	}
	if out.ExitCode() != 1 {
		t.Errorf("exit code = %d, want 1", out.ExitCode())
	}

	badLog := filepath.Join(cfg.RunDir.Path, "tests_bad.lua.log")
	data, err := os.ReadFile(badLog)
	if err != nil {
		t.Fatalf("failing file's log not kept: %v", err)
	}
	for _, want := range []string{"console: kernel panic", "--- result ---", "FAIL: tests/bad.lua:3: boom"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("log lacks %q:\n%s", want, data)
		}
	}
	for _, gone := range []string{"tests_good.lua.log", "tests_todo.lua.log"} {
		if _, err := os.Stat(filepath.Join(cfg.RunDir.Path, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("log %s of a file that did not fail was kept (%v)", gone, err)
		}
	}

	console := h.console.String()
	for _, want := range []string{
		"  tests/bad.lua ... FAIL (",
		"    FAIL: tests/bad.lua:3: boom\n",
		"  tests/good.lua ... ok (",
		"Failed test logs:\n  tests/bad.lua  → " + badLog + "\n",
		"\nFAIL: 1 passed, 1 failed, 1 skipped\n",
	} {
		if !strings.Contains(console, want) {
			t.Errorf("console lacks %q:\n%s", want, console)
		}
	}

	// The harness names files by absolute path; events carry the path the
	// user sees.
	if got := h.kinds("tests/good.lua"); !slices.Equal(got, []string{"file_started:", "vm_booted:", "file_finished:ok"}) {
		t.Errorf("events of good.lua = %q", got)
	}
	if got := h.kinds(""); !slices.Equal(got, []string{"run_started:", "run_finished:FAIL"}) {
		t.Errorf("run events = %q", got)
	}
}

func TestRunAllPass(t *testing.T) {
	var h harness
	out := mustRun(t, context.Background(), h.config(t, "a.lua", "b.lua"), (&fakes{}).exec)
	if out.ExitCode() != 0 || report.SummaryLine(out.Summary) != "ok: 2 passed, 0 failed" {
		t.Errorf("exit %d, summary %q", out.ExitCode(), report.SummaryLine(out.Summary))
	}
	if strings.Contains(h.console.String(), "Failed test logs") {
		t.Errorf("failed logs listed for a passing run:\n%s", h.console.String())
	}
}

func TestKeepLogs(t *testing.T) {
	var h harness
	cfg := h.config(t, "a.lua")
	cfg.KeepLogs = true
	out := mustRun(t, context.Background(), cfg, (&fakes{}).exec)
	if _, err := os.Stat(filepath.Join(cfg.RunDir.Path, "a.lua.log")); err != nil {
		t.Errorf("log not kept with KeepLogs: %v", err)
	}
	if out.Files[0].Log == "" {
		t.Error("kept log not reported")
	}
}

func TestHelperFilePassesSilently(t *testing.T) {
	for _, repeat := range []int{0, 3} {
		t.Run(fmt.Sprintf("repeat %d", repeat), func(t *testing.T) { testHelperFile(t, repeat) })
	}
}

func testHelperFile(t *testing.T, repeat int) {
	f := &fakes{byFn: map[string]func(context.Context, io.Writer, func(result.Event)) *result.File{
		"tests/helpers.lua": func(context.Context, io.Writer, func(result.Event)) *result.File {
			return &result.File{Status: result.Passed, Touched: false}
		},
	}}
	var h harness
	cfg := h.config(t, "tests/boot.lua", "tests/helpers.lua")
	cfg.Repeat = repeat
	out := mustRun(t, context.Background(), cfg, f.exec)
	want := "ok: 1 passed, 0 failed"
	if repeat > 0 {
		want = fmt.Sprintf("ok: 1 passed, 0 failed (%d runs)", repeat)
	}
	if got := report.SummaryLine(out.Summary); got != want {
		t.Errorf("summary = %q, want the helper not counted", got)
	}
	if strings.Contains(h.console.String(), "helpers.lua") {
		t.Errorf("helper file printed:\n%s", h.console.String())
	}
	if len(out.Files) != max(repeat, 1) || out.Summary.NotRun != 0 {
		t.Errorf("files %d, not run %d", len(out.Files), out.Summary.NotRun)
	}
}

func TestFailFast(t *testing.T) {
	f := &fakes{byFn: map[string]func(context.Context, io.Writer, func(result.Event)) *result.File{
		"b.lua": func(context.Context, io.Writer, func(result.Event)) *result.File { return failed("b.lua:1: no") },
	}}
	var h harness
	cfg := h.config(t, "a.lua", "b.lua", "c.lua", "d.lua")
	cfg.FailFast = true
	out := mustRun(t, context.Background(), cfg, f.exec)
	if got := f.files(); !slices.Equal(got, []string{"a.lua", "b.lua"}) {
		t.Errorf("ran %q, want a.lua and b.lua only", got)
	}
	s := out.Summary
	if s.Passed != 1 || s.Failed != 1 || s.NotRun != 2 || s.Interrupted || out.ExitCode() != 1 {
		t.Errorf("summary %+v, exit %d", s, out.ExitCode())
	}
	if !strings.Contains(h.console.String(), "stopped after the first failure: 2 files not run") {
		t.Errorf("console:\n%s", h.console.String())
	}
}

func TestFailFastLetsRunningFilesFinish(t *testing.T) {
	bFinished := make(chan struct{})
	f := &fakes{byFn: map[string]func(context.Context, io.Writer, func(result.Event)) *result.File{
		"a.lua": func(context.Context, io.Writer, func(result.Event)) *result.File {
			<-bFinished // a is still running when b fails
			return passed()
		},
		"b.lua": func(context.Context, io.Writer, func(result.Event)) *result.File {
			return failed("b.lua:1: no")
		},
	}}
	var h harness
	cfg := h.config(t, "a.lua", "b.lua", "c.lua")
	cfg.Parallel = 2
	cfg.FailFast = true
	emit := cfg.Emit
	cfg.Emit = func(e result.Event) {
		emit(e)
		if e.Kind == result.FileFinished && e.File == "b.lua" {
			close(bFinished)
		}
	}
	out := mustRun(t, context.Background(), cfg, f.exec)
	s := out.Summary
	if s.Passed != 1 || s.Failed != 1 || s.NotRun != 1 {
		t.Errorf("summary %+v, want a passed, b failed, c not run", s)
	}
	if got := f.files(); slices.Contains(got, "c.lua") {
		t.Errorf("ran %q: c started after b failed", got)
	}
}

func TestTimeoutCancelsHangingFile(t *testing.T) {
	f := &fakes{byFn: map[string]func(context.Context, io.Writer, func(result.Event)) *result.File{
		"hang.lua": func(ctx context.Context, _ io.Writer, _ func(result.Event)) *result.File {
			<-ctx.Done() // as the harness does: the VM call fails, the VMs die
			return failed("hang.lua:5: exec: " + ctx.Err().Error())
		},
	}}
	var h harness
	cfg := h.config(t, "hang.lua", "next.lua")
	cfg.Timeout = time.Millisecond
	out := mustRun(t, context.Background(), cfg, f.exec)
	if len(out.Files) != 2 {
		t.Fatalf("files = %d", len(out.Files))
	}
	res := out.Files[0]
	if res.Status != result.Failed || res.Failure.Message != "timed out after 1ms: hang.lua:5: exec: context deadline exceeded" {
		t.Errorf("timed-out file: %v %+v", res.Status, res.Failure)
	}
	if out.Summary.Failed != 1 || out.Summary.Passed != 1 || out.Summary.Interrupted {
		t.Errorf("summary %+v: the run goes on after a timeout", out.Summary)
	}
}

func TestFileThatIgnoresCancelIsAbandoned(t *testing.T) {
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	f := &fakes{byFn: map[string]func(context.Context, io.Writer, func(result.Event)) *result.File{
		"stuck.lua": func(context.Context, io.Writer, func(result.Event)) *result.File {
			<-stuck
			return passed()
		},
	}}
	var h harness
	cfg := h.config(t, "stuck.lua")
	cfg.Timeout = time.Millisecond
	cfg.grace = time.Millisecond
	out := mustRun(t, context.Background(), cfg, f.exec)
	msg := out.Files[0].Failure.Message
	if msg != "timed out after 1ms: the file did not stop within 1ms of being cancelled" {
		t.Errorf("message = %q", msg)
	}
}

func TestPanicFailsFileAndReleasesPool(t *testing.T) {
	p := pool.NewFixed(1024, 0)
	f := &fakes{byFn: map[string]func(context.Context, io.Writer, func(result.Event)) *result.File{
		"crash.lua": func(ctx context.Context, _ io.Writer, _ func(result.Event)) *result.File {
			if _, err := p.Acquire(ctx, 1024, 1); err != nil {
				t.Error(err)
			}
			panic("nil map")
		},
		"after.lua": func(ctx context.Context, _ io.Writer, _ func(result.Event)) *result.File {
			// Would wait forever if crash.lua's memory were not back.
			release, err := p.Acquire(ctx, 1024, 1)
			if err != nil {
				return failed(err.Error())
			}
			release()
			return passed()
		},
	}}
	var h harness
	out := mustRun(t, context.Background(), h.config(t, "crash.lua", "after.lua"), f.exec)
	crash := out.Files[0]
	if crash.Status != result.Failed || !strings.Contains(crash.Failure.Message, "panic: nil map") ||
		!strings.Contains(crash.Failure.Traceback, "goroutine") {
		t.Errorf("panicking file: %v %+v", crash.Status, crash.Failure)
	}
	if out.Files[1].Status != result.Passed {
		t.Errorf("next file: %+v", out.Files[1].Failure)
	}
	if u := p.Usage(); u.VMs != 0 {
		t.Errorf("pool still holds %+v", u)
	}
}

func TestInterrupt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakes{byFn: map[string]func(context.Context, io.Writer, func(result.Event)) *result.File{
		"b.lua": func(ctx context.Context, _ io.Writer, _ func(result.Event)) *result.File {
			cancel() // Ctrl-C while b runs
			<-ctx.Done()
			return failed("b.lua:2: " + ctx.Err().Error())
		},
	}}
	var h harness
	cfg := h.config(t, "a.lua", "b.lua", "c.lua")
	out := mustRun(t, ctx, cfg, f.exec)
	s := out.Summary
	if !s.Interrupted || s.Passed != 1 || s.Failed != 0 || s.NotRun != 2 || out.ExitCode() != 130 {
		t.Errorf("summary %+v, exit %d", s, out.ExitCode())
	}
	if got := f.files(); !slices.Equal(got, []string{"a.lua", "b.lua"}) {
		t.Errorf("ran %q", got)
	}
	console := h.console.String()
	if strings.Contains(console, "b.lua ...") {
		t.Errorf("interrupted file printed as a result:\n%s", console)
	}
	if !strings.HasSuffix(console, "  a.lua ... ok (1.0s)\ninterrupted: 2 files did not finish\n\nFAIL: 1 passed, 0 failed\n") {
		t.Errorf("console:\n%s", console)
	}
	// An interrupted run is not the one --rerun-failed reads.
	if _, err := LastFailed(h.base); !errors.Is(err, ErrNoPreviousRun) {
		t.Errorf("LastFailed after an interrupted run: %v", err)
	}
}

func TestRerunFailedReadsLastRun(t *testing.T) {
	var h harness
	h.base = t.TempDir()
	if _, err := LastFailed(h.base); !errors.Is(err, ErrNoPreviousRun) {
		t.Fatalf("LastFailed with no run: %v", err)
	}

	f := &fakes{byFn: map[string]func(context.Context, io.Writer, func(result.Event)) *result.File{
		"tests/b.lua": func(context.Context, io.Writer, func(result.Event)) *result.File { return failed("x") },
		"tests/d.lua": func(context.Context, io.Writer, func(result.Event)) *result.File { return failed("y") },
	}}
	mustRun(t, context.Background(), h.config(t, "tests/a.lua", "tests/b.lua", "tests/c.lua", "tests/d.lua", "/elsewhere/e.lua"), f.exec)
	got, err := LastFailed(h.base)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/project/tests/b.lua", "/project/tests/d.lua"}; !slices.Equal(got, want) {
		t.Errorf("LastFailed = %q, want %q", got, want)
	}

	// A second run where everything passes leaves nothing to rerun.
	mustRun(t, context.Background(), h.config(t, "tests/b.lua", "tests/d.lua"), (&fakes{}).exec)
	got, err = LastFailed(h.base)
	if err != nil || len(got) != 0 {
		t.Errorf("LastFailed after a passing run = %q, %v", got, err)
	}
}

// gate holds fakes until n of them run at once, and records the most that
// ever ran at once.
type gate struct {
	n       int
	running atomic.Int32
	most    atomic.Int32
	full    chan struct{}
	once    sync.Once
}

func newGate(n int) *gate { return &gate{n: n, full: make(chan struct{})} }

func (g *gate) exec(context.Context, string, io.Writer, func(result.Event)) *result.File {
	now := g.running.Add(1)
	defer g.running.Add(-1)
	for {
		most := g.most.Load()
		if now <= most || g.most.CompareAndSwap(most, now) {
			break
		}
	}
	if int(now) >= g.n {
		g.once.Do(func() { close(g.full) })
	}
	select {
	case <-g.full:
	case <-time.After(10 * time.Second): // a guard against hanging, not a measure
	}
	return passed()
}

func TestParallelismRespected(t *testing.T) {
	for _, p := range []int{1, 2, 3} {
		g := newGate(p)
		var h harness
		cfg := h.config(t, "a.lua", "b.lua", "c.lua", "d.lua", "e.lua", "f.lua", "g.lua")
		cfg.Parallel = p
		out := mustRun(t, context.Background(), cfg, g.exec)
		if got := int(g.most.Load()); got != p {
			t.Errorf("-p %d: at most %d files ran at once", p, got)
		}
		if out.Summary.Passed != 7 {
			t.Errorf("-p %d: summary %+v", p, out.Summary)
		}
	}
}

func TestUnlimitedParallelism(t *testing.T) {
	g := newGate(5)
	var h harness
	cfg := h.config(t, "a.lua", "b.lua", "c.lua", "d.lua", "e.lua")
	cfg.Parallel = 0
	mustRun(t, context.Background(), cfg, g.exec)
	if got := g.most.Load(); got != 5 {
		t.Errorf("unlimited: at most %d of 5 files ran at once", got)
	}
}

// --repeat runs every file N times in rounds, shows only the failing runs
// and counts how many runs of each file passed; a file passes when all of
// its runs did.
func TestRepeat(t *testing.T) {
	var h harness
	var mu sync.Mutex
	runs := map[string]int{}
	f := &fakes{byFn: map[string]func(context.Context, io.Writer, func(result.Event)) *result.File{
		"flaky.lua": func(context.Context, io.Writer, func(result.Event)) *result.File {
			mu.Lock()
			runs["flaky.lua"]++
			n := runs["flaky.lua"]
			mu.Unlock()
			if n == 2 || n == 4 {
				return failed(fmt.Sprintf("flaky.lua:3: run %d broke", n))
			}
			return passed()
		},
	}}
	cfg := h.config(t, "flaky.lua", "steady.lua")
	cfg.Repeat = 5
	cfg.Parallel = 1
	out := mustRun(t, context.Background(), cfg, f.exec)
	if len(out.Files) != 10 {
		t.Fatalf("%d runs, want 10", len(out.Files))
	}
	s := out.Summary
	if s.Passed != 1 || s.Failed != 1 || s.Runs != 10 || out.ExitCode() != 1 {
		t.Errorf("summary %+v, exit %d", s, out.ExitCode())
	}
	console := h.console.String()
	for _, want := range []string{
		"flaky.lua (run 2) ... FAIL",
		"flaky.lua (run 4) ... FAIL",
		"Runs:\n  flaky.lua  3/5 passed (runs 2, 4 failed)\n  steady.lua  5/5 passed\n",
		"FAIL: 1 passed, 1 failed (10 runs)",
	} {
		if !strings.Contains(console, want) {
			t.Errorf("console lacks %q:\n%s", want, console)
		}
	}
	if strings.Contains(console, "steady.lua (run") {
		t.Errorf("passing runs are shown:\n%s", console)
	}
	if failed, _ := LastFailed(h.base); len(failed) != 1 {
		t.Errorf("failed list %v, want flaky.lua once", failed)
	}
}

// --until-fail stops starting runs after the first failure.
func TestUntilFail(t *testing.T) {
	var h harness
	var n atomic.Int32
	f := &fakes{byFn: map[string]func(context.Context, io.Writer, func(result.Event)) *result.File{
		"a.lua": func(context.Context, io.Writer, func(result.Event)) *result.File {
			if n.Add(1) == 3 {
				return failed("a.lua:1: third time")
			}
			return passed()
		},
	}}
	cfg := h.config(t, "a.lua")
	cfg.UntilFail = true
	cfg.Parallel = 1
	out := mustRun(t, context.Background(), cfg, f.exec)
	if n.Load() != 3 || out.Summary.Failed != 1 || out.Summary.Runs != 3 {
		t.Errorf("%d runs, summary %+v", n.Load(), out.Summary)
	}
	if !strings.Contains(h.console.String(), "a.lua  2/3 passed (run 3 failed)") {
		t.Errorf("console:\n%s", h.console.String())
	}
}
