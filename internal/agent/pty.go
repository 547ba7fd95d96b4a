package agent

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire"
	"github.com/provium/provium/internal/wire/boot"
)

const (
	// maxPtys bounds the terminals open at once.
	maxPtys = 32
	// maxPtyBuffer bounds the output a terminal holds for the host; past
	// it the agent stops reading, and the shell blocks on its writes
	// until the host catches up, as on a real terminal.
	maxPtyBuffer = 1 << 20
	// maxPtyWait bounds how long one PtyRead may wait.
	maxPtyWait = 60 * time.Second
	// ptyWriteWait bounds a write to a terminal whose shell reads nothing.
	ptyWriteWait = 10 * time.Second
	// ptyHangupWait is how long a shell that is hung up has to end before
	// its session is killed.
	ptyHangupWait = time.Second
)

// pty is a terminal in the guest and the session that runs on it.
type pty struct {
	id     int
	pid    int
	master *os.File

	mu      sync.Mutex
	out     []byte        // read from the master, not yet sent
	changed chan struct{} // closed and replaced when out or the state changes
	eof     bool          // the master reads no more: every slave is closed
	done    bool          // the shell was reaped and its output drained
	status  wire.PtyOutput
}

// ptyTable holds the agent's terminals. Terminals belong to the agent
// process: a fork worker's shell would live in another process, whose
// terminal the control channel cannot reach.
type ptyTable struct {
	mu   sync.Mutex
	next int
	ptys map[int]*pty
}

func (t *ptyTable) get(id int) (*pty, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.ptys[id]
	if !ok {
		return nil, fmt.Errorf("no such terminal %d", id)
	}
	return p, nil
}

func (t *ptyTable) add(p *pty) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.ptys) >= maxPtys {
		return fmt.Errorf("%d terminals are open already", maxPtys)
	}
	if t.ptys == nil {
		t.ptys = map[int]*pty{}
	}
	t.next++
	p.id = t.next
	t.ptys[p.id] = p
	return nil
}

func (t *ptyTable) remove(id int) *pty {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.ptys[id]
	delete(t.ptys, id)
	return p
}

// closeAll hangs up every terminal: a new session or a snapshot starts
// without the shells of the last one.
func (t *ptyTable) closeAll() {
	t.mu.Lock()
	ptys := t.ptys
	t.ptys = nil
	t.mu.Unlock()
	for _, p := range ptys {
		p.hangup()
	}
}

// ptyOpen serves OpPtyOpen on the identity's thread, so that the shell
// forked here has the identity's credentials.
func (id *identity) ptyOpen(r request) (*wire.Message, error) {
	a, ok := id.proc.(*Agent)
	if !ok {
		return nil, fmt.Errorf("pty_open: channel %d is a worker process; open terminals on the main identity or a thread worker", id.ch)
	}
	var req wire.PtyOpen
	if err := r.msg.Decode(&req); err != nil {
		return nil, err
	}
	argv := req.Argv
	if len(argv) == 0 {
		argv = []string{"/bin/sh", "-l"}
	}
	master, slave, err := openPty()
	if err != nil {
		return nil, fmt.Errorf("pty_open: %w", err)
	}
	if req.Rows > 0 && req.Cols > 0 {
		setWinsize(master, req.Rows, req.Cols)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), req.Env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	// A session of its own with the terminal as its controlling one:
	// job control, and ^C reaching the foreground process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err = cmd.Start()
	slave.Close() // the shell has it; the master reads EOF once all are closed
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("pty_open %q: %w", argv[0], err)
	}
	p := &pty{pid: cmd.Process.Pid, master: master, changed: make(chan struct{})}
	if err := a.ptys.add(p); err != nil {
		killGroup(p.pid)
		master.Close()
		cmd.Wait()
		return nil, fmt.Errorf("pty_open: %w", err)
	}
	go p.readLoop()
	go p.wait(cmd)
	return wire.Reply(r.msg.ID, wire.PtyOpened{ID: p.id, PID: p.pid})
}

// devpts is the terminals' file system, as the guest's init mounts it.
var devpts = vfsMount{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, boot.DevptsOptions}

// openPty opens a new terminal pair. The guest's init mounted devpts, but
// a real init may have mounted another /dev over it: then it is mounted
// again.
func openPty() (master, slave *os.File, err error) {
	if _, err := os.Stat("/dev/pts/ptmx"); err != nil {
		if err := devpts.mount(); err != nil {
			return nil, nil, err
		}
	}
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("unlock terminal: %w", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("terminal number: %w", err)
	}
	name := "/dev/pts/" + strconv.FormatUint(uint64(n), 10)
	sfd, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("open %s: %w", name, err)
	}
	// The master goes through Go's poller, so reads and writes have
	// deadlines and closing it ends a read in progress.
	unix.SetNonblock(fd, true)
	return os.NewFile(uintptr(fd), "/dev/ptmx"), os.NewFile(uintptr(sfd), name), nil
}

// setWinsize sizes a terminal. It goes through SyscallConn: Fd would
// take the master out of the poller.
func setWinsize(f *os.File, rows, cols uint16) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	}); err != nil {
		return err
	}
	return ierr
}

