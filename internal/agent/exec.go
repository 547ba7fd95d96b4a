package agent

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire"
)

const (
	// maxExecOutput bounds stdout and stderr of one exec; beyond it
	// output is discarded, so both fit in one reply.
	maxExecOutput = 64 << 20
	// outputGrace is how long a command's output pipes stay open after
	// the shell exits. A command that leaves a daemon holding them
	// ("daemon &") must still return.
	outputGrace = 250 * time.Millisecond
	// maxTimeout bounds timeouts from the host so durations cannot
	// overflow.
	maxTimeout = 1 << 40 // ms, about 35 years
)

// command prepares /bin/sh -c req.Cmd in a process group of its own, so
// that a timeout or a kill reaches everything it started. It must be
// started on the identity's thread: Go forks from the calling thread, and
// the child inherits that thread's credentials. Descriptors opened by the
// test through raw system calls are not close-on-exec and so are inherited,
// like in a forked shell; the agent's own are all close-on-exec.
func command(req wire.Exec) (*exec.Cmd, error) {
	if req.TimeoutMs < 0 || req.TimeoutMs > maxTimeout {
		return nil, fmt.Errorf("timeout of %d ms is out of range: %w", req.TimeoutMs, wire.ErrMalformed)
	}
	cmd := exec.Command("/bin/sh", "-c", req.Cmd)
	cmd.Env = append(os.Environ(), req.Env...)
	cmd.Dir = req.Cwd
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = outputGrace
	return cmd, nil
}

// start starts cmd. When it fails, a missing working directory is named:
// Go reports it as if the shell were missing.
func start(cmd *exec.Cmd) error {
	err := cmd.Start()
	if err != nil && cmd.Dir != "" {
		if _, serr := os.Stat(cmd.Dir); serr != nil {
			return fmt.Errorf("working directory: %w", serr)
		}
	}
	return err
}

func (id *identity) exec(r request) (*wire.Message, error) {
	m := r.msg
	var req wire.Exec
	if err := m.Decode(&req); err != nil {
		return nil, err
	}
	cmd, err := command(req)
	if err != nil {
		return nil, fmt.Errorf("exec %q: %w", req.Cmd, err)
	}
	if stdin := m.Blob(0); len(stdin) > 0 {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	stdout, stderr := newCappedBuffer(maxExecOutput), newCappedBuffer(maxExecOutput)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := start(cmd); err != nil {
		return nil, fmt.Errorf("exec %q: %w", req.Cmd, err)
	}
	pgid := cmd.Process.Pid
	id.trackCommand(pgid, true)
	defer id.trackCommand(pgid, false)
	if !id.proc.live(r.session) {
		// A new session began after serve checked this request and
		// before the command was tracked, so endSession missed it.
		killGroup(pgid)
	}

	var timedOut atomic.Bool
	if req.TimeoutMs > 0 {
		t := time.AfterFunc(time.Duration(req.TimeoutMs)*time.Millisecond, func() {
			timedOut.Store(true)
			killGroup(pgid)
		})
		defer t.Stop()
	}
	cmd.Wait() // a failing command is a result; its state is in ProcessState
	if cmd.ProcessState == nil {
		return nil, fmt.Errorf("exec %q: no exit status", req.Cmd)
	}
	res := exitResult(cmd.ProcessState)
	if timedOut.Load() && res.Signal == int(unix.SIGKILL) {
		res.TimedOut = true
	}
	return wire.Reply(m.ID, res, stdout.Bytes(), stderr.Bytes())
}

// trackCommand records the process groups of commands in flight, so that a
// new session can kill what an abandoned one left running.
func (id *identity) trackCommand(pgid int, running bool) {
	id.mu.Lock()
	defer id.mu.Unlock()
	if running {
		id.commands[pgid] = true
	} else {
		delete(id.commands, pgid)
	}
}

func (id *identity) killCommands() {
	id.mu.Lock()
	defer id.mu.Unlock()
	for pgid := range id.commands {
		killGroup(pgid)
	}
}

// killGroup kills a command and everything it started in its group.
func killGroup(pgid int) {
	if pgid > 0 {
		unix.Kill(-pgid, unix.SIGKILL)
	}
}

// exitResult describes how a command ended; a signal counts as 128+signal,
// as in a shell.
func exitResult(ps *os.ProcessState) wire.ExecResult {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		sig := int(ws.Signal())
		return wire.ExecResult{ExitCode: 128 + sig, Signal: sig}
	}
	return wire.ExecResult{ExitCode: ps.ExitCode()}
}

// cappedBuffer keeps the first limit bytes written to it and discards the
// rest without failing the writer, which would kill the command with
// SIGPIPE. It may be read while being written.
type cappedBuffer struct {
	mu    sync.Mutex
	buf   []byte
	limit int
}

func newCappedBuffer(limit int) *cappedBuffer { return &cappedBuffer{limit: limit} }

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(len(p), b.limit-len(b.buf))
	b.buf = append(b.buf, p[:n]...)
	return len(p), nil
}

// Bytes returns a copy of what was kept so far.
func (b *cappedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf)
}
