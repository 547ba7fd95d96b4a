// Package qemu starts and controls the QEMU process of one VM: it builds
// the command line from a Config and its Devices, starts QEMU so that it
// can never outlive Provium, and drives it over QMP (state queries,
// pause/resume, power-off, and snapshots as migration streams).
//
// Environment:
//
//	PROVIUM_QEMU   the QEMU binary (default qemu-system-x86_64 in $PATH)
//	PROVIUM_ACCEL  "kvm" or "tcg", instead of probing /dev/kvm (see Accel)
//
// QMP runs over a socket pair inherited by QEMU, so nothing is created on
// disk and there is no window in which another process could connect.
package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/qemu/qmp"
)

var (
	// ErrExited means QEMU is no longer running; the error that wraps it
	// is an *ExitError.
	ErrExited = errors.New("QEMU exited")
	// ErrMigration means saving or loading a snapshot failed.
	ErrMigration = errors.New("snapshot migration failed")
)

// DefaultBinary is the QEMU used when neither Config.Binary nor
// $PROVIUM_QEMU says otherwise.
const DefaultBinary = "qemu-system-x86_64"

// qmpTimeout bounds QEMU's startup up to a working QMP connection; QEMU
// greets within milliseconds, so this only catches a wedged host.
const qmpTimeout = 30 * time.Second

// Binary returns the QEMU binary to run: $PROVIUM_QEMU, else DefaultBinary.
func Binary() string {
	if b := os.Getenv("PROVIUM_QEMU"); b != "" {
		return b
	}
	return DefaultBinary
}

// Config describes one QEMU process.
type Config struct {
	Binary    string // default Binary()
	Accel     string // "kvm" or "tcg"; default Accel()
	Machine   string // default DefaultMachine
	Kernel    string
	Initrd    string
	Append    []string // extra kernel arguments, after the devices' own
	MemoryMiB int      // 0: QEMU's own default (package machine sets the VM's)
	CPUs      int      // 0: QEMU's own default
	Devices   []Device
	// Dir is the VM's runtime directory. QEMU needs none today (QMP
	// uses an inherited socket); it is kept for devices that do.
	Dir string
	// Console receives the guest's serial console (ttyS0), if set.
	Console io.Writer
	// Incoming, if set, is a snapshot written by SaveSnapshot: QEMU
	// loads it instead of booting and stays paused (see WaitIncoming).
	// The same machine (memory, devices) must be configured.
	Incoming *os.File
	// Memory, if set, holds the guest's RAM (memory-backend-file) of
	// MemoryMiB. MemoryShared maps it shared: the guest's writes reach
	// the file, as for a template being built. Otherwise it is mapped
	// privately, copy on write, and the file never changes.
	Memory       *os.File
	MemoryShared bool
	// Template says Incoming was written by SaveTemplate: it holds the
	// devices' state only, the RAM being Memory's content already.
	Template bool
	// GDB, if set, is where QEMU's gdbstub listens, e.g.
	// "tcp:127.0.0.1:1234".
	GDB string
	// Paused starts the guest with its CPUs stopped, until a debugger or
	// Cont continues them.
	Paused bool
	// Background starts QEMU at the lowest CPU priority, for a process
	// started ahead of need, until Foreground. Start fails with
	// ErrNoBackground unless CanBackground.
	Background bool
}

// ErrNoBackground: this process may not raise a priority it lowered.
var ErrNoBackground = errors.New("qemu: a QEMU in the background could not be brought to the foreground here (RLIMIT_NICE)")

func (cfg Config) withDefaults() Config {
	if cfg.Binary == "" {
		cfg.Binary = Binary()
	}
	if cfg.Accel == "" {
		cfg.Accel = Accel()
	}
	if cfg.Machine == "" {
		cfg.Machine = DefaultMachine
	}
	return cfg
}

// Process is a running QEMU.
type Process struct {
	cmdline string
	proc    *os.Process
	qmp     *qmp.Client
	stderr  *tail

	done chan struct{}
	exit *ExitError // set before done is closed
}

// ExitError is the end of a QEMU process: how it exited and the last of
// what it wrote on its standard streams.
type ExitError struct {
	State  *os.ProcessState // nil when waiting for it failed
	Stderr string           // trimmed, at most 8 KiB
	Err    error            // why waiting failed, when State is nil
}

