// Package client is the host side of the agent protocol: a Session over one
// connection to a guest agent, and an Agent for each identity in the guest
// (the VM itself and every worker). It knows nothing of QEMU or Lua, so the
// same calls serve tests, the REPL and benchmarks.
//
// Every call has a deadline; when the connection breaks, every call in
// flight fails at once with ErrAgentGone rather than waiting it out.
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
	"time"

	"github.com/provium/provium/internal/wire"
)

// Sentinel errors.
var (
	// ErrAgentGone means the connection to the agent broke: the VM died,
	// the agent exited, or the guest broke the protocol.
	ErrAgentGone = errors.New("agent connection lost")
	// ErrTimeout means the agent did not answer before the call's deadline.
	ErrTimeout = errors.New("agent did not answer in time")
	// ErrClosed means the identity was closed (a killed worker).
	ErrClosed = errors.New("worker was killed")
)

// DefaultTimeout bounds every call except those that carry a wait of their
// own (exec with a timeout, job_wait), which set their own deadline.
const DefaultTimeout = 5 * time.Minute

// longCall reports whether op may legitimately outlast DefaultTimeout when
// its caller asked for that.
func longCall(op wire.Op) bool { return op == wire.OpExec || op == wire.OpJobWait }

// Tracer receives one line per completed call, for the per-file log.
type Tracer func(channel uint32, op wire.Op, detail string, d time.Duration, err error)

// Session is one connection to an agent, from Hello to close.
type Session struct {
	conn  *wire.Conn
	rwc   io.Closer
	epoch uint32
	Hello wire.HelloReply

	mu      sync.Mutex
	calls   map[callKey]chan *wire.Message
	err     error // set once the connection is dead
	done    chan struct{}
	nextID  atomic.Uint32
	nextCh  atomic.Uint32
	trace   Tracer
	skipped atomic.Int64
}

type callKey struct {
	ch uint32
	id uint32
}

// Open starts a session over rwc: it sends a Hello with a fresh epoch and
// waits for the agent's answer until ctx is done. Bytes of any earlier
// session still in the stream are ignored.
func Open(ctx context.Context, rwc io.ReadWriteCloser, trace Tracer) (*Session, error) {
	epoch := rand.Uint32() | 1 // never 0, the epoch of a fresh agent
	s := &Session{
		conn:  wire.NewConn(rwc, epoch),
		rwc:   rwc,
		epoch: epoch,
		calls: map[callKey]chan *wire.Message{},
		done:  make(chan struct{}),
		trace: trace,
	}
	s.nextCh.Store(wire.MainChannel)
	go s.receive()
	var hello wire.HelloReply
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The agent may still be starting and the first Hello may land in a
	// port nobody reads yet: repeat it until one is answered.
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-t.C:
				s.sendHello()
			}
		}
	}()
	reply, err := s.call(hctx, wire.ControlChannel, wire.OpHello, wire.Hello{Version: wire.Version, Epoch: epoch})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if err := reply.Decode(&hello); err != nil {
		s.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if hello.Version != wire.Version {
		s.Close()
		return nil, fmt.Errorf("handshake: agent speaks protocol %d, host %d: %w", hello.Version, wire.Version, wire.ErrMalformed)
	}
	s.Hello = hello
	return s, nil
}

// sendHello repeats the handshake request under the id of the first call,
// which is always 1.
func (s *Session) sendHello() {
	m, err := wire.NewMessage(wire.OpHello, 1, wire.Hello{Version: wire.Version, Epoch: s.epoch})
	if err == nil {
		s.conn.Send(wire.ControlChannel, m)
	}
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

// SkippedBytes counts stream bytes dropped while resynchronising.
func (s *Session) SkippedBytes() int64 { return s.skipped.Load() }

func (s *Session) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	s.err = err
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
		if env.Epoch != s.epoch {
			continue // a reply of an earlier session
		}
		s.mu.Lock()
		ch, ok := s.calls[callKey{env.Channel, env.Msg.ID}]
		if ok {
			delete(s.calls, callKey{env.Channel, env.Msg.ID})
		}
		s.mu.Unlock()
		if ok {
			ch <- env.Msg
		}
	}
}

// call sends a request and waits for its reply. An OpError reply becomes an
// *OpError; a broken session, ErrAgentGone; a missed deadline, ErrTimeout.
func (s *Session) call(ctx context.Context, channel uint32, op wire.Op, meta any, blobs ...[]byte) (*wire.Message, error) {
	id := s.nextID.Add(1)
	m, err := wire.NewMessage(op, id, meta, blobs...)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok || !longCall(op) {
		// The earlier of the caller's deadline and ours wins.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	reply := make(chan *wire.Message, 1)
	key := callKey{channel, id}
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return nil, err
	}
	s.calls[key] = reply
	s.mu.Unlock()
	forget := func() {
		s.mu.Lock()
		delete(s.calls, key)
		s.mu.Unlock()
	}
	sent := make(chan error, 1)
	go func() { sent <- s.conn.Send(channel, m) }()
	select {
	case err := <-sent:
		if err != nil {
			forget()
			return nil, fmt.Errorf("%w: %v", ErrAgentGone, err)
		}
	case <-s.done:
		forget()
		return nil, s.Err()
	case <-ctx.Done():
		forget()
		return nil, ctxErr(ctx)
	}
	select {
	case r := <-reply:
		if r.Op == wire.OpError {
			e := &wire.Error{}
			if err := r.Decode(e); err != nil {
				return nil, err
			}
			return nil, &OpError{Err: *e}
		}
		if r.Op != wire.OpReply {
			return nil, fmt.Errorf("%w: reply with op %v", wire.ErrMalformed, r.Op)
		}
		return r, nil
	case <-s.done:
		forget()
		return nil, s.Err()
	case <-ctx.Done():
		forget()
		return nil, ctxErr(ctx)
	}
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

// Control returns the session's control identity.
func (s *Session) control() *Agent { return &Agent{s: s, ch: wire.ControlChannel} }

// Main returns the agent's own identity.
func (s *Session) Main() *Agent { return &Agent{s: s, ch: wire.MainChannel} }

// Quiesce kills every worker and background job in the guest, so that the
// agent holds no state a snapshot would freeze.
func (s *Session) Quiesce(ctx context.Context) error {
	_, err := s.control().do(ctx, wire.OpQuiesce, nil, nil)
	return err
}

// PowerOff asks the guest to sync and power off. It returns once the agent
// acknowledged; the VM goes away shortly after.
func (s *Session) PowerOff(ctx context.Context) error {
	_, err := s.control().do(ctx, wire.OpPowerOff, nil, nil)
	return err
}
