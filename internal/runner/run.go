// Package runner runs a suite of test files: it discovers them, picks a
// shard, schedules them in parallel, enforces per-file timeouts, keeps the
// run directory and its logs, and reports each file as it completes.
//
// The runner does not know how a file runs: it calls an Executor
// (harness.RunFile in provium, fakes in tests) with a context that ends when
// the file times out or the run is interrupted, a log writer and an event
// sink. Everything the file held in the resource pool is released when the
// executor returns, even if it panicked.
package runner

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/provium/provium/internal/pool"
	"github.com/provium/provium/internal/report"
	"github.com/provium/provium/internal/result"
)

// Executor runs one test file. It must return soon after ctx ends, with
// the file's VMs killed.
type Executor func(ctx context.Context, file string, log io.Writer, emit func(result.Event)) *result.File

// DefaultTimeout is how long one file may run.
const DefaultTimeout = 5 * time.Minute

// defaultGrace is how long a file whose context has ended may take to
// return before the runner gives up on it: nothing hangs forever.
const defaultGrace = 15 * time.Second

// Config is one run.
type Config struct {
	StartDir string   // where provium started; Files are relative to it
	Files    []string // the files to run, in order
	Parallel int      // files at once; 0 = unlimited
	FailFast bool     // start no file after the first failure
	Timeout  time.Duration
	RunDir   *RunDir
	KeepLogs bool // keep the logs of passing files too
	// Repeat runs each file this many times (0 or 1: once), the runs of
	// all files in rounds; UntilFail stops starting runs after the first
	// failure (with Repeat 0, it repeats until then). Fixtures are built
	// once and resumed by every run.
	Repeat    int
	UntilFail bool

	Console *report.Console    // human output; nil for none
	Emit    func(result.Event) // the event stream; nil for none
	// Status, if set, adds to the live status line (VMs up, pool use).
	Status func() string

	grace time.Duration // defaultGrace; shorter in tests
}

// Outcome is what a run did.
type Outcome struct {
	Files   []*result.File // files that finished, in completion order; not helpers
	Summary result.Summary
}

// ExitCode is provium's exit status for the run: 0 all passed, 1 a file
// failed, 130 interrupted.
func (o *Outcome) ExitCode() int {
	switch {
	case o.Summary.Interrupted:
		return 130
	case o.Summary.Failed > 0:
		return 1
	}
	return 0
}

// Run runs cfg.Files with exec. Cancelling ctx interrupts the run: no new
// file starts, running ones are cancelled, and the outcome has what finished.
// The error, if any, is about recording the run for --rerun-failed; the
// outcome is complete regardless.
func Run(ctx context.Context, cfg Config, exec Executor) (*Outcome, error) {
	if cfg.grace == 0 {
		cfg.grace = defaultGrace
	}
	if cfg.Emit == nil {
		cfg.Emit = func(result.Event) {}
	}
	if cfg.UntilFail {
		cfg.FailFast = true
	}
	r := &run{cfg: cfg, exec: exec, logs: cfg.RunDir.LogPaths(cfg.Files), start: time.Now()}
	r.queued = r.total()
	cfg.Emit(result.Event{Kind: result.RunStarted, Message: cfg.RunDir.Path})

	stopStatus := r.showStatus()
	results := make(chan fileRun)
	go r.dispatch(ctx, results)
	out := &Outcome{}
	var failed []string
	tally := newTally()
	helpers := map[string]bool{} // files that hold no test, by path
	for fr := range results {
		if fr.helper {
			helpers[fr.Path] = true
		}
		if fr.interrupted || fr.helper {
			continue
		}
		if cfg.Console != nil && (!r.repeating() || fr.Failed()) {
			// Repeated, a run is news only when it fails.
			cfg.Console.File(fr.File)
		}
		out.Files = append(out.Files, fr.File)
		tally.add(fr.File)
		out.Summary.AddReports(fr.File)
		if fr.Failed() && !slices.Contains(failed, absPath(cfg.StartDir, fr.Path)) {
			failed = append(failed, absPath(cfg.StartDir, fr.Path))
		}
	}
	stopStatus()

	s := &out.Summary
	tally.count(s)
	s.Interrupted = ctx.Err() != nil
	if !r.repeating() {
		s.NotRun = len(cfg.Files) - r.finished
	} else {
		s.NotRun = len(cfg.Files) - len(tally.order) - len(helpers)
		if cfg.Console != nil {
			cfg.Console.Runs(tally.lines())
		}
	}
	s.Duration = time.Since(r.start)
	s.RunDir = cfg.RunDir.Path
	if cfg.Console != nil {
		cfg.Console.Finish(*s, out.Files)
	}
	status := "ok"
	if !s.OK() {
		status = "FAIL"
	}
	cfg.Emit(result.Event{Kind: result.RunFinished, Status: status, Duration: s.Duration, Summary: s})
	slices.Sort(failed) // completion order varies; the record should not
	return out, cfg.RunDir.Finish(failed, !s.Interrupted)
}

