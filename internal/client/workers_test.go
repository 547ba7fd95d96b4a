package client_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/client"
	"github.com/provium/provium/internal/wire"
)

// minus1 is -1 as a system call argument.
const minus1 = ^uint64(0)

// idU is what id -u prints in a command of a.
func idU(t *testing.T, a *client.Agent) string {
	t.Helper()
	return strings.TrimSpace(string(run(t, a, wire.Exec{Cmd: "id -u"}, nil).Stdout))
}

// becomeUID1001 makes worker w of a uid 1001 with a raw setresuid: w and
// the commands it runs have it, a keeps uid 0.
func becomeUID1001(t *testing.T, a, w *client.Agent) {
	t.Helper()
	if ret := sys(t, w, unix.SYS_SETRESUID, 1001, 1001, 1001); ret != 0 {
		t.Fatalf("setresuid = %d", ret)
	}
	if got := sys(t, w, unix.SYS_GETUID); got != 1001 {
		t.Errorf("worker uid = %d, want 1001", got)
	}
	if got := sys(t, a, unix.SYS_GETUID); got != 0 {
		t.Errorf("main uid = %d, want 0", got)
	}
	if got := idU(t, w); got != "1001" {
		t.Errorf("worker's id -u = %q", got)
	}
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

// requireAllThreads skips a test of credentials given to a whole worker
// process: a binary linked with cgo cannot change other threads', and the
// test binary is such a binary unless built with CGO_ENABLED=0, as
// provium itself always is and CI builds its tests.
func requireAllThreads(t *testing.T) {
	t.Helper()
	requireRoot(t)
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_GETPID, 0, 0, 0); e == unix.ENOTSUP {
		t.Skip("this test binary is linked with cgo, which cannot give credentials to every thread; run it with CGO_ENABLED=0")
	}
}

func TestThreadWorker(t *testing.T) {
	requireRoot(t)
	a := open(t, newGuest(t)).Main()
	w, rep := spawn(t, a, true)
	if rep.PID != os.Getpid() {
		t.Errorf("thread worker pid = %d, want the agent's %d", rep.PID, os.Getpid())
	}
	mainTID := sys(t, a, unix.SYS_GETTID)
	if got := sys(t, w, unix.SYS_GETTID); got != int64(rep.TID) || got == mainTID {
		t.Errorf("worker gettid = %d, spawn said %d, main is %d", got, rep.TID, mainTID)
	}

	// Credentials changed with a raw setresuid stay on the worker's thread.
	becomeUID1001(t, a, w)
	if os.Getuid() != 0 {
		t.Errorf("the agent process is uid %d now", os.Getuid())
	}
	// ... and apply to the files it opens; main's commands keep uid 0.
	if got := idU(t, a); got != "0" {
		t.Errorf("main's id -u = %q", got)
	}
	secret := rootFile(t)
	_, err := w.ReadFile(bounded(t), secret)
	if e := opError(t, err); e.ErrnoName != "EACCES" {
		t.Errorf("worker read of a root 0600 file: %+v", e)
	}
	if _, err := a.ReadFile(bounded(t), secret); err != nil {
		t.Errorf("main read of a root 0600 file: %v", err)
	}

	// Closing ends the thread, and its credentials with it.
	if err := w.Close(bounded(t)); err != nil {
		t.Fatal(err)
	}
	if err := w.Ping(bounded(t)); !errors.Is(err, client.ErrClosed) {
		t.Errorf("a call after close = %v, want ErrClosed", err)
	}
	task := "/proc/self/task/" + strconv.Itoa(rep.TID)
	waitUntil(t, "the worker's thread ends", func() bool {
		_, err := os.Stat(task)
		return err != nil
	})
}

// spawnWithEuid spawns a worker of a while a's euid is 2000, then gives a
// its euid 0 back: the worker must keep the 2000 it started with.
func spawnWithEuid(t *testing.T, a *client.Agent, thread bool) *client.Agent {
	t.Helper()
	if ret := sys(t, a, unix.SYS_SETRESUID, minus1, 2000, minus1); ret != 0 {
		t.Fatalf("setresuid = %d", ret)
	}
	w, _ := spawn(t, a, thread)
	if ret := sys(t, a, unix.SYS_SETRESUID, minus1, 0, minus1); ret != 0 {
		t.Fatalf("restore euid = %d", ret)
	}
	if got := sys(t, w, unix.SYS_GETEUID); got != 2000 {
		t.Errorf("worker euid = %d, want the parent's 2000", got)
	}
	if got := sys(t, a, unix.SYS_GETEUID); got != 0 {
		t.Errorf("main euid = %d after restoring it", got)
	}
	t.Cleanup(func() {
		if err := w.Close(context.Background()); err != nil {
			t.Errorf("close the worker: %v", err)
		}
	})
	return w
}

