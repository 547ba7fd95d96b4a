// Package agent is the guest side of the provium protocol: the process that
// the host drives inside every VM.
//
// The agent serves one byte stream (a virtio-serial port or a vsock
// connection, see Main) with the framing of package wire. Requests arrive on
// channels. The control channel carries the handshake and VM-wide requests;
// every other channel is an identity: the agent's own (wire.MainChannel) or a
// worker the host spawned.
//
// An identity runs all of its operations on one goroutine locked to one OS
// thread. Linux keeps credentials per thread, so a setresuid, setgroups or
// capset that a test makes through the Syscall op changes that thread only,
// and everything the identity does afterwards — system calls, file opens,
// the commands it forks — runs with those credentials while other identities
// keep theirs. A worker is either a thread of the agent (same PID, own
// thread) or a new agent process forked from its parent's thread, which the
// agent reaches over a socket pair and relays to the host (see WorkerMain).
// To make that fast, the agent keeps one worker process started ahead,
// which a spawn claims (see spare.go).
//
// Sessions: the host opens a session with a Hello that carries a fresh
// epoch. Frames of any other epoch are dropped, and replies to requests of
// an earlier session are never sent, so a VM resumed from a snapshot in a new
// QEMU simply continues with the new host.
package agent

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/provium/provium/internal/wire"
)

// Config adjusts an Agent; the zero value is what runs in a guest.
type Config struct {
	// Restarted, when set, is how the agent before this one ended: the
	// announcement at the start of each stream says so.
	Restarted string
	// Exe is the binary fork workers run as boot.WorkerName;
	// /proc/self/exe when empty.
	Exe string
	// PowerOff ends the machine after an OpPowerOff reply. When nil, the
	// agent syncs and powers the kernel off.
	PowerOff func()
	// Logger receives the few lines the agent writes about broken streams
	// and dying workers; log.Default() when nil.
	Logger *log.Logger
}

// Agent serves the protocol. Its identities, workers and jobs outlive any
// single stream: Serve may be called again (a new vsock connection) and the
// next Hello starts a new session over the same state.
type Agent struct {
	exe        string
	restarted  string
	powerOff   func()
	log        *log.Logger
	startCreds creds // the process's when it started, which exec keeps

	// sendMu orders replies against session changes: a reply is written
	// under the read lock, after checking that its request belongs to the
	// current session, and a Hello takes the write lock to change epoch.
	sendMu  sync.RWMutex
	conn    *wire.Conn // the stream of the newest Serve
	session uint64     // bumped by every Hello and every new stream
	active  bool       // a Hello was answered on conn
	epoch   uint32
	helloID uint32 // id of the Hello that started the session
	boots   int

	sendFailing atomic.Bool // rate-limits logging of write errors

	mu      sync.Mutex
	main    *identity
	workers map[uint32]worker
	dead    map[uint32]string // channel -> why its worker is gone
	spare   spareSlot         // a worker process started ahead (spare.go)

	ptys ptyTable // terminals (pty.go)
}

// request is a message from the host with the session it arrived in.
type request struct {
	session uint64
	msg     *wire.Message
}

// New returns an agent whose main identity is already running.
func New(cfg Config) *Agent {
	a := &Agent{
		exe:       cfg.Exe,
		restarted: cfg.Restarted,
		powerOff:  cfg.PowerOff,
		log:       cfg.Logger,
		workers:   map[uint32]worker{},
		dead:      map[uint32]string{},
	}
	if a.exe == "" {
		a.exe = "/proc/self/exe"
	}
	// Every thread has them: identities change only their own, later.
	a.startCreds, _ = threadCreds()
	if a.powerOff == nil {
		a.powerOff = powerOff
	}
	if a.log == nil {
		a.log = log.Default()
	}
	a.main = newIdentity(wire.MainChannel, a)
	if _, err := a.main.start(nil); err != nil {
		// start fails only through its setup function, and there is none.
		panic(fmt.Sprintf("agent: start main identity: %v", err))
	}
	return a
}

func (a *Agent) logf(format string, args ...any) { a.log.Printf(format, args...) }

// Serve reads requests from rw until reading fails, and writes replies to
// it. A stream that breaks the protocol (a bound exceeded, a message that
// does not decode) cannot be trusted past that point: Serve drops what it
// had reassembled and starts over on the same stream, waiting for the host's
// next Hello. Serve returns the read error that ended it, e.g. io.EOF.
func (a *Agent) Serve(rw io.ReadWriter) error {
	a.announce(wire.NewConn(rw, 0))
	for {
		conn := wire.NewConn(rw, 0)
		a.attach(conn)
		err := a.receive(conn)
		if isProtocolError(err) {
			a.logf("broken stream from the host, waiting for a new session: %v", err)
			continue
		}
		a.detach(conn)
		return err
	}
}

