package agent

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire"
)

func TestHelloStartsSessions(t *testing.T) {
	h := newTestHost(t)

	// Before any Hello, requests are dropped without an answer.
	h.send(wire.MainChannel, wire.OpPing, 1000, nil)

	r := h.hello(7)
	if r.Version != wire.Version || r.PID != os.Getpid() || r.Boots != 1 || r.Kernel != kernelRelease() || r.Kernel == "" {
		t.Errorf("hello reply = %+v, want version %d, pid %d, boots 1, kernel %q", r, wire.Version, os.Getpid(), kernelRelease())
	}
	// The host repeats its Hello until answered: same epoch, same session.
	if r := h.hello(7); r.Boots != 1 {
		t.Errorf("repeated hello: boots = %d, want 1", r.Boots)
	}
	id := h.nextID.Load() // that Hello's
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
	old := wire.NewConn(h.raw, 7)
	m, _ := wire.NewMessage(wire.OpPing, 2000, nil)
	if err := old.Send(wire.MainChannel, m); err != nil {
		t.Fatal(err)
	}
	h.ok(wire.MainChannel, wire.OpPing, nil)

	// The main identity serves its queue in order, so an answer to the
	// dropped requests would have come before the last ping's.
	for _, env := range h.strays() {
		t.Errorf("unexpected message %v id %d on channel %d", env.Msg.Op, env.Msg.ID, env.Channel)
	}
	if h.foreign != 0 {
		t.Errorf("%d messages carried a stale epoch", h.foreign)
	}
}

func TestNewSessionEndsTheOldOne(t *testing.T) {
	h := newSession(t)

	var job wire.Job
	decode(t, h.ok(wire.MainChannel, wire.OpBackground, wire.Exec{Cmd: "exec sleep 1000"}), &job)
	h.ok(wire.MainChannel, wire.OpSpawn, wire.Spawn{Channel: 2, Thread: true})
	// A command of the old session is killed and its answer never sent.
	h.send(wire.MainChannel, wire.OpExec, 5000, wire.Exec{Cmd: "exec sleep 1000"})

	h.hello(0x2002)
	h.ok(wire.MainChannel, wire.OpPing, nil)
	for _, env := range h.strays() {
		t.Errorf("unexpected message %v id %d on channel %d", env.Msg.Op, env.Msg.ID, env.Channel)
	}
	if e := h.fail(wire.MainChannel, wire.OpJobWait, wire.JobWait{ID: job.ID}); !strings.Contains(e.Message, "no such job") {
		t.Errorf("job of the old session: %q, want no such job", e.Message)
	}
	if e := h.fail(2, wire.OpPing, nil); e.Message != "no such worker (channel 2)" {
		t.Errorf("worker of the old session: %q", e.Message)
	}
	eventually(t, "job of the old session is killed", func() bool { return processGone(job.PID) })
}

// An agent announces itself when it starts serving, before any Hello.
func TestAnnouncement(t *testing.T) {
	h := newTestHost(t)
	eventually(t, "the announcement", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.announced) == 1
	})
	if a := h.announced[0]; a.PID != os.Getpid() || a.Restarted != "" {
		t.Errorf("announcement %+v", a)
	}
}

func TestPing(t *testing.T) {
	h := newSession(t)
	if m := h.ok(wire.MainChannel, wire.OpPing, nil); len(m.Meta) != 0 || len(m.Blobs) != 0 {
		t.Errorf("ping reply has meta %q and %d blobs, want neither", m.Meta, len(m.Blobs))
	}
	h.ok(wire.ControlChannel, wire.OpPing, nil)
}

func TestUnknownOperations(t *testing.T) {
	h := newSession(t)
	if e := h.fail(wire.MainChannel, wire.Op(999), nil); !strings.Contains(e.Message, "not an operation") {
		t.Errorf("unknown op: %q", e.Message)
	}
	if e := h.fail(wire.MainChannel, wire.OpQuiesce, nil); !strings.Contains(e.Message, "not an operation") {
		t.Errorf("control op on the main channel: %q", e.Message)
	}
	if e := h.fail(wire.ControlChannel, wire.OpExec, wire.Exec{Cmd: "true"}); !strings.Contains(e.Message, "not a control channel operation") {
		t.Errorf("identity op on the control channel: %q", e.Message)
	}
	// Meta of the wrong shape.
	m := &wire.Message{Op: wire.OpReadFile, ID: 77, Meta: []byte(`{"path": 3}`)}
	h.mu.Lock()
	c := make(chan *wire.Message, 1)
	h.waiting[callKey{wire.MainChannel, 77}] = c
	h.mu.Unlock()
	if err := h.conn.Send(wire.MainChannel, m); err != nil {
		t.Fatal(err)
	}
	if r := <-c; r.Op != wire.OpError || !strings.Contains(string(r.Meta), "malformed") {
		t.Errorf("bad meta: %v %s", r.Op, r.Meta)
	}
}