func TestThreadWorkerStartsWithItsParentsCredentials(t *testing.T) {
	requireRoot(t)
	w := spawnWithEuid(t, open(t, newGuest(t)).Main(), true)
	if got := sys(t, w, unix.SYS_GETUID); got != 0 {
		t.Errorf("worker uid = %d, want the parent's 0", got)
	}
}

func TestForkWorker(t *testing.T) {
	requireRoot(t)
	a := open(t, newGuest(t)).Main()

	// A descriptor the test opened before the spawn.
	path := filepath.Join(t.TempDir(), "before-spawn")
	fd := openat(t, a, path, unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC)

	w, rep := spawn(t, a, false)
	if rep.PID == os.Getpid() || rep.PID <= 0 {
		t.Fatalf("fork worker pid = %d, agent is %d", rep.PID, os.Getpid())
	}
	if got := sys(t, w, unix.SYS_GETPID); got != int64(rep.PID) {
		t.Errorf("worker getpid = %d, spawn said %d", got, rep.PID)
	}
	if got := sys(t, w, unix.SYS_GETTID); got != int64(rep.TID) {
		t.Errorf("worker gettid = %d, spawn said %d", got, rep.TID)
	}

	req := wire.Syscall{Nr: unix.SYS_WRITE, Bufs: []wire.Buf{{Arg: 1}}}
	req.Args[0], req.Args[2] = uint64(fd), 5
	if ret, _ := sysBufs(t, w, req, []byte("abcde")); ret != 5 {
		t.Errorf("write to the inherited fd %d = %d", fd, ret)
	}
	if b, _ := os.ReadFile(path); string(b) != "abcde" {
		t.Errorf("file has %q", b)
	}

	becomeUID1001(t, a, w)

	if err := w.Close(bounded(t)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the worker process is reaped", func() bool { return unix.Kill(rep.PID, 0) == unix.ESRCH })
}

func TestForkWorkerStartsWithItsParentsCredentials(t *testing.T) {
	requireAllThreads(t)
	w := spawnWithEuid(t, open(t, newGuest(t)).Main(), false)
	// All three, as a fork keeps them: the exec that started the worker
	// made the saved uid the effective one, and the worker restored it.
	ids := wire.Syscall{Nr: unix.SYS_GETRESUID, Bufs: []wire.Buf{{Arg: 0}, {Arg: 1}, {Arg: 2}}}
	if ret, out := sysBufs(t, w, ids, make([]byte, 4), make([]byte, 4), make([]byte, 4)); ret != 0 ||
		binary.LittleEndian.Uint32(out[0]) != 0 || binary.LittleEndian.Uint32(out[1]) != 2000 || binary.LittleEndian.Uint32(out[2]) != 0 {
		t.Errorf("worker getresuid = %d %v, want 0 2000 0", ret, out)
	}
}

// A worker that exits (exit_group, or exit(2), which ends that worker and
// not just its thread under the Go runtime) answers the call that killed
// it with the news, and every later one; the rest of the agent goes on.
func TestWorkerDeath(t *testing.T) {
	a := open(t, newGuest(t)).Main()
	for _, tc := range []struct {
		thread bool
		nr     int64
		status uint64
	}{
		{false, unix.SYS_EXIT_GROUP, 3},
		{false, unix.SYS_EXIT, 7},
		{true, unix.SYS_EXIT, 7},
	} {
		w, rep := spawn(t, a, tc.thread)
		want := fmt.Sprintf("worker (channel %d) exited: exit status %d", w.Channel(), tc.status)
		_, _, err := w.Syscall(bounded(t), wire.Syscall{Nr: tc.nr, Args: [6]uint64{tc.status}}, nil)
		if e := opError(t, err); e.Message != want {
			t.Errorf("thread=%v: system call %d: %q, want %q", tc.thread, tc.nr, e.Message, want)
		}
		if e := opError(t, w.Ping(bounded(t))); e.Message != want {
			t.Errorf("thread=%v: after exit: %q, want %q", tc.thread, e.Message, want)
		}
		if !tc.thread {
			waitExit(t, rep.PID)
		}
		if err := a.Ping(bounded(t)); err != nil {
			t.Errorf("main after a worker's exit: %v", err)
		}
		// Closing the dead worker is not an error: it is gone either way.
		if err := w.Close(bounded(t)); err != nil {
			t.Errorf("thread=%v: close of the dead worker: %v", tc.thread, err)
		}
		// Workers start as before.
		w, _ = spawn(t, a, tc.thread)
		if err := w.Ping(bounded(t)); err != nil {
			t.Errorf("thread=%v: the next worker: %v", tc.thread, err)
		}
		if err := w.Close(bounded(t)); err != nil {
			t.Error(err)
		}
	}
	// On the agent's own identity exit would stop the agent: refused.
	_, _, err := a.Syscall(bounded(t), wire.Syscall{Nr: unix.SYS_EXIT}, nil)
	if e := opError(t, err); !strings.Contains(e.Message, "own agent identity") {
		t.Errorf("exit on the main channel: %q", e.Message)
	}
	if err := a.Ping(bounded(t)); err != nil {
		t.Error(err)
	}
}

// A long operation on one identity does not hold up another.
func TestIdentitiesRunConcurrently(t *testing.T) {
	a := open(t, newGuest(t)).Main()
	w, _ := spawn(t, a, true)
	r, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer wr.Close()
	// The worker blocks in read(2) on an empty pipe...
	type result struct {
		ret int64
		out [][]byte
		err error
	}
	done := make(chan result, 1)
	ctx := bounded(t)
	go func() {
		req := wire.Syscall{Nr: unix.SYS_READ, Bufs: []wire.Buf{{Arg: 1}}}
		req.Args[0], req.Args[2] = uint64(r.Fd()), 1
		ret, out, err := w.Syscall(ctx, req, [][]byte{{0}})
		done <- result{ret, out, err}
	}()
	// ... while the main identity writes to it.
	req := wire.Syscall{Nr: unix.SYS_WRITE, Bufs: []wire.Buf{{Arg: 1}}}
	req.Args[0], req.Args[2] = uint64(wr.Fd()), 1
	if ret, _ := sysBufs(t, a, req, []byte("x")); ret != 1 {
		t.Fatalf("write = %d", ret)
	}
	if res := <-done; res.err != nil || res.ret != 1 || string(res.out[0]) != "x" {
		t.Errorf("read = %d, %q, %v", res.ret, res.out, res.err)
	}
}

// Quiesce kills every job and every worker, thread or process; the main
// identity goes on.
func TestQuiesce(t *testing.T) {
	s := open(t, newGuest(t))
	a := s.Main()
	mainJob := background(t, a, "exec sleep 1000")
	thread, _ := spawn(t, a, true)
	threadJob := background(t, thread, "exec sleep 1000")
	fork, forkRep := spawn(t, a, false)
	forkJob := background(t, fork, "exec sleep 1000")

	if err := s.Quiesce(bounded(t)); err != nil {
		t.Fatal(err)
	}

	_, err := a.JobWait(bounded(t), mainJob.ID, 0)
	if e := opError(t, err); !strings.Contains(e.Message, "no such job") {
		t.Errorf("main job after quiesce: %q", e.Message)
	}
	for _, w := range []*client.Agent{thread, fork} {
		if e := opError(t, w.Ping(bounded(t))); e.Message != fmt.Sprintf("no such worker (channel %d)", w.Channel()) {
			t.Errorf("worker %d after quiesce: %q", w.Channel(), e.Message)
		}
	}
	if err := unix.Kill(forkRep.PID, 0); err != unix.ESRCH {
		t.Errorf("worker process %d after quiesce: kill 0 = %v, want ESRCH", forkRep.PID, err)
	}
	for _, j := range []wire.Job{mainJob, threadJob, forkJob} {
		waitExit(t, j.PID)
	}
	if err := a.Ping(bounded(t)); err != nil {
		t.Error(err)
	}
}

func TestPowerOff(t *testing.T) {
	g := newGuest(t)
	s := open(t, g)
	if err := s.PowerOff(bounded(t)); err != nil {
		t.Fatal(err)
	}
	// The reply goes out first, then the agent powers off.
	select {
	case <-g.poweredOff:
	case <-bounded(t).Done():
		t.Fatal("the agent answered power_off but did not power off")
	}
}
