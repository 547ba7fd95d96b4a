package agent

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire"
	"github.com/provium/provium/internal/wire/boot"
)

// quiesceWait bounds how long a quiesce waits for workers and jobs to be
// gone. A thread worker stuck in a blocking system call cannot be stopped;
// it is abandoned after this long.
const quiesceWait = 5 * time.Second

// hello starts a session, or answers a new Hello of the current one, and
// drops copies of the Hello it answered.
func (a *Agent) hello(conn *wire.Conn, m *wire.Message) {
	var h wire.Hello
	if err := m.Decode(&h); err != nil {
		a.logf("ignoring hello: %v", err)
		return
	}
	a.sendMu.Lock()
	if a.conn != conn {
		a.sendMu.Unlock()
		return // a stream that a newer one replaced
	}
	same := a.active && a.epoch == h.Epoch
	if same && m.ID == a.helloID {
		// A copy of the Hello already answered. The host repeats its
		// Hello every few milliseconds until the agent answers, and
		// during a boot the copies queue up in the port until the agent
		// opens it: answering each would keep the guest busy for half a
		// second after it is ready.
		a.sendMu.Unlock()
		return
	}
	a.helloID = m.ID
	if !same {
		conn.SetEpoch(h.Epoch)
		a.session++
		a.active = true
		a.epoch = h.Epoch
		a.boots++
	}
	session, boots := a.session, a.boots
	a.sendMu.Unlock()

	if !same {
		a.endSession()
	}
	reply, err := wire.Reply(m.ID, wire.HelloReply{
		Version: wire.Version,
		PID:     os.Getpid(),
		Kernel:  kernelRelease(),
		Boots:   boots,
	})
	if err != nil {
		reply = errorReply(m.ID, err)
	}
	a.reply(session, wire.ControlChannel, reply)
}

// endSession kills what the previous session left behind: its workers, the
// jobs of the main identity and any command the main identity still runs
// for it. It does not wait: the new session must not be held up by a worker
// stuck in a system call.
func (a *Agent) endSession() {
	a.mu.Lock()
	ws := a.workers
	a.workers = map[uint32]worker{}
	a.dead = map[uint32]string{}
	a.mu.Unlock()
	for _, w := range ws {
		w.kill()
	}
	a.main.killCommands()
	a.main.jobs.killAll(0)
	a.ptys.closeAll()
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return strings.TrimRight(string(u.Release[:]), "\x00")
}

// control serves the control channel. Quiesce may take seconds, so it runs
// beside the receive loop.
func (a *Agent) control(r request) {
	m := r.msg
	switch m.Op {
	case wire.OpQuiesce:
		go func() {
			a.quiesce()
			a.replyOK(r)
		}()
	case wire.OpPowerOff:
		a.replyOK(r)
		a.powerOff()
	case wire.OpPing:
		a.replyOK(r)
	case wire.OpSetClock:
		// Here, in the receive loop, so that every request after it sees
		// the new time.
		if err := setClock(m); err != nil {
			a.reply(r.session, wire.ControlChannel, errorReply(m.ID, err))
			return
		}
		a.replyOK(r)
	case wire.OpPtyRead, wire.OpPtyWrite, wire.OpPtyResize, wire.OpPtyClose:
		a.ptyControl(r)
	default:
		a.reply(r.session, wire.ControlChannel, errorReply(m.ID, fmt.Errorf("%v is not a control channel operation", m.Op)))
	}
}

func (a *Agent) replyOK(r request) {
	reply, _ := wire.Reply(r.msg.ID, nil)
	a.reply(r.session, wire.ControlChannel, reply)
}

// quiesce kills every worker, the spare worker process and every
// background job of every identity and waits (bounded) until they are gone,
// so that a snapshot taken afterwards holds no half-finished work.
func (a *Agent) quiesce() {
	a.mu.Lock()
	ws := a.workers
	a.workers = map[uint32]worker{}
	a.mu.Unlock()
	for _, w := range ws {
		w.kill()
	}
	a.ptys.closeAll()
	spareGone := a.dropSpare()
	deadline := time.NewTimer(quiesceWait)
	defer deadline.Stop()
	a.main.jobs.killAll(quiesceWait)
	select {
	case <-spareGone:
	case <-deadline.C:
		a.logf("quiesce: the spare worker process did not end in %v; abandoning it", quiesceWait)
		return
	}
	for ch, w := range ws {
		select {
		case <-w.gone():
		case <-deadline.C:
			a.logf("quiesce: worker (channel %d) did not end in %v; abandoning it", ch, quiesceWait)
			return
		}
	}
}

// powerOff is what OpPowerOff does in a guest.
func powerOff() {
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Fprintf(os.Stderr, "%s: power off: %v\n", boot.AgentName, err)
	}
}

// setClock sets CLOCK_REALTIME as a SetClock request says.
func setClock(m *wire.Message) error {
	var req wire.SetClock
	if err := m.Decode(&req); err != nil {
		return err
	}
	if req.UnixNano <= 0 {
		return fmt.Errorf("set_clock: %d ns is before 1970: %w", req.UnixNano, wire.ErrBadRequest)
	}
	ts := unix.NsecToTimespec(req.UnixNano)
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return fmt.Errorf("set_clock: clock_settime: %w", err)
	}
	return nil
}
