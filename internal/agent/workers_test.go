package agent

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire"
)

func (h *testHost) spawn(ch uint32, thread bool) wire.SpawnReply {
	h.t.Helper()
	var r wire.SpawnReply
	decode(h.t, h.ok(wire.MainChannel, wire.OpSpawn, wire.Spawn{Channel: ch, Thread: thread}), &r)
	return r
}

func (h *testHost) idU(ch uint32) string {
	h.t.Helper()
	_, out, _ := h.exec(ch, wire.Exec{Cmd: "id -u"}, nil)
	return strings.TrimSpace(out)
}

// rootFile is a file only root may read.
func rootFile(t *testing.T) string {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "secret")
	if err := os.WriteFile(path, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change credentials")
	}
}

// requireAllThreads skips a test of credentials given to a whole worker
// process: a binary linked with cgo cannot change other threads' (see
// applyAll), and the test binary is such a binary unless built with
// CGO_ENABLED=0, as provium itself always is and CI builds its tests.
func requireAllThreads(t *testing.T) {
	t.Helper()
	requireRoot(t)
	if !allThreadsSupported() {
		t.Skip("this test binary is linked with cgo, which cannot give credentials to every thread; run it with CGO_ENABLED=0")
	}
}

func TestThreadWorker(t *testing.T) {
	requireRoot(t)
	h := newSession(t)
	w := h.spawn(2, true)
	if w.PID != os.Getpid() {
		t.Errorf("thread worker pid = %d, want the agent's %d", w.PID, os.Getpid())
	}
	mainTID := h.sys(wire.MainChannel, unix.SYS_GETTID)
	if got := h.sys(2, unix.SYS_GETTID); got != int64(w.TID) || got == mainTID {
		t.Errorf("worker gettid = %d, spawn said %d, main is %d", got, w.TID, mainTID)
	}

	// Credentials changed with a raw setresuid stay on the worker's thread.
	if ret := h.sys(2, unix.SYS_SETRESUID, 1001, 1001, 1001); ret != 0 {
		t.Fatalf("setresuid = %d", ret)
	}
	if got := h.uid(2); got != 1001 {
		t.Errorf("worker uid = %d, want 1001", got)
	}
	if got := h.uid(wire.MainChannel); got != 0 {
		t.Errorf("main uid = %d, want 0", got)
	}
	if os.Getuid() != 0 {
		t.Errorf("the agent process is uid %d now", os.Getuid())
	}
	// ... and apply to the commands it runs and the files it opens.
	if got := h.idU(2); got != "1001" {
		t.Errorf("worker's id -u = %q", got)
	}
	if got := h.idU(wire.MainChannel); got != "0" {
		t.Errorf("main's id -u = %q", got)
	}
	secret := rootFile(t)
	if e := h.fail(2, wire.OpReadFile, wire.Path{Path: secret}); e.ErrnoName != "EACCES" {
		t.Errorf("worker read of a root 0600 file: %+v", e)
	}
	h.ok(wire.MainChannel, wire.OpReadFile, wire.Path{Path: secret})

	// Closing ends the thread, and its credentials with it.
	h.ok(2, wire.OpClose, nil)
	if e := h.fail(2, wire.OpPing, nil); e.Message != "no such worker (channel 2)" {
		t.Errorf("after close: %q", e.Message)
	}
	task := "/proc/self/task/" + strconv.Itoa(w.TID)
	eventually(t, "the worker's thread ends", func() bool {
		_, err := os.Stat(task)
		return err != nil
	})
}

func TestThreadWorkerStartsWithItsParentsCredentials(t *testing.T) {
	requireRoot(t)
	h := newSession(t)
	if ret := h.sys(wire.MainChannel, unix.SYS_SETRESUID, minus1, 2000, minus1); ret != 0 {
		t.Fatalf("setresuid = %d", ret)
	}
	h.spawn(3, true)
	if ret := h.sys(wire.MainChannel, unix.SYS_SETRESUID, minus1, 0, minus1); ret != 0 {
		t.Fatalf("restore euid = %d", ret)
	}
	if got := h.sys(3, unix.SYS_GETEUID); got != 2000 {
		t.Errorf("worker euid = %d, want the parent's 2000", got)
	}
	if got := h.sys(3, unix.SYS_GETUID); got != 0 {
		t.Errorf("worker uid = %d, want the parent's 0", got)
	}
	if got := h.sys(wire.MainChannel, unix.SYS_GETEUID); got != 0 {
		t.Errorf("main euid = %d after restoring it", got)
	}
	h.ok(3, wire.OpClose, nil)
}

