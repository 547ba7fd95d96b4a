package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/provium/provium/internal/attach"
	"github.com/provium/provium/internal/harness"
	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/pool"
	"github.com/provium/provium/internal/printable"
	"github.com/provium/provium/internal/report"
	"github.com/provium/provium/internal/result"
	"github.com/provium/provium/internal/runner"
	"github.com/provium/provium/internal/termlink"
)

func init() {
	register("test", "run test files (a directory is walked recursively)", runTest)
}

// autoReserveMiB is what auto mode keeps free for the host (SPEC §8).
const autoReserveMiB = 1536

const testUsage = `Usage: provium test [options] <path>...

Runs the Lua test files under each path: a directory is walked recursively,
skipping directories named "fixtures"; files run in path order, several at
once, and each is reported as it completes.

Options:
  -p N             run N files at once (default: half the CPUs, at least 2;
                   unlimited with --mem or --cpus)
  -f PATTERN       only files whose path contains PATTERN; repeatable
  --fail-fast      start no new file after the first failure
  --rerun-failed   run only the files that failed in the last run
  --timeout DUR    time limit of each file, e.g. 90s, 10m, or seconds
                   (default 5m; 0 for none)
  --mem SIZE       fixed pool: memory all VMs share, e.g. 8G or 4096 (MiB)
  --cpus N         fixed pool: CPUs all VMs share
  --shard K/N      run only the K-th of N deterministic slices of the files
  --list           print the files that would run, and exit
  --repeat N       run each file N times, reusing fixtures; report how many
                   runs of each passed (to find flaky tests)
  --until-fail     stop after the first failing run; with --repeat, at
                   most N runs of each file, else until a run fails
  --junit FILE     also write a JUnit XML report to FILE
  --json           print one JSON event per line instead of the report
  -v               also show the sub-tests of passing files; keep all logs
  -q               show only failed files and the summary
  --no-cache       build fixtures afresh instead of using the fixture cache
  --pause-on-failure
                   when a sub-test fails, keep the file's VMs running and
                   wait: "provium attach RUN/FILE [VM]" from another
                   terminal opens a shell in one; Enter here or the end
                   of that shell lets the run go on. Needs a terminal;
                   files have no time limit then
  --gdb            start QEMU's gdbstub in every VM of the files and
                   print the gdb command line of each
  --gdb-wait       as --gdb, and keep each VM's CPUs stopped until gdb
                   continues them
  --console        show every VM's console as it prints, labelled

With -v, print() of the files shows as it happens, labelled by file.

Without --mem and --cpus, each boot waits until the host's available memory
minus a 1.5 GB reserve fits the VM. Logs go to a new directory under
$TMPDIR/provium-runs-<uid> (default /tmp), the user's alone; those of
failed files are kept.

Exit status: 0 all files passed, 1 a file failed, 2 usage or configuration
error, 130 interrupted.
`

func runTest(args []string) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(os.Stderr, "provium test: %v\n", err)
		return exitUsage
	}
	env := testEnv{
		stdout:   os.Stdout,
		stderr:   os.Stderr,
		startDir: wd,
		runsBase: runner.DefaultBase(),
		start:    startHarness,
	}
	if termlink.IsTerminal(os.Stdin) {
		env.stdin = os.Stdin
	}
	return env.run(args)
}

// startHarness makes the per-file executor of a real run.
func startHarness(cfg harness.Config) (runner.Executor, func(), error) {
	h, err := harness.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	return h.RunFile, h.Close, nil
}

// testEnv is what the test command needs from the world; tests replace it.
type testEnv struct {
	stdout, stderr io.Writer
	startDir       string // where provium started
	runsBase       string // parent of the run directories
	// start returns the executor of the files and what kills the VMs
	// still running at the end.
	start func(harness.Config) (runner.Executor, func(), error)
	// ctx, if set, is the run's context; else SIGINT and SIGTERM
	// interrupt the run.
	ctx context.Context
	// stdin is the terminal a paused run waits on; nil when standard
	// input is not one.
	stdin io.Reader
}

// testOptions are the parsed arguments of provium test.
type testOptions struct {
	paths       []string
	parallel    int
	parallelSet bool
	filters     []string
	failFast    bool
	rerunFailed bool
	memMiB      int
	cpus        int
	timeout     time.Duration
	junit       string
	json        bool
	verbose     bool
	quiet       bool
	shard       runner.Shard
	list        bool
	noCache     bool
	repeat      int
	untilFail   bool
	pause       bool
	debug       debugFlags
}