func (e *ExitError) Error() string {
	var msg string
	switch {
	case e.State == nil:
		msg = fmt.Sprintf("QEMU exited (%v)", e.Err)
	case e.State.Success():
		// With -no-reboot a guest that powers off, reboots or
		// triple-faults ends QEMU this way, and so does a kernel panic
		// (panic=-1 reboots at once).
		msg = "QEMU exited with status 0 (the guest powered off, rebooted, panicked or reset)"
	case e.State.ExitCode() >= 0:
		msg = fmt.Sprintf("QEMU exited with status %d", e.State.ExitCode())
	default:
		msg = "QEMU was killed (" + e.State.String() + ")"
	}
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// Is makes every ExitError an ErrExited.
func (e *ExitError) Is(target error) bool { return target == ErrExited }

// Clean reports whether QEMU exited with status 0.
func (e *ExitError) Clean() bool { return e.State != nil && e.State.Success() }

// Start starts QEMU and connects to its QMP monitor. ctx bounds the start
// only: once Start has returned, QEMU runs until Kill, Quit, its own exit,
// or the death of the Provium process, however it dies.
func Start(ctx context.Context, cfg Config) (*Process, error) {
	cfg = cfg.withDefaults()
	if cfg.Background && !CanBackground() {
		return nil, ErrNoBackground
	}
	for _, d := range cfg.Devices {
		if in, ok := d.(inheritor); ok && in.inherited() == nil {
			return nil, fmt.Errorf("qemu: %T has no file to pass", d)
		}
	}

	qmpHost, qmpGuest, err := socketPair()
	if err != nil {
		return nil, fmt.Errorf("qemu: qmp socket: %w", err)
	}
	files := []*os.File{qmpGuest} // fd 3 in QEMU, qmpFD

	var consoleR, consoleW *os.File
	consolePath := ""
	if cfg.Console != nil {
		if consoleR, consoleW, err = os.Pipe(); err != nil {
			qmpHost.Close()
			qmpGuest.Close()
			return nil, fmt.Errorf("qemu: console pipe: %w", err)
		}
		files = append(files, consoleW)
		consolePath = fmt.Sprintf("/dev/fd/%d", 2+len(files))
	}
	incomingFD := 0
	if cfg.Incoming != nil {
		files = append(files, cfg.Incoming)
		incomingFD = 2 + len(files)
	}
	memoryFD := 0
	if cfg.Memory != nil {
		if cfg.MemoryMiB <= 0 {
			return nil, errors.New("qemu: a memory file needs the memory size")
		}
		files = append(files, cfg.Memory)
		memoryFD = 2 + len(files)
	}
	if cfg.Template && (cfg.Memory == nil || cfg.Incoming == nil) {
		return nil, errors.New("qemu: a template's state loads into its memory file")
	}
	cfg.Devices = append([]Device(nil), cfg.Devices...)
	for i, d := range cfg.Devices {
		if in, ok := d.(inheritor); ok {
			files = append(files, in.inherited())
			cfg.Devices[i] = in.withFD(2 + len(files))
		}
	}

	args := cfg.args(consolePath, incomingFD, memoryFD)
	stderr := &tail{max: 8 << 10}
	cmd := exec.Command(cfg.Binary, args...)
	cmd.ExtraFiles = files
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group keeps a terminal's Ctrl-C away from
		// QEMU: Provium decides how its VMs end.
		Setpgid: true,
		// Die with Provium, even on SIGKILL. The signal is tied to the
		// thread that forks, hence startLocked.
		Pdeathsig: syscall.SIGKILL,
	}
	p := &Process{
		cmdline: ShellQuote(append([]string{cfg.Binary}, args...)),
		stderr:  stderr,
		done:    make(chan struct{}),
	}
	exited, err := startLocked(cmd, cfg.Background)
	// QEMU has its copies now. Ours must go at once: an open write end
	// would hide QEMU's exit from the QMP and console readers.
	qmpGuest.Close()
	if consoleW != nil {
		consoleW.Close()
	}
	if err != nil {
		qmpHost.Close()
		if consoleR != nil {
			consoleR.Close()
		}
		return nil, fmt.Errorf("qemu: start %s: %w", cfg.Binary, err)
	}
	p.proc = cmd.Process

	consoleDone := make(chan struct{})
	if consoleR != nil {
		go func() {
			defer close(consoleDone)
			defer consoleR.Close()
			// A failing Console must not block the guest: keep draining.
			io.Copy(ignoreErrors{cfg.Console}, consoleR)
		}()
	} else {
		close(consoleDone)
	}
	go func() {
		werr := <-exited
		qmpHost.Close() // ends the QMP client too
		<-consoleDone
		exit := &ExitError{State: cmd.ProcessState, Stderr: stderr.String()}
		if exit.State == nil {
			exit.Err = werr
		}
		p.exit = exit
		close(p.done)
	}()

	qctx, cancel := context.WithTimeout(ctx, qmpTimeout)
	defer cancel()
	c, err := qmp.Connect(qctx, qmpHost)
	if err != nil {
		p.Kill()
		<-p.done
		if ctx.Err() == nil {
			err = p.exit // QEMU's own complaint says more
		}
		return nil, fmt.Errorf("qemu: connect to QMP: %w\ncommand: %s", err, p.cmdline)
	}
	p.qmp = c
	if cfg.Template {
		if err := p.loadTemplate(ctx, incomingFD); err != nil {
			p.Kill()
			<-p.done
			return nil, fmt.Errorf("qemu: %w\ncommand: %s", err, p.cmdline)
		}
	}
	return p, nil
}

