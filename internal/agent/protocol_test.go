package agent

import (
	"math"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire"
)

// The tests here speak frames to the agent through package wire, for what
// the real client never sends: requests before a Hello, repeated Hellos,
// frames of an old epoch, broken frames, requests it would refuse to
// build. Requests go one at a time, so the next message from the agent
// must answer the last one: any other is a reply nobody asked for.

// rawHost is the host end of a stream to an in-process agent.
type rawHost struct {
	t         *testing.T
	raw       net.Conn
	conn      *wire.Conn
	in        chan wire.Envelope // the agent's messages but announcements
	announced chan wire.Announce
	epoch     uint32
	id        uint32
}

// newRawHost starts an agent and returns the host end, before any Hello.
func newRawHost(t *testing.T) *rawHost {
	_, raw := startAgent(t)
	h := &rawHost{t: t, raw: raw, conn: wire.NewConn(raw, 0), in: make(chan wire.Envelope, 16), announced: make(chan wire.Announce, 4)}
	go func() {
		for {
			env, err := h.conn.Receive()
			if err != nil {
				return
			}
			if env.Channel == wire.ControlChannel && env.Msg.Op == wire.OpAnnounce {
				var a wire.Announce
				env.Msg.Decode(&a)
				h.announced <- a
				continue
			}
			h.in <- env
		}
	}()
	return h
}

// newRawSession is newRawHost plus a Hello.
func newRawSession(t *testing.T) *rawHost {
	h := newRawHost(t)
	h.hello(0x1001)
	return h
}

// send sends a request without waiting for its reply.
func (h *rawHost) send(ch uint32, op wire.Op, id uint32, meta any, blobs ...[]byte) {
	h.t.Helper()
	m, err := wire.NewMessage(op, id, meta, blobs...)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.conn.Send(ch, m); err != nil {
		h.t.Fatal(err)
	}
}

// call sends a request and returns the next message, which must be its
// reply in the current epoch (an OpReply or an OpError).
func (h *rawHost) call(ch uint32, op wire.Op, meta any, blobs ...[]byte) *wire.Message {
	h.t.Helper()
	h.id++
	h.send(ch, op, h.id, meta, blobs...)
	select {
	case env := <-h.in:
		if env.Channel != ch || env.Msg.ID != h.id || env.Epoch != h.epoch {
			h.t.Fatalf("waiting for the answer to %v %d on channel %d in epoch %#x: got %v %d on channel %d in epoch %#x",
				op, h.id, ch, h.epoch, env.Msg.Op, env.Msg.ID, env.Channel, env.Epoch)
		}
		return env.Msg
	case <-time.After(callWait):
		h.t.Fatalf("no reply to %v on channel %d", op, ch)
		return nil
	}
}

// hello starts a session with epoch and returns the agent's answer.
func (h *rawHost) hello(epoch uint32) wire.HelloReply {
	h.t.Helper()
	h.epoch = epoch
	h.conn.UseEpoch(epoch)
	var r wire.HelloReply
	h.decode(h.ok(wire.ControlChannel, wire.OpHello, wire.Hello{Version: wire.Version, Epoch: epoch}), &r)
	return r
}

// ok is call for a request that must succeed.
func (h *rawHost) ok(ch uint32, op wire.Op, meta any, blobs ...[]byte) *wire.Message {
	h.t.Helper()
	m := h.call(ch, op, meta, blobs...)
	if m.Op != wire.OpReply {
		h.t.Fatalf("%v on channel %d failed: %s", op, ch, m.Meta)
	}
	return m
}

// fail is call for a request that must fail; it returns the error.
func (h *rawHost) fail(ch uint32, op wire.Op, meta any, blobs ...[]byte) *wire.Error {
	h.t.Helper()
	m := h.call(ch, op, meta, blobs...)
	if m.Op != wire.OpError {
		h.t.Fatalf("%v on channel %d succeeded, want an error", op, ch)
	}
	e := &wire.Error{}
	h.decode(m, e)
	return e
}

func (h *rawHost) decode(m *wire.Message, v any) {
	h.t.Helper()
	if err := m.Decode(v); err != nil {
		h.t.Fatal(err)
	}
}

// An agent announces itself when it starts serving, before any Hello.
func TestAnnouncement(t *testing.T) {
	h := newRawHost(t)
	select {
	case a := <-h.announced:
		if a.PID != os.Getpid() || a.Restarted != "" {
			t.Errorf("announcement %+v", a)
		}
	case <-time.After(callWait):
		t.Fatal("no announcement")
	}
}

