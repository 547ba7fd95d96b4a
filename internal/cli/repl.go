package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/provium/provium/internal/attach"
	"github.com/provium/provium/internal/luaapi"
	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/network"
	"github.com/provium/provium/internal/repl"
	"github.com/provium/provium/internal/report"
	"github.com/provium/provium/internal/termlink"
)

func init() {
	register("repl", "a Lua prompt with the whole API and a running VM", runREPL)
}

const replUsage = `Usage: provium repl [options] [PROFILE | --fixture NAME | FILE.lua]

Opens a Lua prompt with Provium's whole API and a running VM in the
global vm: a VM of PROFILE (default: the built-in "default"), the VM of
a fixture (--fixture NAME), or, with a test file, the first VM the
file's top level starts. A test file's top level (its shared setup)
runs first; its sub-tests do not, and each is a function in the table
tests, by name: tests["name"]() runs it and returns its outcome.

An expression's values are printed as assertions show them: strings
quoted with binary bytes escaped, tables expanded. A chunk may span
lines: the prompt reads on while it is unfinished. ^C drops the line
being typed or stops the running one; ^D ends the prompt and the VMs
it started. History is kept in $XDG_STATE_HOME/provium/repl-history.

Without a terminal, standard input is read as chunks, values printed
as they come; the exit status is 1 if a chunk failed.

Options:
  --fixture NAME   resume fixture NAME, built if needed
  --gdb            start QEMU's gdbstub on a free local port and print
                   the gdb command line
  --gdb-wait       as --gdb, and keep the CPUs stopped until gdb
                   continues them
  --console        show the guest's console as it prints
`

type replOptions struct {
	target vmTarget
	file   string // a test file to run first
	debug  debugFlags
}

func parseREPLArgs(args []string) (replOptions, error) {
	var o replOptions
	fs := flag.NewFlagSet("repl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var fixture string
	fs.StringVar(&fixture, "fixture", "", "")
	o.debug.register(fs)
	if err := fs.Parse(args); err != nil {
		return o, flagError(fs, err)
	}
	rest := fs.Args()
	if len(rest) == 1 && strings.HasSuffix(rest[0], ".lua") {
		if fixture != "" {
			return o, errors.New("a test file and --fixture do not go together")
		}
		o.file = rest[0]
		rest = nil
	}
	t, err := targetArgs(rest, fixture)
	o.target = t
	return o, err
}

func runREPL(args []string) int {
	opts, err := parseREPLArgs(args)
	if errors.Is(err, errHelp) {
		io.WriteString(os.Stdout, replUsage)
		return exitOK
	}
	if err != nil {
		return usageError(os.Stderr, "repl", err)
	}
	wd, err := os.Getwd()
	if err != nil {
		return usageError(os.Stderr, "repl", err)
	}
	interactive := termlink.IsTerminal(os.Stdin)
	var out io.Writer = os.Stdout
	if interactive {
		// The prompt keeps the terminal raw.
		out = repl.RawWriter(os.Stdout)
	}
	file, err := sessionFile(wd, opts.target, opts.file)
	if err != nil {
		return usageError(os.Stderr, "repl", err)
	}
	s, err := openSession("repl", wd, file, os.Stderr, opts.debug.harnessConfig(notes(interactive)))
	if err != nil {
		return usageError(os.Stderr, "repl", err)
	}
	ctx, stopSignals := interruptible(context.Background(), func(os.Signal) {})
	defer stopSignals()

	chunkName := "repl"
	if opts.file != "" {
		chunkName = displayPath(wd, file)
	}
	ls := luaapi.NewSession(ctx, luaapi.Options{
		Path: chunkName, StartDir: wd, Host: s.host, Log: s.log,
		Print: func(line string) { fmt.Fprintln(out, line) },
	})
	failed := false
	defer func() {
		ls.Close()
		s.end(failed)
	}()

	var tests []string
	if opts.file != "" {
		if tests, err = ls.RunFile(ctx, file); err != nil {
			showEvalError(os.Stderr, err)
			failed = true
			return exitFail
		}
	}
	vmName, err := ls.Ready(ctx, opts.target.fixture, opts.target.profile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "provium repl: %v\n", err)
		failed = true
		return exitFail
	}

	if !interactive {
		if ok, err := repl.RunPiped(ctx, os.Stdin, os.Stdout, ls, showEvalError); err != nil || !ok {
			if err != nil {
				fmt.Fprintf(os.Stderr, "provium repl: %v\n", err)
			}
			return exitFail
		}
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "provium repl: vm is %s; ^D ends, ^C stops a line\n", vmName)
	if len(tests) > 0 {
		fmt.Fprintf(os.Stderr, "  sub-tests of %s, not run: tests[\"NAME\"]() runs one:\n    %s\n", chunkName, strings.Join(tests, "\n    "))
	}
	t, err := termlink.Open(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "provium repl: %v\n", err)
		failed = true
		return exitFail
	}
	defer t.Restore()
	err = repl.Run(ctx, repl.Terminal{In: os.Stdin, Out: out, Width: func() int { return int(t.Size().Cols) }},
		ls, repl.Options{History: historyFile(), ShowError: showEvalError})
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(out, "provium repl: %v\n", err)
		failed = true
		return exitFail
	}
	return exitOK
}

// showEvalError writes a chunk's error: its message and, when it came
// from a guest, what the guest showed.
func showEvalError(w io.Writer, err error) {
	var ee *luaapi.EvalError
	if errors.As(err, &ee) {
		report.WriteFailure(w, ee.Failure)
		return
	}
	fmt.Fprintf(w, "error: %v\n", err)
}

// historyFile is where the prompt keeps its history; "" when there is no
// place for it.
func historyFile() string {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".local", "state")
	}
	dir = filepath.Join(dir, "provium")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ""
	}
	return filepath.Join(dir, "repl-history")
}

// attachedREPL serves provium attach --repl: a Lua prompt of its own
// whose vm is the paused VM.
func attachedREPL(startDir string) attach.REPL {
	return func(ctx context.Context, vm *machine.VM, in io.Reader, out io.Writer, width func() int) error {
		out = repl.RawWriter(out)
		ls := luaapi.NewSession(ctx, luaapi.Options{
			Path: "repl", StartDir: startDir, Host: pausedHost{},
			Print: func(line string) { fmt.Fprintln(out, line) },
		})
		defer ls.Close()
		ls.Bind("vm", vm)
		fmt.Fprintf(out, "provium: vm is %s, as the failure left it; ^D lets the run go on\n", vm.Name())
		return repl.Run(ctx, repl.Terminal{In: in, Out: out, Width: width}, ls, repl.Options{ShowError: showEvalError})
	}
}

// pausedHost is the host of a prompt on a paused test: it works on the
// test's VMs and makes none of its own.
type pausedHost struct{}

var errPausedHost = errors.New("not in a prompt on a paused test: it works on the test's VMs")

func (pausedHost) Create(string) (luaapi.Machine, error) { return nil, errPausedHost }

func (pausedHost) Fixture(context.Context, string) (*luaapi.Resumed, error) {
	return nil, errPausedHost
}

func (pausedHost) Network(string) (*network.Network, error) { return nil, errPausedHost }