// run is the state of one Run.
type run struct {
	cfg    Config
	exec   Executor
	logs   []string // log path of each file
	start  time.Time
	failed atomic.Bool // a file has failed: --fail-fast stops dispatching

	mu                       sync.Mutex
	queued, running, settled int // for the status line
	finished                 int // files that ran to the end, helpers included
}

// repeating reports whether files run more than once.
func (r *run) repeating() bool { return r.cfg.Repeat > 1 || r.cfg.UntilFail }

// total is how many runs of files the run makes; 0 for no bound.
func (r *run) total() int {
	switch {
	case r.cfg.Repeat > 1:
		return r.cfg.Repeat * len(r.cfg.Files)
	case r.cfg.UntilFail:
		return 0
	}
	return len(r.cfg.Files)
}

// job is one run of one file.
type job struct {
	file int // index in cfg.Files
	run  int // 1-based with --repeat, else 0
}

// jobAt is the i-th run: all files, in order, round after round.
func (r *run) jobAt(i int) (job, bool) {
	n := len(r.cfg.Files)
	if n == 0 || (r.total() > 0 && i >= r.total()) {
		return job{}, false
	}
	j := job{file: i % n}
	if r.repeating() {
		j.run = i/n + 1
	}
	return j, true
}

// fileRun is one file's run as the collector sees it.
type fileRun struct {
	*result.File
	helper      bool // passed without a test or a VM: silent
	interrupted bool // cancelled by the end of the run: not counted
}

// dispatch starts the files in order, at most cfg.Parallel at once, and
// closes results when every started file has reported.
func (r *run) dispatch(ctx context.Context, results chan<- fileRun) {
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		close(results)
	}()
	var slots chan struct{}
	if r.cfg.Parallel > 0 {
		slots = make(chan struct{}, r.cfg.Parallel)
	}
	for i := 0; ; i++ {
		j, ok := r.jobAt(i)
		if !ok {
			return
		}
		if slots != nil {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
		// A failing file marks the run before giving up its slot, so
		// the file after it sees the failure and never starts.
		if ctx.Err() != nil || (r.cfg.FailFast && r.failed.Load()) {
			return
		}
		r.update(func() { r.queued--; r.running++ })
		wg.Go(func() {
			fr := r.runFile(ctx, j)
			// Count the file out before its slot goes to the next one,
			// so the status line never shows more than -p running.
			r.update(func() {
				r.running--
				r.settled++
				if !fr.interrupted {
					r.finished++
				}
			})
			// Hand the result over before the slot, so that with -p 1
			// files are reported in the order they ran.
			results <- fr
			if slots != nil {
				<-slots
			}
		})
	}
}

