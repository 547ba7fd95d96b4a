package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/provium/provium/internal/client"
	"github.com/provium/provium/internal/linuxabi"
	"github.com/provium/provium/internal/luaapi"
	"github.com/provium/provium/internal/termlink"
	"github.com/provium/provium/internal/wire"
)

func init() {
	register("shell", "boot a VM (or resume a fixture) and open a shell in it", runShell)
}

const shellUsage = `Usage: provium shell [options] [PROFILE]

Boots a VM of PROFILE (default: the built-in "default"), or resumes a
fixture, and opens an interactive shell in it on this terminal: a real
terminal in the guest, with job control, ^C for the guest's foreground
process and the window's size. "exit" or ^D ends it, and the VM with it.

Without a terminal (standard input piped), the input is run as a script
by the guest's /bin/sh; its output and exit status are the command's.

Options:
  --fixture NAME   resume fixture NAME, built if needed: fixtures/NAME.lua
                   in this directory, else the only one below it; or
                   the script's path
  --as UID[:GID]   open the shell as another identity: a worker with
                   those credentials (GID defaults to UID)
  --gdb            start QEMU's gdbstub on a free local port and print
                   the gdb command line
  --gdb-wait       as --gdb, and keep the CPUs stopped until gdb
                   continues them
  --console        show the guest's console as it prints

Exit status: the shell's, or 2 for a usage error and 1 when the VM did
not start.
`

// shellOptions are the parsed arguments of provium shell.
type shellOptions struct {
	target vmTarget
	as     *identity
	debug  debugFlags
}

// identity is --as UID[:GID].
type identity struct{ uid, gid uint32 }

func parseIdentity(s string) (*identity, error) {
	u, g, hasGID := strings.Cut(s, ":")
	uid, err := strconv.ParseUint(u, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("--as %s: want UID or UID:GID, numbers", s)
	}
	gid := uid
	if hasGID {
		if gid, err = strconv.ParseUint(g, 10, 32); err != nil {
			return nil, fmt.Errorf("--as %s: want UID or UID:GID, numbers", s)
		}
	}
	return &identity{uid: uint32(uid), gid: uint32(gid)}, nil
}

