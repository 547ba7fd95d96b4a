// Package client is the host side of the agent protocol: a Session over one
// connection to a guest agent, and an Agent for each identity in the guest
// (the VM itself and every worker). It knows nothing of QEMU or Lua, so the
// same calls serve tests, the REPL and benchmarks.
//
// Every call has a deadline. When the connection breaks, every call in
// flight fails at once with ErrAgentGone rather than waiting it out. When
// the agent dies and the guest starts another (which announces itself),
// every call in flight fails at once with ErrAgentRestarted, saying how the
// old agent ended; the session then greets the new agent and goes on.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/provium/provium/internal/wire"
)

// Sentinel errors.
var (
	// ErrAgentGone means the connection to the agent broke: the VM died,
	// the agent exited for good, or the guest broke the protocol.
	ErrAgentGone = errors.New("agent connection lost")
	// ErrAgentRestarted means the agent died and the guest started a new
	// one: what was in flight is lost, workers died with the old agent,
	// and the session goes on with the new one.
	ErrAgentRestarted = errors.New("agent restarted")
	// ErrTimeout means the agent did not answer before the call's deadline.
	ErrTimeout = errors.New("agent did not answer in time")
	// ErrClosed means the identity was closed (a killed worker).
	ErrClosed = errors.New("worker was killed")
)

// DefaultTimeout bounds every call except those that carry a wait of their
// own (exec with a timeout, job_wait), which set their own deadline.
const DefaultTimeout = 5 * time.Minute

// helloInterval is how often a handshake is repeated until answered: the
// agent may still be starting, and a Hello that lands in a port nobody
// reads yet is lost.
const helloInterval = 50 * time.Millisecond

// longCall reports whether op may legitimately outlast DefaultTimeout when
// its caller asked for that.
func longCall(op wire.Op) bool { return op == wire.OpExec || op == wire.OpJobWait }

// Tracer receives one line per completed call, for the per-file log.
type Tracer func(channel uint32, op wire.Op, detail string, d time.Duration, err error)

// restartError is ErrAgentRestarted with how the old agent ended.
type restartError struct{ how string }

func (e *restartError) Error() string {
	if e.how == "" {
		return ErrAgentRestarted.Error()
	}
	return ErrAgentRestarted.Error() + " (" + e.how + ")"
}

func (e *restartError) Is(target error) bool { return target == ErrAgentRestarted }

// reply is what a call waits for: the agent's answer, or why none comes.
type reply struct {
	msg *wire.Message
	err error
}

// Session is one connection to the agents of one guest, from the first
// Hello to close.
type Session struct {
	conn  *wire.Conn
	rwc   io.Closer
	trace Tracer

	mu      sync.Mutex
	hello   wire.HelloReply
	epoch   uint32        // of the session with the current agent
	gen     int           // agents served so far, less one
	ready   chan struct{} // closed once the current agent is greeted
	greeted bool          // ready is closed
	calls   map[callKey]chan reply
	lost    *time.Timer // the agent's port closed: how long a new agent may take
	err     error       // set once the connection is dead
	done    chan struct{}
	nextID  atomic.Uint32
	nextCh  atomic.Uint32
	restart chan string // announcements of new agents, to the greeter
}

type callKey struct {
	ch uint32
	id uint32
}

// Open starts a session over rwc: it greets the agent with a fresh epoch
// and waits for its answer until ctx is done. Bytes of any earlier session
// still in the stream are ignored.
func Open(ctx context.Context, rwc io.ReadWriteCloser, trace Tracer) (*Session, error) {
	s := &Session{
		conn:    wire.NewConn(rwc, 0),
		rwc:     rwc,
		trace:   trace,
		calls:   map[callKey]chan reply{},
		done:    make(chan struct{}),
		restart: make(chan string, 1),
	}
	s.nextCh.Store(wire.MainChannel)
	go s.receive()
	if err := s.greet(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	go s.greeter()
	return s, nil
}

// Hello is what the agent said when it was last greeted.
func (s *Session) Hello() wire.HelloReply {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hello
}

// greet opens a session with the agent now serving the stream: a Hello
// with a fresh epoch, repeated until the agent answers or ctx ends.
func (s *Session) greet(ctx context.Context) error {
	epoch := rand.Uint32() | 1 // never 0, the epoch of an agent not yet greeted
	id := s.nextID.Add(1)
	m, err := wire.NewMessage(wire.OpHello, id, wire.Hello{Version: wire.Version, Epoch: epoch})
	if err != nil {
		return err
	}
	key := callKey{wire.ControlChannel, id}
	ch := make(chan reply, 1)
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return s.err
	}
	s.epoch = epoch
	s.conn.UseEpoch(epoch)
	s.calls[key] = ch
	s.mu.Unlock()
	defer s.forget(key)
	t := time.NewTicker(helloInterval)
	defer t.Stop()
	// A guest that does not read its port yet fills the socket's buffer
	// with Hellos, and a write then blocks: the Hellos go out from a
	// goroutine, the next only once the last is written, so that the
	// deadline still holds. Close ends a write that never completes.
	sent := make(chan struct{}, 1)
	sent <- struct{}{}
	for {
		select {
		case <-sent:
			go func() {
				s.conn.Send(wire.ControlChannel, m)
				sent <- struct{}{}
			}()
		default:
		}
		select {
		case r := <-ch:
			if r.err != nil {
				return r.err
			}
			var hello wire.HelloReply
			if err := answer(r.msg, &hello); err != nil {
				return err
			}
			if hello.Version != wire.Version {
				return fmt.Errorf("agent speaks protocol %d, host %d: %w", hello.Version, wire.Version, wire.ErrMalformed)
			}
			s.mu.Lock()
			s.hello = hello
			if s.ready == nil {
				s.ready = make(chan struct{})
			}
			if !s.greeted {
				close(s.ready)
				s.greeted = true
			}
			s.mu.Unlock()
			return nil
		case <-t.C:
		case <-s.done:
			return s.Err()
		case <-ctx.Done():
			return ctxErr(ctx)
		}
	}
}