// runFile runs one file with its log and timeout.
func (r *run) runFile(ctx context.Context, j job) fileRun {
	path := r.cfg.Files[j.file]
	log := r.logs[j.file]
	if j.run > 0 {
		log = strings.TrimSuffix(log, ".log") + fmt.Sprintf(".run%d.log", j.run)
	}
	started := time.Now()
	r.cfg.Emit(result.Event{Kind: result.FileStarted, File: path, Run: j.run, Time: started})
	emit := func(e result.Event) {
		e.File = path // the harness knows the file by its absolute path
		e.Run = j.run
		r.cfg.Emit(e)
	}

	var res *result.File
	logFile, err := createLog(log)
	if err != nil {
		res = failure(fmt.Sprintf("cannot create the file's log: %v", err))
	} else {
		fmt.Fprintf(logFile, "provium: %s, started %s\n\n", path, started.Format(time.RFC3339))
		res = r.execute(ctx, path, &syncWriter{w: logFile}, emit)
	}
	if res.Duration == 0 {
		res.Duration = time.Since(started)
	}
	res.Path, res.Started, res.Run = path, started, j.run
	fr := fileRun{File: res}
	fr.helper = res.Status == result.Passed && !res.Touched && len(res.Subtests) == 0
	// Only a failure can be the interrupt's doing; a file that passed
	// did finish.
	fr.interrupted = ctx.Err() != nil && res.Status != result.Passed
	if fr.Failed() && !fr.interrupted {
		r.failed.Store(true) // as soon as known, for --fail-fast
	}

	if logFile != nil {
		// The log ends with the report, so it stands alone.
		fmt.Fprintln(logFile, "\n--- result ---")
		report.WriteBlock(logFile, fr.File, report.Verbose)
		logFile.Close()
		if res.Status == result.Failed || r.cfg.KeepLogs {
			fr.Log = log
		} else {
			os.Remove(log)
		}
	}

	ev := result.Event{Kind: result.FileFinished, File: path, Run: j.run, Status: res.Status.String(), Duration: res.Duration, Log: fr.Log}
	switch {
	case fr.interrupted:
		ev.Status, ev.Message = "interrupted", "the run was interrupted"
	case fr.helper:
		ev.Message = "no test and no VM: a helper file, not counted"
	case res.Failure != nil:
		ev.Message, ev.Location = res.Failure.Message, res.Failure.Location
		if g := res.Failure.Guest; g != nil {
			ev.Console = result.Tail(g.Console)
		}
	}
	r.cfg.Emit(ev)
	return fr
}

// execute calls the executor under the file's timeout and pool scope. It
// turns a panic into a failure, and gives up on an executor that does not
// return within the grace period after its context ended.
func (r *run) execute(ctx context.Context, path string, log io.Writer, emit func(result.Event)) *result.File {
	fctx, cancel := ctx, context.CancelFunc(func() {})
	if r.cfg.Timeout > 0 {
		fctx, cancel = context.WithTimeout(ctx, r.cfg.Timeout)
	}
	defer cancel()
	fctx, endScope := pool.Scope(fctx)
	defer endScope() // whatever the file held goes back to the pool

	ch := make(chan *result.File, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				res := failure(fmt.Sprintf("internal error: panic: %v", v))
				res.Failure.Traceback = string(debug.Stack())
				ch <- res
			}
		}()
		ch <- r.exec(fctx, path, log, emit)
	}()

	var res *result.File
	select {
	case res = <-ch:
	case <-fctx.Done():
		grace := time.NewTimer(r.cfg.grace)
		defer grace.Stop()
		select {
		case res = <-ch:
		case <-grace.C:
			res = failure(fmt.Sprintf("the file did not stop within %v of being cancelled", r.cfg.grace))
		}
	}
	if res == nil {
		res = failure("internal error: the file produced no result")
	}
	if ctx.Err() == nil && fctx.Err() == context.DeadlineExceeded && res.Status != result.Passed {
		timedOut(res, r.cfg.Timeout)
	}
	return res
}

// timedOut makes res say first that the file ran out of time: what failed
// when its context ended is a consequence, shown after.
func timedOut(res *result.File, d time.Duration) {
	msg := fmt.Sprintf("timed out after %v", d)
	res.Status = result.Failed
	if res.Failure == nil {
		res.Failure = &result.Failure{Message: msg}
		return
	}
	f := *res.Failure
	f.Message = msg + ": " + f.Message
	res.Failure = &f
}

func failure(msg string) *result.File {
	return &result.File{Status: result.Failed, Touched: true, Failure: &result.Failure{Message: msg}}
}

// createLog creates a file's log, readable by the user alone: it holds
// guest output.
func createLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
}

// syncWriter serializes writes to a file's log: the harness writes console
// output and the call trace from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