func TestForkWorker(t *testing.T) {
	requireRoot(t)
	h := newSession(t)

	// A descriptor the test opened before the spawn.
	path := filepath.Join(t.TempDir(), "before-spawn")
	fd := openat(t, h, wire.MainChannel, path, unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC)

	w := h.spawn(2, false)
	if w.PID == os.Getpid() || w.PID <= 0 {
		t.Fatalf("fork worker pid = %d, agent is %d", w.PID, os.Getpid())
	}
	if got := h.sys(2, unix.SYS_GETPID); got != int64(w.PID) {
		t.Errorf("worker getpid = %d, spawn said %d", got, w.PID)
	}
	if got := h.sys(2, unix.SYS_GETTID); got != int64(w.TID) {
		t.Errorf("worker gettid = %d, spawn said %d", got, w.TID)
	}

	req := wire.Syscall{Nr: unix.SYS_WRITE, Bufs: []wire.Buf{{Arg: 1}}}
	req.Args[0], req.Args[2] = uint64(fd), 5
	if ret, _ := h.syscall(2, req, []byte("abcde")); ret != 5 {
		t.Errorf("write to the inherited fd %d = %d", fd, ret)
	}
	if b, _ := os.ReadFile(path); string(b) != "abcde" {
		t.Errorf("file has %q", b)
	}

	if ret := h.sys(2, unix.SYS_SETRESUID, 1001, 1001, 1001); ret != 0 {
		t.Fatalf("setresuid = %d", ret)
	}
	if got, want := h.uid(2), int64(1001); got != want {
		t.Errorf("worker uid = %d, want %d", got, want)
	}
	if got := h.uid(wire.MainChannel); got != 0 {
		t.Errorf("main uid = %d, want 0", got)
	}
	if got := h.idU(2); got != "1001" {
		t.Errorf("worker's id -u = %q", got)
	}

	h.ok(2, wire.OpClose, nil)
	if e := h.fail(2, wire.OpPing, nil); e.Message != "no such worker (channel 2)" {
		t.Errorf("after close: %q", e.Message)
	}
	eventually(t, "the worker process is reaped", func() bool { return unix.Kill(w.PID, 0) == unix.ESRCH })
}

func TestForkWorkerStartsWithItsParentsCredentials(t *testing.T) {
	requireAllThreads(t)
	h := newSession(t)
	if ret := h.sys(wire.MainChannel, unix.SYS_SETRESUID, minus1, 2000, minus1); ret != 0 {
		t.Fatalf("setresuid = %d", ret)
	}
	h.spawn(2, false)
	if ret := h.sys(wire.MainChannel, unix.SYS_SETRESUID, minus1, 0, minus1); ret != 0 {
		t.Fatalf("restore euid = %d", ret)
	}
	if got := h.sys(2, unix.SYS_GETEUID); got != 2000 {
		t.Errorf("worker euid = %d, want the parent's 2000", got)
	}
	// All three, as a fork keeps them: the exec that started the worker
	// made the saved uid the effective one, and the worker restored it.
	ids := wire.Syscall{Nr: unix.SYS_GETRESUID, Bufs: []wire.Buf{{Arg: 0}, {Arg: 1}, {Arg: 2}}}
	if ret, out := h.syscall(2, ids, make([]byte, 4), make([]byte, 4), make([]byte, 4)); ret != 0 ||
		binary.LittleEndian.Uint32(out[0]) != 0 || binary.LittleEndian.Uint32(out[1]) != 2000 || binary.LittleEndian.Uint32(out[2]) != 0 {
		t.Errorf("worker getresuid = %d %v, want 0 2000 0", ret, out)
	}
	h.ok(2, wire.OpClose, nil)
}

func TestForkWorkerDeath(t *testing.T) {
	h := newSession(t)
	h.spawn(3, false)
	// The request that kills the worker gets the news as its answer, and
	// so does every later one; the rest of the agent goes on.
	want := "worker (channel 3) exited: exit status 3"
	if e := h.fail(3, wire.OpSyscall, wire.Syscall{Nr: unix.SYS_EXIT_GROUP, Args: [6]uint64{3}}); e.Message != want {
		t.Errorf("exit_group: %q, want %q", e.Message, want)
	}
	if e := h.fail(3, wire.OpPing, nil); e.Message != want {
		t.Errorf("after exit: %q, want %q", e.Message, want)
	}
	h.ok(wire.MainChannel, wire.OpPing, nil)
	// Closing the dead worker is not an error: it is gone either way.
	h.ok(3, wire.OpClose, nil)
	// The channel can be used again.
	h.spawn(3, false)
	h.ok(3, wire.OpPing, nil)
}