func TestHelloStartsSessions(t *testing.T) {
	h := newRawHost(t)

	// Before any Hello, requests are dropped without an answer: the next
	// message is the Hello's reply.
	h.send(wire.MainChannel, wire.OpPing, 1000, nil)

	r := h.hello(7)
	if r.Version != wire.Version || r.PID != os.Getpid() || r.Boots != 1 || r.Kernel != kernelRelease() || r.Kernel == "" {
		t.Errorf("hello reply = %+v, want version %d, pid %d, boots 1, kernel %q", r, wire.Version, os.Getpid(), kernelRelease())
	}
	// The host repeats its Hello until answered: same epoch, same session.
	if r := h.hello(7); r.Boots != 1 {
		t.Errorf("repeated hello: boots = %d, want 1", r.Boots)
	}
	id := h.id // that Hello's
	h.ok(wire.MainChannel, wire.OpPing, nil)
	// Copies of an answered Hello (the host's repeats, queued while the
	// agent started) get no answer.
	for range 3 {
		h.send(wire.ControlChannel, wire.OpHello, id, wire.Hello{Version: wire.Version, Epoch: 7})
	}
	h.ok(wire.MainChannel, wire.OpPing, nil)

	if r := h.hello(9); r.Boots != 2 {
		t.Errorf("new epoch: boots = %d, want 2", r.Boots)
	}
	// A frame of the old epoch is dropped; one of the new epoch is served.
	m, _ := wire.NewMessage(wire.OpPing, 2000, nil)
	if err := wire.NewConn(h.raw, 7).Send(wire.MainChannel, m); err != nil {
		t.Fatal(err)
	}
	h.ok(wire.MainChannel, wire.OpPing, nil)
}

func TestNewSessionEndsTheOldOne(t *testing.T) {
	h := newRawSession(t)

	var job wire.Job
	h.decode(h.ok(wire.MainChannel, wire.OpBackground, wire.Exec{Cmd: "exec sleep 1000"}), &job)
	h.ok(wire.MainChannel, wire.OpSpawn, wire.Spawn{Channel: 2, Thread: true})
	// A command of the old session is killed and its answer never sent:
	// the next message is the new Hello's reply.
	h.send(wire.MainChannel, wire.OpExec, 5000, wire.Exec{Cmd: "exec sleep 1000"})

	h.hello(0x2002)
	h.ok(wire.MainChannel, wire.OpPing, nil)
	if e := h.fail(wire.MainChannel, wire.OpJobWait, wire.JobWait{ID: job.ID}); !strings.Contains(e.Message, "no such job") {
		t.Errorf("job of the old session: %q, want no such job", e.Message)
	}
	if e := h.fail(2, wire.OpPing, nil); e.Message != "no such worker (channel 2)" {
		t.Errorf("worker of the old session: %q", e.Message)
	}
	eventually(t, "job of the old session is killed", func() bool { return processGone(job.PID) })
}

func TestPing(t *testing.T) {
	h := newRawSession(t)
	if m := h.ok(wire.MainChannel, wire.OpPing, nil); len(m.Meta) != 0 || len(m.Blobs) != 0 {
		t.Errorf("ping reply has meta %q and %d blobs, want neither", m.Meta, len(m.Blobs))
	}
	h.ok(wire.ControlChannel, wire.OpPing, nil)
}

// Only requests the agent must refuse: a valid one would set this
// host's clock.
func TestSetClockRefusals(t *testing.T) {
	h := newRawSession(t)
	if e := h.fail(wire.ControlChannel, wire.OpSetClock, wire.SetClock{UnixNano: -1}); !strings.Contains(e.Message, "before 1970") {
		t.Errorf("a time before the epoch: %q", e.Message)
	}
	if e := h.fail(wire.MainChannel, wire.OpSetClock, wire.SetClock{UnixNano: -1}); !strings.Contains(e.Message, "not an operation") {
		t.Errorf("set_clock on the main channel: %q", e.Message)
	}
}

func TestUnknownOperations(t *testing.T) {
	h := newRawSession(t)
	if e := h.fail(wire.MainChannel, wire.Op(999), nil); !strings.Contains(e.Message, "not an operation") {
		t.Errorf("unknown op: %q", e.Message)
	}
	if e := h.fail(wire.MainChannel, wire.OpQuiesce, nil); !strings.Contains(e.Message, "not an operation") {
		t.Errorf("control op on the main channel: %q", e.Message)
	}
	if e := h.fail(wire.ControlChannel, wire.OpExec, wire.Exec{Cmd: "true"}); !strings.Contains(e.Message, "not a control channel operation") {
		t.Errorf("identity op on the control channel: %q", e.Message)
	}
	if e := h.fail(wire.MainChannel, wire.OpReadFile, map[string]int{"path": 3}); !strings.Contains(e.Message, "malformed") {
		t.Errorf("meta of the wrong shape: %q", e.Message)
	}
}