func TestPanicFailsOneRequest(t *testing.T) {
	const opPanic = wire.Op(900)
	ops[opPanic] = func(*identity, request) (*wire.Message, error) { panic("boom") }
	defer delete(ops, opPanic)
	h := newSession(t)
	if e := h.fail(wire.MainChannel, opPanic, nil); !strings.Contains(e.Message, "internal error: boom") {
		t.Errorf("panic: %q", e.Message)
	}
	h.ok(wire.MainChannel, wire.OpPing, nil)
}

// frameHeader builds a frame header with a valid CRC, whatever it says.
func frameHeader(epoch, ch, length uint32, flags byte) []byte {
	b := make([]byte, wire.HeaderSize)
	binary.LittleEndian.PutUint32(b[0:], wire.Magic)
	binary.LittleEndian.PutUint32(b[4:], epoch)
	binary.LittleEndian.PutUint32(b[8:], ch)
	binary.LittleEndian.PutUint32(b[12:], length)
	b[16] = flags
	binary.LittleEndian.PutUint32(b[20:], crc32.Checksum(b[:20], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func TestBrokenStreamStartsOver(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bytes []byte
	}{
		{"frame over the bound", frameHeader(0x1001, wire.MainChannel, wire.MaxChunk+1, wire.FlagLast)},
		{"message that does not decode", append(frameHeader(0x1001, wire.MainChannel, 3, wire.FlagLast), 1, 2, 3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newSession(t)
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
	h := newTestHost(t)
	if _, err := h.raw.Write([]byte("console noise PRVM\x00\x01 more noise")); err != nil {
		t.Fatal(err)
	}
	h.hello(5)
	h.ok(wire.MainChannel, wire.OpPing, nil)
}

func TestPowerOff(t *testing.T) {
	h := newSession(t)
	h.ok(wire.ControlChannel, wire.OpPowerOff, nil)
	// The reply goes out first, then the agent powers off.
	eventually(t, "power off is called", h.powered.Load)
}

func TestQuiesce(t *testing.T) {
	h := newSession(t)
	var pids []int
	start := func(ch uint32) wire.Job {
		var j wire.Job
		decode(t, h.ok(ch, wire.OpBackground, wire.Exec{Cmd: "exec sleep 1000"}), &j)
		pids = append(pids, j.PID)
		return j
	}
	mainJob := start(wire.MainChannel)
	h.ok(wire.MainChannel, wire.OpSpawn, wire.Spawn{Channel: 2, Thread: true})
	start(2)
	var fork wire.SpawnReply
	decode(t, h.ok(wire.MainChannel, wire.OpSpawn, wire.Spawn{Channel: 3}), &fork)
	start(3)

	h.ok(wire.ControlChannel, wire.OpQuiesce, nil)

	if e := h.fail(wire.MainChannel, wire.OpJobWait, wire.JobWait{ID: mainJob.ID}); !strings.Contains(e.Message, "no such job") {
		t.Errorf("main job after quiesce: %q", e.Message)
	}
	for _, ch := range []uint32{2, 3} {
		if e := h.fail(ch, wire.OpPing, nil); e.Message != "no such worker (channel "+strconv.Itoa(int(ch))+")" {
			t.Errorf("worker %d after quiesce: %q", ch, e.Message)
		}
	}
	if err := unix.Kill(fork.PID, 0); err != unix.ESRCH {
		t.Errorf("worker process %d after quiesce: kill 0 = %v, want ESRCH", fork.PID, err)
	}
	for _, pid := range pids {
		eventually(t, "job "+strconv.Itoa(pid)+" is killed", func() bool { return processGone(pid) })
	}
	h.ok(wire.MainChannel, wire.OpPing, nil)
}