// exit(2) in a worker ends that worker, not just its thread under the Go
// runtime: the call and every later one get the news at once.
func TestWorkerExit(t *testing.T) {
	h := newSession(t)
	for _, thread := range []bool{false, true} {
		w := h.spawn(5, thread)
		want := "worker (channel 5) exited: exit status 7"
		if e := h.fail(5, wire.OpSyscall, wire.Syscall{Nr: unix.SYS_EXIT, Args: [6]uint64{7}}); e.Message != want {
			t.Errorf("thread=%v: exit: %q, want %q", thread, e.Message, want)
		}
		if e := h.fail(5, wire.OpPing, nil); e.Message != want {
			t.Errorf("thread=%v: after exit: %q, want %q", thread, e.Message, want)
		}
		if !thread {
			eventually(t, "the worker process is gone", func() bool { return processGone(w.PID) })
		}
		h.ok(wire.MainChannel, wire.OpPing, nil)
		// Closing the dead worker is not an error: it is gone either way.
		h.ok(5, wire.OpClose, nil)
		// The channel can be used again.
		h.spawn(5, thread)
		h.ok(5, wire.OpPing, nil)
		h.ok(5, wire.OpClose, nil)
	}
	// On the agent's own identity it would stop the agent: refused.
	if e := h.fail(wire.MainChannel, wire.OpSyscall, wire.Syscall{Nr: unix.SYS_EXIT}); !strings.Contains(e.Message, "own agent identity") {
		t.Errorf("exit on the main channel: %q", e.Message)
	}
	h.ok(wire.MainChannel, wire.OpPing, nil)
}

func TestSpawnErrors(t *testing.T) {
	h := newSession(t)
	for _, ch := range []uint32{wire.ControlChannel, wire.MainChannel} {
		if e := h.fail(wire.MainChannel, wire.OpSpawn, wire.Spawn{Channel: ch}); !strings.Contains(e.Message, "reserved") {
			t.Errorf("spawn on channel %d: %q", ch, e.Message)
		}
	}
	h.spawn(4, true)
	if e := h.fail(wire.MainChannel, wire.OpSpawn, wire.Spawn{Channel: 4}); !strings.Contains(e.Message, "already has a worker") {
		t.Errorf("spawn on a busy channel: %q", e.Message)
	}
	if e := h.fail(wire.MainChannel, wire.OpClose, nil); !strings.Contains(e.Message, "not a worker") {
		t.Errorf("close of the main channel: %q", e.Message)
	}
	if e := h.fail(9, wire.OpClose, nil); e.Message != "no such worker (channel 9)" {
		t.Errorf("close of an unknown channel: %q", e.Message)
	}
}

// A long operation on one identity does not hold up another.
func TestIdentitiesRunConcurrently(t *testing.T) {
	h := newSession(t)
	h.spawn(2, true)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	// The worker blocks in read(2) on an empty pipe...
	req := wire.Syscall{Nr: unix.SYS_READ, Bufs: []wire.Buf{{Arg: 1}}}
	req.Args[0], req.Args[2] = uint64(r.Fd()), 1
	c := make(chan *wire.Message, 1)
	h.mu.Lock()
	h.waiting[callKey{2, 4242}] = c
	h.mu.Unlock()
	h.send(2, wire.OpSyscall, 4242, req, []byte{0})
	// ... while the main identity writes to it.
	wreq := wire.Syscall{Nr: unix.SYS_WRITE, Bufs: []wire.Buf{{Arg: 1}}}
	wreq.Args[0], wreq.Args[2] = uint64(w.Fd()), 1
	if ret, _ := h.syscall(wire.MainChannel, wreq, []byte("x")); ret != 1 {
		t.Fatalf("write = %d", ret)
	}
	m := <-c
	var res wire.SyscallResult
	decode(t, m, &res)
	if res.Ret != 1 || string(m.Blob(0)) != "x" {
		t.Errorf("read = %d, %q", res.Ret, m.Blob(0))
	}
}