// greeter greets every new agent the guest starts, for as long as the
// session lives; the calls that were in flight have failed by then.
func (s *Session) greeter() {
	for {
		select {
		case <-s.restart:
		case <-s.done:
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
		err := s.greet(ctx)
		cancel()
		if err != nil {
			s.fail(fmt.Errorf("%w: greeting the restarted agent: %v", ErrAgentGone, err))
			return
		}
	}
}

// announced handles a new agent's announcement. The first agent's comes
// before the first Hello is answered and means nothing; any later one
// means the agent that served the session died: its calls fail, saying
// how it ended, and the new agent is greeted.
func (s *Session) announced(m *wire.Message) {
	var a wire.Announce
	if m.Decode(&a) != nil {
		return
	}
	s.mu.Lock()
	if !s.greeted || s.err != nil {
		s.mu.Unlock()
		return
	}
	if s.lost != nil {
		s.lost.Stop()
		s.lost = nil
	}
	err := &restartError{how: a.Restarted}
	s.gen++
	s.ready, s.greeted = make(chan struct{}), false // calls wait for the greeting
	calls := s.calls
	s.calls = map[callKey]chan reply{}
	s.mu.Unlock()
	for _, ch := range calls {
		ch <- reply{err: err}
	}
	select {
	case s.restart <- a.Restarted:
	default:
	}
}

// generation is the number of the agent serving now.
func (s *Session) generation() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// PortClosed tells the session that the guest closed the agent's end of the
// stream: the agent is gone. If no new agent announces itself within
// grace, the session is dead.
func (s *Session) PortClosed(grace time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.lost != nil {
		return
	}
	s.lost = time.AfterFunc(grace, func() {
		s.fail(fmt.Errorf("%w: the agent closed its port and no agent took its place within %v", ErrAgentGone, grace))
	})
}

// Close ends the session; calls in flight fail with ErrAgentGone.
func (s *Session) Close() error {
	s.fail(fmt.Errorf("session closed: %w", ErrAgentGone))
	return s.rwc.Close()
}

// Done is closed when the session is dead.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why the session died, or nil while it lives.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Session) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	s.err = err
	if s.lost != nil {
		s.lost.Stop()
	}
	close(s.done)
}

func (s *Session) receive() {
	for {
		env, err := s.conn.Receive()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				s.fail(fmt.Errorf("%w: connection closed", ErrAgentGone))
			} else {
				s.fail(fmt.Errorf("%w: %v", ErrAgentGone, err))
			}
			return
		}
		if env.Channel == wire.ControlChannel && env.Msg.Op == wire.OpAnnounce {
			s.announced(env.Msg)
			continue
		}
		s.mu.Lock()
		if env.Epoch != s.epoch {
			s.mu.Unlock()
			continue // a reply of an earlier session
		}
		key := callKey{env.Channel, env.Msg.ID}
		ch, ok := s.calls[key]
		if ok {
			delete(s.calls, key)
		}
		s.mu.Unlock()
		if ok {
			ch <- reply{msg: env.Msg}
		}
	}
}

func (s *Session) forget(key callKey) {
	s.mu.Lock()
	delete(s.calls, key)
	s.mu.Unlock()
}