// notify wakes the readers waiting for a change. Call it with p.mu held.
func (p *pty) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// readLoop moves the master's output into p.out, at most maxPtyBuffer of
// it at a time.
func (p *pty) readLoop() {
	buf := make([]byte, 32<<10)
	for {
		p.mu.Lock()
		for len(p.out) >= maxPtyBuffer && !p.done {
			ch := p.changed
			p.mu.Unlock()
			<-ch
			p.mu.Lock()
		}
		stop := p.done
		p.mu.Unlock()
		if stop {
			return
		}
		n, err := p.master.Read(buf)
		p.mu.Lock()
		p.out = append(p.out, buf[:n]...)
		if err != nil {
			// EIO: the shell and everything it started closed the
			// terminal. Any other error ends the terminal as well.
			p.eof = true
		}
		p.notify()
		p.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// wait reaps the shell and ends the terminal once its output is read, or
// after a short grace when a background job keeps the terminal open.
func (p *pty) wait(cmd *exec.Cmd) {
	cmd.Wait()
	res := exitResult(cmd.ProcessState)
	deadline := time.NewTimer(outputGrace)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		eof, ch := p.eof, p.changed
		p.mu.Unlock()
		if eof {
			break
		}
		select {
		case <-ch:
			continue
		case <-deadline.C:
		}
		break
	}
	p.mu.Lock()
	p.status = wire.PtyOutput{Exited: true, ExitCode: res.ExitCode, Signal: res.Signal}
	p.done = true
	p.notify()
	p.mu.Unlock()
	p.master.Close()
}

// read waits up to wait for output or the end, and returns what there is.
func (p *pty) read(wait time.Duration) (wire.PtyOutput, []byte) {
	t := time.NewTimer(wait)
	defer t.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.out) == 0 && !p.done {
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-t.C:
			p.mu.Lock()
			return wire.PtyOutput{}, nil
		}
		p.mu.Lock()
	}
	n := min(len(p.out), wire.MaxPtyRead)
	out := append([]byte(nil), p.out[:n]...)
	p.out = p.out[n:]
	p.notify() // room for readLoop
	if len(p.out) > 0 || !p.done {
		return wire.PtyOutput{}, out
	}
	return p.status, out
}

// hangup ends the terminal's session: SIGHUP as a closed terminal would
// send, then SIGKILL for what ignores it.
func (p *pty) hangup() {
	unix.Kill(-p.pid, unix.SIGHUP)
	unix.Kill(-p.pid, unix.SIGCONT)
	go func() {
		time.Sleep(ptyHangupWait)
		killGroup(p.pid)
	}()
	p.master.Close()
}

// ptyControl serves the terminal operations of the control channel, each
// beside the receive loop: a read waits for output.
func (a *Agent) ptyControl(r request) {
	go func() {
		reply, err := a.ptyOp(r.msg)
		if err != nil {
			reply = errorReply(r.msg.ID, err)
		}
		a.reply(r.session, wire.ControlChannel, reply)
	}()
}

func (a *Agent) ptyOp(m *wire.Message) (*wire.Message, error) {
	switch m.Op {
	case wire.OpPtyRead:
		var req wire.PtyRead
		if err := m.Decode(&req); err != nil {
			return nil, err
		}
		wait := time.Duration(req.TimeoutMs) * time.Millisecond
		if req.TimeoutMs < 0 || wait > maxPtyWait {
			return nil, fmt.Errorf("pty_read %d: wait of %d ms is out of range: %w", req.ID, req.TimeoutMs, wire.ErrMalformed)
		}
		p, err := a.ptys.get(req.ID)
		if err != nil {
			return nil, fmt.Errorf("pty_read: %w", err)
		}
		st, out := p.read(wait)
		if st.Exited {
			a.ptys.remove(p.id)
		}
		return wire.Reply(m.ID, st, out)
	case wire.OpPtyWrite:
		var req wire.PtyID
		if err := m.Decode(&req); err != nil {
			return nil, err
		}
		p, err := a.ptys.get(req.ID)
		if err != nil {
			return nil, fmt.Errorf("pty_write: %w", err)
		}
		p.master.SetWriteDeadline(time.Now().Add(ptyWriteWait))
		if _, err := p.master.Write(m.Blob(0)); err != nil {
			return nil, fmt.Errorf("pty_write %d: %w", req.ID, err)
		}
		return wire.Reply(m.ID, nil)
	case wire.OpPtyResize:
		var req wire.PtyResize
		if err := m.Decode(&req); err != nil {
			return nil, err
		}
		p, err := a.ptys.get(req.ID)
		if err != nil {
			return nil, fmt.Errorf("pty_resize: %w", err)
		}
		// The kernel sends SIGWINCH to the foreground process group.
		if err := setWinsize(p.master, req.Rows, req.Cols); err != nil {
			return nil, fmt.Errorf("pty_resize %d: %w", req.ID, err)
		}
		return wire.Reply(m.ID, nil)
	case wire.OpPtyClose:
		var req wire.PtyID
		if err := m.Decode(&req); err != nil {
			return nil, err
		}
		if p := a.ptys.remove(req.ID); p != nil {
			p.hangup()
		}
		return wire.Reply(m.ID, nil)
	}
	return nil, fmt.Errorf("%v is not a terminal operation", m.Op)
}
