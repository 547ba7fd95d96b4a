package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/provium/provium/internal/attach"
	"github.com/provium/provium/internal/runner"
	"github.com/provium/provium/internal/termlink"
)

func init() {
	register("attach", "open a shell (or a Lua prompt) in a VM of a test paused by --pause-on-failure", runAttach)
}

const attachUsage = `Usage: provium attach [--repl] RUN/FILE [VM]

Opens a shell in a VM of the test file FILE that run RUN holds paused
(provium test --pause-on-failure prints the exact command). RUN is the
run's directory or its name (run-...); VM defaults to the file's first
running VM. With --repl, a Lua prompt whose vm is that VM opens
instead (see provium repl). When the shell or prompt ends, the paused
run goes on.
`

func runAttach(args []string) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		io.WriteString(os.Stdout, attachUsage)
		return exitOK
	}
	repl := len(args) > 0 && args[0] == "--repl"
	if repl {
		args = args[1:]
	}
	if len(args) < 1 || len(args) > 2 {
		return usageError(os.Stderr, "attach", errors.New("want [--repl] RUN/FILE [VM]"))
	}
	runDir, file, err := splitRunFile(args[0])
	if err != nil {
		return usageError(os.Stderr, "attach", err)
	}
	vm := ""
	if len(args) == 2 {
		vm = args[1]
	}
	if !termlink.IsTerminal(os.Stdin) {
		return usageError(os.Stderr, "attach", errors.New("standard input is not a terminal"))
	}
	t, err := termlink.Open(os.Stdin, os.Stdout)
	if err != nil {
		return usageError(os.Stderr, "attach", err)
	}
	conn, name, err := attach.Dial(runDir, file, vm, repl, t.Size(), os.Getenv("TERM"))
	if err != nil {
		t.Restore()
		fmt.Fprintf(os.Stderr, "provium attach: %v\n", err)
		return exitFail
	}
	if !repl {
		fmt.Fprintf(os.Stdout, "provium: attached to %s of %s; exit or ^D to let the run go on\r\n", name, file)
	}
	st, err := termlink.Run(context.Background(), conn, termlink.Local{In: os.Stdin, Out: os.Stdout, Sizes: t.Sizes()})
	t.Restore()
	if err != nil {
		fmt.Fprintf(os.Stderr, "provium attach: %v\n", err)
		return exitFail
	}
	return st.ExitCode
}

// splitRunFile reads RUN/FILE: the run's directory (a path, or a name
// under the run directories) and the file as the report names it.
func splitRunFile(arg string) (runDir, file string, err error) {
	abs := arg
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(runner.DefaultBase(), arg)
	}
	// The run directory is the longest prefix with an attach socket or
	// a run directory's name.
	for d := filepath.Dir(abs); d != "/" && d != "."; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, attach.SocketName)); err == nil || strings.HasPrefix(filepath.Base(d), "run-") {
			rel, _ := filepath.Rel(d, abs)
			return d, rel, nil
		}
	}
	return "", "", fmt.Errorf("%s: want RUN/FILE, RUN a run directory (run-...)", arg)
}