func (env testEnv) run(args []string) int {
	opts, err := parseTestArgs(args)
	if errors.Is(err, errHelp) {
		io.WriteString(env.stdout, testUsage)
		return exitOK
	}
	if err != nil {
		return usageError(env.stderr, "test", err)
	}

	files, code, ok := env.selectFiles(opts)
	if !ok {
		return code
	}
	if opts.pause && env.stdin == nil {
		return usageError(env.stderr, "test", errors.New("--pause-on-failure needs a terminal to wait on: standard input is not one"))
	}
	if opts.pause {
		opts.timeout = 0 // a person is looking
	}
	if opts.list {
		for _, f := range files {
			fmt.Fprintln(env.stdout, f)
		}
		return exitOK
	}

	runDir, err := runner.NewRunDir(env.runsBase, time.Now())
	if err != nil {
		return usageError(env.stderr, "test", err)
	}

	p := pool.NewAuto(autoReserveMiB)
	if opts.memMiB > 0 || opts.cpus > 0 {
		p = pool.NewFixed(opts.memMiB, opts.cpus)
	}
	var console *report.Console
	if !opts.json {
		v := report.Normal
		switch {
		case opts.verbose:
			v = report.Verbose
		case opts.quiet:
			v = report.Quiet
		}
		console = report.NewConsole(env.stdout, v)
	}
	note := func(format string, args ...any) { fmt.Fprintf(env.stderr, format, args...) }
	if console != nil {
		note = console.Printf
	}
	hcfg := harness.Config{
		StartDir:     env.startDir,
		RunDir:       runDir.Path,
		Pool:         p,
		NoCache:      opts.noCache,
		BuildTimeout: opts.timeout,
		Standbys:     opts.standbys(),
		Notes:        env.stderr,
		Debug:        opts.debug.machineDebug(note),
	}
	if opts.verbose && console != nil {
		hcfg.Print = func(file, line string) {
			note("  [%s] %s\n", displayPath(env.startDir, file), printable.Line(line))
		}
	}
	if opts.debug.console {
		hcfg.Console = func(file, vm, line string) {
			note("  [%s %s] %s\n", displayPath(env.startDir, file), vm, printable.Line(line))
		}
	}
	if opts.pause {
		srv, err := attach.Listen(runDir.Path, attachedREPL(env.startDir))
		if err != nil {
			os.RemoveAll(runDir.Path)
			return usageError(env.stderr, "test", err)
		}
		defer srv.Close()
		hcfg.OnFailure = pauser(srv, runDir.Path, env.startDir, env.stdin, note)
	}
	exec, stop, err := env.start(hcfg)
	if err != nil {
		os.RemoveAll(runDir.Path)
		return usageError(env.stderr, "test", err)
	}
	defer stop()

	var junit *os.File
	if opts.junit != "" {
		// Opened now, so that a bad path fails before the run, not after.
		if junit, err = os.Create(opts.junit); err != nil {
			os.RemoveAll(runDir.Path)
			return usageError(env.stderr, "test", fmt.Errorf("--junit: %w", err))
		}
		defer junit.Close()
	}

	cfg := runner.Config{
		StartDir:  env.startDir,
		Files:     files,
		Parallel:  opts.parallelism(),
		FailFast:  opts.failFast,
		Timeout:   opts.timeout,
		RunDir:    runDir,
		KeepLogs:  opts.verbose,
		Repeat:    opts.repeat,
		UntilFail: opts.untilFail,
		Status:    func() string { return p.Usage().String() },
	}
	var events *report.JSON
	if opts.json {
		events = report.NewJSON(env.stdout)
		cfg.Emit = events.Emit
	} else {
		cfg.Console = console
	}

	ctx := env.ctx
	if ctx == nil {
		var stopSignals func()
		ctx, stopSignals = interruptible(context.Background(), func(s os.Signal) {
			note := fmt.Sprintf("provium: %v: stopping; once more to quit at once\n", s)
			if cfg.Console != nil {
				cfg.Console.Printf("%s", note)
			} else {
				fmt.Fprint(env.stderr, note)
			}
		})
		defer stopSignals()
	}

	out, err := runner.Run(ctx, cfg, exec)
	if err != nil {
		fmt.Fprintf(env.stderr, "provium test: %v\n", err)
	}
	code = out.ExitCode()
	if events != nil && events.Err() != nil {
		fmt.Fprintf(env.stderr, "provium test: writing events: %v\n", events.Err())
		code = max(code, exitFail)
	}
	if junit != nil {
		if err := report.WriteJUnit(junit, out.Files); err != nil {
			fmt.Fprintf(env.stderr, "provium test: --junit %s: %v\n", opts.junit, err)
			code = max(code, exitFail)
		}
	}
	return code
}