// announce tells the host an agent serves the stream now. A host still
// waiting for answers from an agent that died learns from it that they
// will not come, and why. Errors are the host's absence: nothing to do.
func (a *Agent) announce(conn *wire.Conn) {
	m, err := wire.NewMessage(wire.OpAnnounce, 0, wire.Announce{PID: os.Getpid(), Restarted: a.restarted})
	if err == nil {
		conn.Send(wire.ControlChannel, m)
	}
}

func isProtocolError(err error) bool {
	return errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrMessageTooLarge) ||
		errors.Is(err, wire.ErrFrameTooLarge) || errors.Is(err, wire.ErrTooManyPending)
}

// attach makes conn the stream replies go to. Until its first Hello, every
// request on it is dropped.
func (a *Agent) attach(conn *wire.Conn) {
	a.sendMu.Lock()
	defer a.sendMu.Unlock()
	a.conn = conn
	a.session++
	a.active = false
}

// detach forgets conn unless a newer stream replaced it already.
func (a *Agent) detach(conn *wire.Conn) {
	a.sendMu.Lock()
	defer a.sendMu.Unlock()
	if a.conn == conn {
		a.conn = nil
		a.session++
		a.active = false
	}
}

func (a *Agent) receive(conn *wire.Conn) error {
	for {
		env, err := conn.Receive()
		if err != nil {
			return err
		}
		a.dispatch(conn, env)
	}
}

// dispatch routes one message. It never blocks on an identity: each has a
// queue, so a long operation on one channel never holds up another.
func (a *Agent) dispatch(conn *wire.Conn, env wire.Envelope) {
	m := env.Msg
	if env.Channel == wire.ControlChannel && m.Op == wire.OpHello {
		a.hello(conn, m)
		return
	}
	session, ok := a.current(conn, env.Epoch)
	if !ok {
		return // before the first Hello, or a frame of another session
	}
	r := request{session: session, msg: m}
	switch ch := env.Channel; ch {
	case wire.ControlChannel:
		a.control(r)
	case wire.MainChannel:
		if err := a.main.deliver(r); err != nil {
			a.reply(session, ch, errorReply(m.ID, err))
		}
	default:
		a.toWorker(ch, r)
	}
}

// current returns the session a frame of epoch on conn belongs to, and
// whether that is the live session.
func (a *Agent) current(conn *wire.Conn, epoch uint32) (uint64, bool) {
	a.sendMu.RLock()
	defer a.sendMu.RUnlock()
	return a.session, a.active && a.conn == conn && a.epoch == epoch
}

// live reports whether session is still the current one.
func (a *Agent) live(session uint64) bool {
	a.sendMu.RLock()
	defer a.sendMu.RUnlock()
	return a.active && a.session == session
}

// reply sends m on ch if the request it answers belongs to the current
// session; replies to a session that ended are dropped, so they can never be
// taken for the answer to a new session's request with the same id.
func (a *Agent) reply(session uint64, ch uint32, m *wire.Message) {
	a.sendMu.RLock()
	defer a.sendMu.RUnlock()
	if !a.active || a.session != session || a.conn == nil {
		return
	}
	if err := send(a.conn, ch, m); err != nil {
		// A disconnected virtio-serial host is not fatal: the next host
		// starts a new session. Log once per run of failures.
		if !a.sendFailing.Swap(true) {
			a.logf("%v", err)
		}
		return
	}
	a.sendFailing.Store(false)
}

// send writes m on ch. A reply too large for one message becomes an error
// reply, so that the host gets an answer instead of a timeout.
func send(conn *wire.Conn, ch uint32, m *wire.Message) error {
	err := conn.Send(ch, m)
	if errors.Is(err, wire.ErrMessageTooLarge) && m.Op != wire.OpError {
		return conn.Send(ch, errorReply(m.ID, fmt.Errorf("%w: reply of %d bytes over the limit of %d", err, m.Size(), wire.MaxMessage)))
	}
	return err
}

// Close ends every worker and job and the main identity. The agent cannot
// be used afterwards.
func (a *Agent) Close() {
	a.mu.Lock()
	a.spare.closed = true
	a.mu.Unlock()
	a.quiesce()
	a.main.kill()
	select {
	case <-a.main.done:
	case <-time.After(quiesceWait):
		a.logf("close: the main identity is stuck in an operation; abandoning it")
	}
}