func TestPanicFailsOneRequest(t *testing.T) {
	const opPanic = wire.Op(900)
	ops[opPanic] = func(*identity, request) (*wire.Message, error) { panic("boom") }
	defer delete(ops, opPanic)
	h := newRawSession(t)
	if e := h.fail(wire.MainChannel, opPanic, nil); !strings.Contains(e.Message, "internal error: boom") {
		t.Errorf("panic: %q", e.Message)
	}
	h.ok(wire.MainChannel, wire.OpPing, nil)
}

// frame is a frame with a valid header, whatever the header says.
func frame(h wire.FrameHeader, payload ...byte) []byte {
	b := make([]byte, wire.HeaderSize, wire.HeaderSize+len(payload))
	h.Encode(b)
	return append(b, payload...)
}

func TestBrokenStreamStartsOver(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bytes []byte
	}{
		{"frame over the bound", frame(wire.FrameHeader{Epoch: 0x1001, Channel: wire.MainChannel, Length: wire.MaxChunk + 1, Flags: wire.FlagLast})},
		{"message that does not decode", frame(wire.FrameHeader{Epoch: 0x1001, Channel: wire.MainChannel, Length: 3, Flags: wire.FlagLast}, 1, 2, 3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newRawSession(t)
			if _, err := h.raw.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			// The session is over; a new Hello starts the next one on
			// the same stream.
			if r := h.hello(0x3003); r.Boots != 2 {
				t.Errorf("boots = %d, want 2", r.Boots)
			}
			h.ok(wire.MainChannel, wire.OpPing, nil)
		})
	}
}

func TestGarbageIsSkipped(t *testing.T) {
	h := newRawHost(t)
	if _, err := h.raw.Write([]byte("console noise PRVM\x00\x01 more noise")); err != nil {
		t.Fatal(err)
	}
	h.hello(5)
	h.ok(wire.MainChannel, wire.OpPing, nil)
}

// The client picks channels itself; the agent still checks them.
func TestSpawnChannels(t *testing.T) {
	h := newRawSession(t)
	for _, ch := range []uint32{wire.ControlChannel, wire.MainChannel} {
		if e := h.fail(wire.MainChannel, wire.OpSpawn, wire.Spawn{Channel: ch}); !strings.Contains(e.Message, "reserved") {
			t.Errorf("spawn on channel %d: %q", ch, e.Message)
		}
	}
	h.ok(wire.MainChannel, wire.OpSpawn, wire.Spawn{Channel: 4, Thread: true})
	if e := h.fail(wire.MainChannel, wire.OpSpawn, wire.Spawn{Channel: 4}); !strings.Contains(e.Message, "already has a worker") {
		t.Errorf("spawn on a busy channel: %q", e.Message)
	}
	if e := h.fail(wire.MainChannel, wire.OpClose, nil); !strings.Contains(e.Message, "not a worker") {
		t.Errorf("close of the main channel: %q", e.Message)
	}
	if e := h.fail(9, wire.OpClose, nil); e.Message != "no such worker (channel 9)" {
		t.Errorf("close of an unknown channel: %q", e.Message)
	}

	// A closed worker's channel answers that it has none, and takes a new
	// worker; so does the channel of one that exited.
	for _, thread := range []bool{false, true} {
		h.ok(wire.MainChannel, wire.OpSpawn, wire.Spawn{Channel: 3, Thread: thread})
		h.ok(3, wire.OpClose, nil)
		if e := h.fail(3, wire.OpPing, nil); e.Message != "no such worker (channel 3)" {
			t.Errorf("thread=%v: after close: %q", thread, e.Message)
		}
		h.ok(wire.MainChannel, wire.OpSpawn, wire.Spawn{Channel: 3, Thread: thread})
		h.fail(3, wire.OpSyscall, wire.Syscall{Nr: unix.SYS_EXIT, Args: [6]uint64{7}})
		h.ok(3, wire.OpClose, nil)
		h.ok(wire.MainChannel, wire.OpSpawn, wire.Spawn{Channel: 3, Thread: thread})
		h.ok(3, wire.OpPing, nil)
		h.ok(3, wire.OpClose, nil)
	}
}