// CommandLine is QEMU's command line, quoted for pasting into a shell
// (the inherited descriptors it names are not there, of course).
func (p *Process) CommandLine() string { return p.cmdline }

// Done is closed when QEMU has exited and its console is drained.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exit is how QEMU ended, nil while it runs.
func (p *Process) Exit() *ExitError {
	select {
	case <-p.done:
		return p.exit
	default:
		return nil
	}
}

// Wait waits for QEMU to exit and returns how it did.
func (p *Process) Wait() *ExitError {
	<-p.done
	return p.exit
}

// Kill kills QEMU at once. It is safe to call at any time, more than once.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	// os.Process signals through a pidfd: never a recycled pid.
	p.proc.Signal(syscall.SIGKILL)
	// And the rest of QEMU's process group: a PROVIUM_QEMU wrapper that
	// runs QEMU as its child instead of exec'ing it would otherwise leave
	// QEMU running, and Done waiting for the wrapper that waits for it.
	// The group is named by the leader's pid, which cannot be taken by
	// another process until the leader is reaped and the group is empty.
	syscall.Kill(-p.proc.Pid, syscall.SIGKILL)
}

// Pid is QEMU's process id.
func (p *Process) Pid() int { return p.proc.Pid }

// QMP runs a QMP command and returns its result.
func (p *Process) QMP(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	select {
	case <-p.done:
		return nil, fmt.Errorf("qmp %s: %w", cmd, p.exitErr())
	default:
	}
	ret, err := p.qmp.Execute(ctx, cmd, args)
	if err != nil && errors.Is(err, qmp.ErrClosed) {
		// The connection ends because QEMU is exiting: say so.
		select {
		case <-p.done:
			return nil, fmt.Errorf("qmp %s: %w", cmd, p.exitErr())
		case <-time.After(time.Second):
		}
	}
	return ret, err
}

// exitErr is the error of an operation QEMU's exit cut short; call it
// once done is closed.
func (p *Process) exitErr() error { return p.exit }

// Subscribe returns QEMU's asynchronous events from now on (SHUTDOWN,
// GUEST_PANICKED, ...) and a function that ends the subscription; see
// qmp.Client.Subscribe.
func (p *Process) Subscribe() (<-chan qmp.Event, func()) { return p.qmp.Subscribe() }

// Stop pauses the guest's CPUs.
func (p *Process) Stop(ctx context.Context) error {
	_, err := p.QMP(ctx, "stop", nil)
	return err
}

// Cont resumes the guest's CPUs.
func (p *Process) Cont(ctx context.Context) error {
	_, err := p.QMP(ctx, "cont", nil)
	return err
}

// Status returns QEMU's run state: "running", "paused", "inmigrate",
// "postmigrate", "shutdown", ...
func (p *Process) Status(ctx context.Context) (string, error) {
	ret, err := p.QMP(ctx, "query-status", nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(ret, &st); err != nil {
		return "", fmt.Errorf("query-status: %w", err)
	}
	return st.Status, nil
}

// SystemPowerdown presses the ACPI power button; the guest decides what
// to do about it.
func (p *Process) SystemPowerdown(ctx context.Context) error {
	_, err := p.QMP(ctx, "system_powerdown", nil)
	return err
}

// Quit asks QEMU to exit and waits until it has.
func (p *Process) Quit(ctx context.Context) error {
	_, err := p.qmp.Execute(ctx, "quit", nil)
	if err != nil && !errors.Is(err, qmp.ErrClosed) {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("qemu quit: %w", ctx.Err())
	}
}

// socketPair returns a connected pair: the host end as a *net.UnixConn and
// the end QEMU inherits as a file.
func socketPair() (*net.UnixConn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	hf := os.NewFile(uintptr(fds[0]), "qmp")
	defer hf.Close()
	c, err := net.FileConn(hf)
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	return c.(*net.UnixConn), os.NewFile(uintptr(fds[1]), "qmp-qemu"), nil
}

// tail keeps the last max bytes written, for error messages.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(trimSpace(t.buf))
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

type ignoreErrors struct{ w io.Writer }

func (w ignoreErrors) Write(p []byte) (int, error) {
	w.w.Write(p)
	return len(p), nil
}