// parallelism is -p, or its default: half the CPUs and at least 2 in auto
// mode, unlimited (0) with a fixed pool, which gates boots by itself.
func (o testOptions) parallelism() int {
	switch {
	case o.parallelSet:
		return o.parallel
	case o.memMiB > 0 || o.cpus > 0:
		return 0
	}
	return max(2, runtime.NumCPU()/2)
}

// standbys is how many QEMUs the run keeps ready for the next resumes of
// a template fixture: one for each file that runs at once, and a few
// when the pool alone decides how many do.
func (o testOptions) standbys() int {
	if n := o.parallelism(); n > 0 {
		return min(n, 4)
	}
	return 2
}

// selectFiles finds the files to run: discovered or from the last run,
// then filtered and sharded. When !ok, the command ends with code.
func (env testEnv) selectFiles(opts testOptions) (files []string, code int, ok bool) {
	var err error
	if opts.rerunFailed {
		files, err = env.lastFailed(opts)
		if err != nil {
			return nil, usageError(env.stderr, "test", err), false
		}
		files = runner.Filter(files, opts.filters)
		if len(files) == 0 {
			fmt.Fprintln(env.stdout, "no failed files in the last run")
			return nil, exitOK, false
		}
	} else {
		files, err = runner.Discover(env.startDir, opts.paths)
		if err != nil {
			return nil, usageError(env.stderr, "test", err), false
		}
		if len(files) == 0 {
			return nil, usageError(env.stderr, "test", fmt.Errorf("no test files in %s", strings.Join(opts.paths, " "))), false
		}
		files = runner.Filter(files, opts.filters)
		if len(files) == 0 {
			return nil, usageError(env.stderr, "test", fmt.Errorf("no test file matches -f %s", strings.Join(opts.filters, ", -f "))), false
		}
	}
	// An empty shard still runs, to report zero files (and write an
	// empty JUnit file): a suite can be smaller than its CI matrix.
	return opts.shard.Select(files), exitOK, true
}

// lastFailed returns the files that failed in the last run that still
// exist, limited to those under opts.paths if any were given.
func (env testEnv) lastFailed(opts testOptions) ([]string, error) {
	failed, err := runner.LastFailed(env.runsBase)
	if err != nil {
		return nil, fmt.Errorf("--rerun-failed: %w", err)
	}
	var roots []string
	for _, p := range opts.paths {
		if !filepath.IsAbs(p) {
			p = filepath.Join(env.startDir, p)
		}
		roots = append(roots, filepath.Clean(p))
	}
	var keep []string
	for _, f := range failed {
		if len(roots) > 0 && !under(f, roots) {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			fmt.Fprintf(env.stderr, "provium test: skipping %s from the last run: %v\n", f, err)
			continue
		}
		keep = append(keep, f)
	}
	return runner.Discover(env.startDir, keep)
}

// under reports whether path is one of roots or inside one.
func under(path string, roots []string) bool {
	for _, r := range roots {
		if path == r || strings.HasPrefix(path, r+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// displayPath is file as the report shows it: relative to where provium
// started, when inside it.
func displayPath(startDir, file string) string {
	if rel, err := filepath.Rel(startDir, file); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return file
}

// pauser is the OnFailure of --pause-on-failure: the file waits, VMs
// running, until Enter on stdin or the end of an attached shell.
func pauser(srv *attach.Server, runDir, startDir string, stdin io.Reader, note func(string, ...any)) func(context.Context, string, result.Subtest, []*machine.VM) {
	enter := make(chan struct{})
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := stdin.Read(buf)
			for range strings.Count(string(buf[:n]), "\n") {
				select {
				case enter <- struct{}{}:
				default: // nothing paused: typed ahead, dropped
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return func(ctx context.Context, file string, st result.Subtest, vms []*machine.VM) {
		shown := displayPath(startDir, file)
		srv.Pause(ctx, shown, vms, enter, func() {
			var names []string
			for _, v := range vms {
				names = append(names, v.Name())
			}
			msg := "failed"
			if st.Failure != nil {
				msg = st.Failure.Message
			}
			note("\n  PAUSED: %s · %s: %s\n", shown, printable.Line(st.Name), printable.Line(msg))
			if len(vms) == 0 {
				note("    no VM of the file is running; press Enter to go on\n")
				return
			}
			note("    VMs running: %s\n    to get in:  provium attach %s/%s [VM]\n    press Enter here (or leave that shell) to go on\n",
				strings.Join(names, ", "), runDir, shown)
		})
	}
}