// The agent checks a system call request itself, for a host that does not.
func TestSyscallRejectsInvalidRequests(t *testing.T) {
	h := newRawSession(t)
	for _, tc := range []struct {
		name  string
		req   wire.Syscall
		blobs [][]byte
		want  string
	}{
		{"argument index out of range", wire.Syscall{Nr: unix.SYS_GETPID, Bufs: []wire.Buf{{Arg: 6}}}, [][]byte{{0}}, "outside"},
		{"two buffers for one argument", wire.Syscall{Nr: unix.SYS_GETPID, Bufs: []wire.Buf{{Arg: 1}, {Arg: 1}}}, [][]byte{{0}, {0}}, "has two buffers"},
		{"buffer without data", wire.Syscall{Nr: unix.SYS_GETPID, Bufs: []wire.Buf{{Arg: 0}}}, nil, "no data"},
		{"too many blobs", wire.Syscall{Nr: unix.SYS_GETPID}, [][]byte{{0}}, "blobs"},
		{"pointer outside its buffer", wire.Syscall{Nr: unix.SYS_GETPID, Bufs: []wire.Buf{{Arg: 0}}, Ptrs: []wire.Ptr{{Buf: 0, Offset: 4, Len: 1}}}, [][]byte{make([]byte, 8)}, "does not leave 8 bytes"},
		{"pointer offset that overflows", wire.Syscall{Nr: unix.SYS_GETPID, Bufs: []wire.Buf{{Arg: 0}}, Ptrs: []wire.Ptr{{Buf: 0, Offset: math.MaxInt - 4, Len: 1}}}, [][]byte{make([]byte, 8)}, "does not leave 8 bytes"},
		{"pointer to a missing buffer", wire.Syscall{Nr: unix.SYS_GETPID, Ptrs: []wire.Ptr{{Buf: 0, Len: 1}}}, nil, "is for buffer 0 of 0"},
		{"too much memory", wire.Syscall{Nr: unix.SYS_GETPID, Bufs: []wire.Buf{{Arg: 0}}, Ptrs: []wire.Ptr{{Buf: 0, Len: wire.MaxSyscallMemory + 1}}}, [][]byte{make([]byte, 8)}, "is outside 0.."},
		{"lengths that overflow", wire.Syscall{Nr: unix.SYS_GETPID, Bufs: []wire.Buf{{Arg: 0}}, Ptrs: []wire.Ptr{{Buf: 0, Len: math.MaxInt}, {Buf: 0, Len: math.MaxInt}}}, [][]byte{make([]byte, 8)}, "is outside 0.."},
		{"many small pointers", wire.Syscall{Nr: unix.SYS_GETPID, Bufs: []wire.Buf{{Arg: 0}}, Ptrs: manyPointers(40000)}, [][]byte{make([]byte, 8)}, "pages"},
	} {
		e := h.fail(wire.MainChannel, wire.OpSyscall, tc.req, tc.blobs...)
		if !strings.Contains(e.Message, tc.want) || !strings.Contains(e.Message, "invalid request") {
			t.Errorf("%s: error %q, want one about %q", tc.name, e.Message, tc.want)
		}
	}
	h.ok(wire.MainChannel, wire.OpPing, nil)
}

func manyPointers(n int) []wire.Ptr {
	p := make([]wire.Ptr, n)
	for i := range p {
		p[i] = wire.Ptr{Buf: 0, Len: 1}
	}
	return p
}

// Terminals have ids from 1, and a read waits at most maxPtyWait, which
// the client never asks to exceed.
func TestPtyLimits(t *testing.T) {
	h := newRawSession(t)
	var o wire.PtyOpened
	h.decode(h.ok(wire.MainChannel, wire.OpPtyOpen, wire.PtyOpen{Argv: []string{"/bin/sh", "-c", "sleep 1000"}}), &o)
	if o.ID <= 0 || o.PID <= 0 {
		t.Errorf("pty_open = %+v", o)
	}
	if e := h.fail(wire.ControlChannel, wire.OpPtyRead, wire.PtyRead{ID: o.ID, TimeoutMs: maxPtyWait.Milliseconds() + 1}); !strings.Contains(e.Message, "out of range") {
		t.Errorf("an unbounded read: %v", e)
	}
	h.ok(wire.ControlChannel, wire.OpPtyClose, wire.PtyID{ID: o.ID})
}
