package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire"
	"github.com/provium/provium/internal/wire/boot"
)

// TestMain lets the test binary be a fork worker: the agent re-executes
// /proc/self/exe as "provium-worker", as it does in a guest.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == boot.WorkerName {
		WorkerMain()
	}
	os.Exit(m.Run())
}

// callWait bounds every call so that a broken agent fails a test instead
// of hanging it. No test depends on how long anything takes.
const callWait = 30 * time.Second

type callKey struct {
	ch, id uint32
}

// testHost is the host end of a stream to an in-process agent: a minimal
// stand-in for the real client, so these tests depend on package wire only.
type testHost struct {
	t       *testing.T
	a       *Agent
	raw     net.Conn
	conn    *wire.Conn
	nextID  atomic.Uint32
	powered atomic.Bool

	mu        sync.Mutex
	epoch     uint32
	waiting   map[callKey]chan *wire.Message
	stray     []wire.Envelope // messages nobody waited for
	foreign   int             // messages of an epoch other than the current one
	announced []wire.Announce // the agent's announcements
}

// lockedBuffer collects the agent's log for a failing test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newTestHost starts an agent serving one end of a pipe and returns the
// other end, before any Hello.
func newTestHost(t *testing.T) *testHost {
	t.Helper()
	agentEnd, hostEnd := net.Pipe()
	logs := &lockedBuffer{}
	h := &testHost{t: t, raw: hostEnd, conn: wire.NewConn(hostEnd, 0), waiting: map[callKey]chan *wire.Message{}}
	h.a = New(Config{
		PowerOff: func() { h.powered.Store(true) },
		Logger:   log.New(logs, "agent: ", 0),
	})
	served := make(chan error, 1)
	go func() { served <- h.a.Serve(agentEnd) }()
	go h.receive()
	t.Cleanup(func() {
		hostEnd.Close()
		if err := <-served; !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve returned %v, want EOF", err)
		}
		h.a.Close()
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	})
	return h
}

// newSession is newTestHost plus a Hello.
func newSession(t *testing.T) *testHost {
	h := newTestHost(t)
	h.hello(0x1001)
	return h
}

func (h *testHost) receive() {
	for {
		env, err := h.conn.Receive()
		if err != nil {
			return
		}
		h.mu.Lock()
		if env.Channel == wire.ControlChannel && env.Msg.Op == wire.OpAnnounce {
			var a wire.Announce
			json.Unmarshal(env.Msg.Meta, &a)
			h.announced = append(h.announced, a)
			h.mu.Unlock()
			continue
		}
		if env.Epoch != h.epoch {
			h.foreign++
			h.mu.Unlock()
			continue
		}
		c, ok := h.waiting[callKey{env.Channel, env.Msg.ID}]
		if ok {
			delete(h.waiting, callKey{env.Channel, env.Msg.ID})
		} else {
			h.stray = append(h.stray, env)
		}
		h.mu.Unlock()
		if ok {
			c <- env.Msg
		}
	}
}

// hello starts a session with epoch and returns the agent's answer.
func (h *testHost) hello(epoch uint32) wire.HelloReply {
	h.t.Helper()
	h.mu.Lock()
	h.epoch = epoch
	h.mu.Unlock()
	h.conn.SetEpoch(epoch)
	m := h.call(wire.ControlChannel, wire.OpHello, wire.Hello{Version: wire.Version, Epoch: epoch})
	var r wire.HelloReply
	decode(h.t, m, &r)
	return r
}

// send sends a request without waiting; the reply, if any, lands in stray.
func (h *testHost) send(ch uint32, op wire.Op, id uint32, meta any, blobs ...[]byte) {
	h.t.Helper()
	m, err := wire.NewMessage(op, id, meta, blobs...)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.conn.Send(ch, m); err != nil {
		h.t.Fatal(err)
	}
}

// call sends a request and waits for its reply, which may be an OpError.
func (h *testHost) call(ch uint32, op wire.Op, meta any, blobs ...[]byte) *wire.Message {
	h.t.Helper()
	id := h.nextID.Add(1)
	c := make(chan *wire.Message, 1)
	h.mu.Lock()
	h.waiting[callKey{ch, id}] = c
	h.mu.Unlock()
	h.send(ch, op, id, meta, blobs...)
	select {
	case m := <-c:
		return m
	case <-time.After(callWait):
		h.t.Fatalf("no reply to %v on channel %d", op, ch)
		return nil
	}
}

// ok is call for a request that must succeed.
func (h *testHost) ok(ch uint32, op wire.Op, meta any, blobs ...[]byte) *wire.Message {
	h.t.Helper()
	m := h.call(ch, op, meta, blobs...)
	if m.Op != wire.OpReply {
		h.t.Fatalf("%v on channel %d failed: %s", op, ch, m.Meta)
	}
	return m
}

// fail is call for a request that must fail; it returns the error.
func (h *testHost) fail(ch uint32, op wire.Op, meta any, blobs ...[]byte) *wire.Error {
	h.t.Helper()
	m := h.call(ch, op, meta, blobs...)
	if m.Op != wire.OpError {
		h.t.Fatalf("%v on channel %d succeeded, want an error", op, ch)
	}
	e := &wire.Error{}
	decode(h.t, m, e)
	return e
}

// strays returns the messages that arrived for no pending call.
func (h *testHost) strays() []wire.Envelope {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]wire.Envelope(nil), h.stray...)
}

func decode(t *testing.T, m *wire.Message, v any) {
	t.Helper()
	if err := json.Unmarshal(m.Meta, v); err != nil {
		t.Fatalf("decode %s: %v", m.Meta, err)
	}
}

func (h *testHost) exec(ch uint32, req wire.Exec, stdin []byte) (wire.ExecResult, string, string) {
	h.t.Helper()
	m := h.ok(ch, wire.OpExec, req, stdin)
	var r wire.ExecResult
	decode(h.t, m, &r)
	return r, string(m.Blob(0)), string(m.Blob(1))
}

// sys makes a system call without buffers and returns its result.
func (h *testHost) sys(ch uint32, nr int64, args ...uint64) int64 {
	h.t.Helper()
	req := wire.Syscall{Nr: nr}
	copy(req.Args[:], args)
	ret, _ := h.syscall(ch, req)
	return ret
}

func (h *testHost) syscall(ch uint32, req wire.Syscall, blobs ...[]byte) (int64, [][]byte) {
	h.t.Helper()
	m := h.ok(ch, wire.OpSyscall, req, blobs...)
	var r wire.SyscallResult
	decode(h.t, m, &r)
	return r.Ret, m.Blobs
}

// eventually polls cond until it holds; the bound only guards against a
// hang.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(callWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// processGone reports whether pid has ended: no such process, or a zombie
// nobody reaped yet (the test process's orphans go to an init we do not
// control).
func processGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

// minus1 is -1 as a system call argument.
const minus1 = ^uint64(0)

// uid returns the real uid of a system call's caller as the test sees it.
func (h *testHost) uid(ch uint32) int64 { return h.sys(ch, unix.SYS_GETUID) }