// call sends a request and waits for its reply. An OpError reply becomes an
// *OpError; a broken session, ErrAgentGone; an agent that died meanwhile,
// ErrAgentRestarted; a missed deadline, ErrTimeout. gen, when not -1, is
// the agent generation the request is for (a worker lives in one agent):
// a later one answers with ErrAgentRestarted.
func (s *Session) call(ctx context.Context, channel uint32, gen int, op wire.Op, meta any, blobs ...[]byte) (*wire.Message, error) {
	if _, ok := ctx.Deadline(); !ok || !longCall(op) {
		// The earlier of the caller's deadline and ours wins.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	id := s.nextID.Add(1)
	m, err := wire.NewMessage(op, id, meta, blobs...)
	if err != nil {
		return nil, err
	}
	// Wait for a greeted agent: after a restart, the new one is being
	// greeted.
	for {
		s.mu.Lock()
		ready, err, now := s.ready, s.err, s.gen
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if gen >= 0 && now != gen {
			return nil, fmt.Errorf("%w: the worker died with the agent it ran in", ErrAgentRestarted)
		}
		select {
		case <-ready:
		case <-s.done:
			return nil, s.Err()
		case <-ctx.Done():
			return nil, ctxErr(ctx)
		}
		s.mu.Lock()
		same := s.ready == ready && s.err == nil
		if same {
			break
		}
		s.mu.Unlock()
	}
	// Under s.mu, for a greeted agent.
	key := callKey{channel, id}
	ch := make(chan reply, 1)
	s.calls[key] = ch
	s.mu.Unlock()
	sent := make(chan error, 1)
	go func() { sent <- s.conn.Send(channel, m) }()
	select {
	case err := <-sent:
		if err != nil {
			s.forget(key)
			return nil, fmt.Errorf("%w: %v", ErrAgentGone, err)
		}
	case r := <-ch:
		return r.msg, answerErr(r)
	case <-s.done:
		s.forget(key)
		return nil, s.Err()
	case <-ctx.Done():
		s.forget(key)
		return nil, ctxErr(ctx)
	}
	select {
	case r := <-ch:
		return r.msg, answerErr(r)
	case <-s.done:
		s.forget(key)
		return nil, s.Err()
	case <-ctx.Done():
		s.forget(key)
		return nil, ctxErr(ctx)
	}
}

// answerErr is the error of a reply: why none came, or the agent's.
func answerErr(r reply) error {
	if r.err != nil {
		return r.err
	}
	return answer(r.msg, nil)
}

// answer checks a reply message and decodes its meta into v (if not nil).
func answer(m *wire.Message, v any) error {
	switch m.Op {
	case wire.OpError:
		e := &wire.Error{}
		if err := m.Decode(e); err != nil {
			return err
		}
		return &OpError{Err: *e}
	case wire.OpReply:
		if v != nil {
			return m.Decode(v)
		}
		return nil
	}
	return fmt.Errorf("%w: reply with op %v", wire.ErrMalformed, m.Op)
}

func ctxErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrTimeout
	}
	return ctx.Err()
}

// OpError is a failure the agent reported for one request: the guest
// answered, the operation failed.
type OpError struct {
	Err wire.Error
}

func (e *OpError) Error() string {
	if e.Err.ErrnoName != "" && !strings.Contains(e.Err.Message, e.Err.ErrnoName) {
		return e.Err.Message + " (" + e.Err.ErrnoName + ")"
	}
	return e.Err.Message
}

// Is makes an OpError from a failed system call match its errno
// (errors.Is(err, unix.ENOENT)). Guest and host numbers agree: both are
// x86-64 Linux.
func (e *OpError) Is(target error) bool {
	errno, ok := target.(syscall.Errno)
	return ok && e.Err.Errno != 0 && int(errno) == e.Err.Errno
}

// control returns the session's control identity.
func (s *Session) control() *Agent { return &Agent{s: s, ch: wire.ControlChannel, gen: -1} }

// Main returns the agent's own identity, which outlives agent restarts.
func (s *Session) Main() *Agent { return &Agent{s: s, ch: wire.MainChannel, gen: -1} }

// Quiesce kills every worker and background job in the guest, so that the
// agent holds no state a snapshot would freeze.
func (s *Session) Quiesce(ctx context.Context) error {
	_, err := s.control().do(ctx, wire.OpQuiesce, nil, nil)
	return err
}

// SetClock sets the guest's wall clock to t. Requests sent after it see
// the new time.
func (s *Session) SetClock(ctx context.Context, t time.Time) error {
	_, err := s.control().do(ctx, wire.OpSetClock, wire.SetClock{UnixNano: t.UnixNano()}, nil)
	return err
}

// PowerOff asks the guest to sync and power off. It returns once the agent
// acknowledged; the VM goes away shortly after.
func (s *Session) PowerOff(ctx context.Context) error {
	_, err := s.control().do(ctx, wire.OpPowerOff, nil, nil)
	return err
}