func parseShellArgs(args []string) (shellOptions, error) {
	var o shellOptions
	fs := flag.NewFlagSet("shell", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var fixture string
	fs.StringVar(&fixture, "fixture", "", "")
	fs.Func("as", "", func(s string) error {
		id, err := parseIdentity(s)
		o.as = id
		return err
	})
	o.debug.register(fs)
	if err := fs.Parse(args); err != nil {
		return o, flagError(fs, err)
	}
	t, err := targetArgs(fs.Args(), fixture)
	o.target = t
	return o, err
}

func runShell(args []string) int {
	opts, err := parseShellArgs(args)
	if errors.Is(err, errHelp) {
		io.WriteString(os.Stdout, shellUsage)
		return exitOK
	}
	if err != nil {
		return usageError(os.Stderr, "shell", err)
	}
	wd, err := os.Getwd()
	if err != nil {
		return usageError(os.Stderr, "shell", err)
	}
	interactive := termlink.IsTerminal(os.Stdin)
	file, err := sessionFile(wd, opts.target, "")
	if err != nil {
		return usageError(os.Stderr, "shell", err)
	}
	s, err := openSession("shell", wd, file, os.Stderr, opts.debug.harnessConfig(notes(interactive)))
	if err != nil {
		return usageError(os.Stderr, "shell", err)
	}
	ctx, stopSignals := interruptible(context.Background(), func(os.Signal) {})
	defer stopSignals()
	m, err := s.start(ctx, opts.target)
	if err != nil {
		fmt.Fprintf(os.Stderr, "provium shell: %s: %v\n", opts.target, err)
		s.end(true)
		return exitFail
	}
	code, err := shellIn(ctx, m, opts.as, interactive)
	if err != nil {
		fmt.Fprintf(os.Stderr, "provium shell: %s: %v\n", m.Name(), err)
	}
	m.Shutdown(context.WithoutCancel(ctx))
	s.end(err != nil)
	if err != nil {
		return exitFail
	}
	return code
}

// shellIn runs the shell in m, as as when set, on this process's
// terminal, or with its piped input as the script; it returns the
// shell's exit status.
func shellIn(ctx context.Context, m luaapi.Machine, as *identity, interactive bool) (int, error) {
	a := m.Agent()
	if a == nil {
		return 0, fmt.Errorf("the VM is %s", m.State())
	}
	if as != nil {
		w, err := becomeWorker(ctx, a, *as)
		if err != nil {
			return 0, err
		}
		defer w.Close(context.WithoutCancel(ctx))
		a = w
	}
	if !interactive {
		return pipedShell(ctx, a)
	}
	t, err := termlink.Open(os.Stdin, os.Stdout)
	if err != nil {
		return 0, err
	}
	defer t.Restore()
	size := t.Size()
	p, err := a.OpenPty(ctx, nil, shellEnv(m.Name()), size.Rows, size.Cols)
	if err != nil {
		return 0, err
	}
	st, err := termlink.Run(ctx, p, termlink.Local{In: os.Stdin, Out: os.Stdout, Sizes: t.Sizes()})
	return st.ExitCode, err
}

// shellEnv is the environment of an interactive shell: the user's
// terminal type, and a prompt that says which VM it is.
func shellEnv(vm string) []string {
	term := os.Getenv("TERM")
	if term == "" || strings.ContainsAny(term, " \t\n") {
		term = "xterm"
	}
	return []string{"TERM=" + term, "PS1=[" + vm + ` \w]\$ `, "HOME=/root"}
}

// maxScript bounds a piped script: it travels in one request.
const maxScript = 16 << 20

// pipedShell runs standard input as a script of the guest's shell and
// copies its output.
func pipedShell(ctx context.Context, a *client.Agent) (int, error) {
	script, err := io.ReadAll(io.LimitReader(os.Stdin, maxScript+1))
	if err != nil {
		return 0, fmt.Errorf("reading the script: %w", err)
	}
	if len(script) > maxScript {
		return 0, fmt.Errorf("a piped script is limited to %d MiB", maxScript>>20)
	}
	r, err := a.Exec(ctx, wire.Exec{Cmd: "exec /bin/sh -s"}, script)
	if err != nil {
		return 0, err
	}
	os.Stdout.Write(r.Stdout)
	os.Stderr.Write(r.Stderr)
	return r.ExitCode, nil
}

// becomeWorker starts a thread worker of a and gives it the credentials
// id: the shell forked on its thread has them.
func becomeWorker(ctx context.Context, a *client.Agent, id identity) (*client.Agent, error) {
	uname, err := a.Exec(ctx, wire.Exec{Cmd: "uname -m"}, nil)
	if err != nil {
		return nil, fmt.Errorf("--as: %w", err)
	}
	arch, err := linuxabi.ParseArch(string(uname.Stdout))
	if err != nil {
		return nil, fmt.Errorf("--as: %w", err)
	}
	w, _, err := a.Spawn(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("--as: worker: %w", err)
	}
	calls := []struct {
		name string
		args []uint64
	}{
		{"setgroups", []uint64{0, 0}},
		{"setresgid", []uint64{uint64(id.gid), uint64(id.gid), uint64(id.gid)}},
		{"setresuid", []uint64{uint64(id.uid), uint64(id.uid), uint64(id.uid)}},
	}
	for _, c := range calls {
		nr, ok := linuxabi.SyscallNumber(arch, c.name)
		if !ok {
			w.Close(ctx)
			return nil, fmt.Errorf("--as: no %s on %s", c.name, arch)
		}
		req := wire.Syscall{Nr: int64(nr)}
		copy(req.Args[:], c.args)
		ret, _, err := w.Syscall(ctx, req, nil)
		if err == nil && ret < 0 {
			err = fmt.Errorf("errno %d", -ret)
		}
		if err != nil {
			w.Close(ctx)
			return nil, fmt.Errorf("--as %d:%d: %s: %w", id.uid, id.gid, c.name, err)
		}
	}
	return w, nil
}
