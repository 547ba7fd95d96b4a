package agent

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/client"
	"github.com/provium/provium/internal/wire"
)

// The spare is the agent's own business: the host never hears of it. So
// these tests drive the agent with the real client and look at the spare
// inside the agent.

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

// spareWorker waits until the agent has a spare and returns it.
func (h *testHost) spareWorker() *forkWorker {
	h.t.Helper()
	var w *forkWorker
	eventually(h.t, "a spare worker process is started", func() bool {
		h.a.mu.Lock()
		defer h.a.mu.Unlock()
		w = h.a.spare.w
		return w != nil
	})
	return w
}

// noSpare reports whether the agent has neither a spare nor one starting.
func (h *testHost) noSpare() bool {
	h.a.mu.Lock()
	defer h.a.mu.Unlock()
	return h.a.spare.w == nil && h.a.spare.starting == nil
}

// capget returns the capability sets of an identity's thread, raw.
func (h *testHost) capget(id *client.Agent) []byte {
	h.t.Helper()
	hdr := binary.LittleEndian.AppendUint32(nil, unix.LINUX_CAPABILITY_VERSION_3)
	hdr = binary.LittleEndian.AppendUint32(hdr, 0)
	req := wire.Syscall{Nr: unix.SYS_CAPGET, Bufs: []wire.Buf{{Arg: 0}, {Arg: 1}}}
	ret, out := h.syscall(id, req, hdr, make([]byte, 24))
	if ret != 0 {
		h.t.Fatalf("capget on channel %d = %d", id.Channel(), ret)
	}
	return out[1]
}

// getgroups returns the supplementary groups of an identity's thread.
func (h *testHost) getgroups(id *client.Agent) []uint32 {
	h.t.Helper()
	req := wire.Syscall{Nr: unix.SYS_GETGROUPS, Args: [6]uint64{64}, Bufs: []wire.Buf{{Arg: 1}}}
	n, out := h.syscall(id, req, make([]byte, 4*64))
	if n < 0 {
		h.t.Fatalf("getgroups on channel %d = %d", id.Channel(), n)
	}
	groups := make([]uint32, n)
	for i := range groups {
		groups[i] = binary.LittleEndian.Uint32(out[0][4*i:])
	}
	return groups
}

// ping makes a round trip through id, which must answer.
func (h *testHost) ping(id *client.Agent) {
	h.t.Helper()
	if err := id.Ping(h.ctx()); err != nil {
		h.t.Fatalf("ping channel %d: %v", id.Channel(), err)
	}
}

// A spawn claims the spare: the worker is the spare process, and it has the
// parent identity's credentials and the agent's descriptors (same numbers),
// working directory, umask and environment as of the spawn, as a fork of
// the parent's thread would have.
func TestSpareClaim(t *testing.T) {
	requireAllThreads(t)
	h := newSession(t)
	first, _ := h.spawn(h.main, false)
	h.close(first)
	spare := h.spareWorker()

	// Descriptors: one the test opened, not close-on-exec as one a test
	// script opens (the agent is this process: one descriptor table), and
	// a copy at a number far above.
	path := filepath.Join(t.TempDir(), "inherited")
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	const high = 200
	if ret := h.sys(h.main, unix.SYS_DUP3, uint64(fd), high, 0); ret != high {
		t.Fatalf("dup3 = %d", ret)
	}
	t.Cleanup(func() { unix.Close(high) })
	// Working directory, umask and environment, all the agent process's.
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chdir(wd) })
	old := unix.Umask(0o027)
	t.Cleanup(func() { unix.Umask(old) })
	t.Setenv("PROVIUM_SPARE_TEST", "carried")
	// Credentials of the parent identity's thread: groups, gids, euid.
	setgroups := wire.Syscall{Nr: unix.SYS_SETGROUPS, Args: [6]uint64{2}, Bufs: []wire.Buf{{Arg: 1}}}
	if ret, _ := h.syscall(h.main, setgroups, []byte{0xa0, 0x0f, 0, 0, 0xa1, 0x0f, 0, 0}); ret != 0 {
		t.Fatalf("setgroups = %d", ret)
	}
	if ret := h.sys(h.main, unix.SYS_SETRESGID, minus1, 3000, minus1); ret != 0 {
		t.Fatalf("setresgid = %d", ret)
	}
	if ret := h.sys(h.main, unix.SYS_SETRESUID, minus1, 2000, minus1); ret != 0 {
		t.Fatalf("setresuid = %d", ret)
	}
	parentCaps := h.capget(h.main)

	w, rep := h.spawn(h.main, false)

	// Back to root before anything can fail.
	h.sys(h.main, unix.SYS_SETRESUID, minus1, 0, minus1)
	h.sys(h.main, unix.SYS_SETRESGID, minus1, 0, minus1)
	h.sys(h.main, unix.SYS_SETGROUPS, 0, 0)
	if rep.PID != spare.proc.Pid {
		t.Fatalf("worker pid %d, want the spare's %d", rep.PID, spare.proc.Pid)
	}
	if got := h.sys(w, unix.SYS_GETPID); got != int64(rep.PID) {
		t.Errorf("worker getpid = %d, spawn said %d", got, rep.PID)
	}
	if got := h.sys(w, unix.SYS_GETTID); got != int64(rep.TID) {
		t.Errorf("worker gettid = %d, spawn said %d", got, rep.TID)
	}

	if got := [4]int64{h.sys(w, unix.SYS_GETUID), h.sys(w, unix.SYS_GETEUID), h.sys(w, unix.SYS_GETGID), h.sys(w, unix.SYS_GETEGID)}; got != [4]int64{0, 2000, 0, 3000} {
		t.Errorf("worker uid, euid, gid, egid = %v, want [0 2000 0 3000]", got)
	}
	if got := h.getgroups(w); len(got) != 2 || got[0] != 4000 || got[1] != 4001 {
		t.Errorf("worker groups = %v, want [4000 4001]", got)
	}
	// The whole process has them, as a fork would: ps shows the
	// process's (its main thread's) credentials.
	status, _ := os.ReadFile("/proc/" + strconv.Itoa(rep.PID) + "/status")
	for _, want := range []string{"Uid:\t0\t2000\t0\t2000\n", "Gid:\t0\t3000\t0\t3000\n", "Groups:\t4000 4001 \n"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("worker process status lacks %q:\n%s", want, status)
		}
	}
	if got := h.capget(w); string(got) != string(parentCaps) {
		t.Errorf("worker capabilities %x, parent's %x", got, parentCaps)
	}
	if got := h.sys(h.main, unix.SYS_GETEUID); got != 0 {
		t.Errorf("main euid = %d after restoring it", got)
	}

	for _, n := range []int{fd, high} {
		req := wire.Syscall{Nr: unix.SYS_WRITE, Args: [6]uint64{uint64(n), 0, 2}, Bufs: []wire.Buf{{Arg: 1}}}
		if ret, _ := h.syscall(w, req, []byte("ab")); ret != 2 {
			t.Errorf("write to inherited fd %d = %d", n, ret)
		}
	}
	if b, _ := os.ReadFile(path); string(b) != "abab" {
		t.Errorf("file has %q, want abab", b)
	}
	// Nothing else: every other descriptor of the worker is close-on-exec.
	if out := h.stdout(w, "ls /proc/self/fd"); !strings.Contains(out, "200") {
		t.Errorf("a command of the worker has descriptors %q, want 200 among them", out)
	}

	req := wire.Syscall{Nr: unix.SYS_GETCWD, Args: [6]uint64{0, 4096}, Bufs: []wire.Buf{{Arg: 0}}}
	if ret, out := h.syscall(w, req, make([]byte, 4096)); ret <= 0 || string(out[0][:ret-1]) != dir {
		t.Errorf("worker cwd = %q (%d), want %q", out[0][:max(ret, 1)-1], ret, dir)
	}
	if got := h.sys(w, unix.SYS_UMASK, 0o022); got != 0o027 {
		t.Errorf("worker umask = %#o, want 027", got)
	}
	if out := h.stdout(w, "echo $PROVIUM_SPARE_TEST"); strings.TrimSpace(out) != "carried" {
		t.Errorf("worker environment: PROVIUM_SPARE_TEST=%q", out)
	}

	// A new spare replaces the one claimed.
	if next := h.spareWorker(); next == spare {
		t.Error("the claimed spare is still the spare")
	}
	h.close(w)
	eventually(t, "the worker process is gone", func() bool { return processGone(rep.PID) })
}

// threadPolicies returns the scheduling policy of each thread of pid.
func threadPolicies(t *testing.T, pid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		t.Fatal(err)
	}
	var policies []int
	for _, e := range entries {
		tid, _ := strconv.Atoi(e.Name())
		p, _, err := getSched(tid)
		if err != nil {
			t.Fatalf("thread %d: %v", tid, err)
		}
		policies = append(policies, p)
	}
	return policies
}

// inRecvmsg reports whether a thread of pid is blocked in recvmsg, as a
// spare waiting for its claim is, past everything it does before.
func inRecvmsg(pid int) bool {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/syscall")
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		if strings.HasPrefix(string(b), strconv.Itoa(unix.SYS_RECVMSG)+" ") {
			return true
		}
	}
	return false
}

// A spare is idle-class, so that it never competes with the test's calls;
// the spawn that claims it gives all its threads the parent's policy back.
func TestSpareIsIdleClass(t *testing.T) {
	requireRoot(t)
	h := newSession(t)
	h.spawn(h.main, false)
	spare := h.spareWorker()
	// The spare lowers the threads the runtime starts after the agent
	// lowered the first ones.
	eventually(t, "all spare threads are SCHED_IDLE", func() bool {
		for _, p := range threadPolicies(t, spare.proc.Pid) {
			if p != unix.SCHED_IDLE {
				return false
			}
		}
		return true
	})
	if p, _, _ := getSched(0); p != unix.SCHED_NORMAL {
		t.Errorf("the test's thread has policy %d", p)
	}

	w, rep := h.spawn(h.main, false)
	if rep.PID != spare.proc.Pid {
		t.Fatalf("worker %d, want the spare %d", rep.PID, spare.proc.Pid)
	}
	for _, p := range threadPolicies(t, rep.PID) {
		if p != unix.SCHED_NORMAL {
			t.Errorf("worker thread policies %v, want all SCHED_NORMAL", threadPolicies(t, rep.PID))
			break
		}
	}
	if got := h.sys(w, unix.SYS_SCHED_GETSCHEDULER, 0); got != unix.SCHED_NORMAL {
		t.Errorf("worker sched_getscheduler = %d", got)
	}
	// What the worker runs gets the same.
	if out := h.stdout(w, "grep policy /proc/self/sched"); !strings.HasSuffix(strings.TrimSpace(out), " 0") {
		t.Errorf("a command of the worker: %q, want policy 0", out)
	}

	// The agent raises a spare before its claim, so that a spare on a
	// busy CPU gets to read it.
	next := h.spareWorker()
	eventually(t, "the next spare waits for its claim", func() bool { return inRecvmsg(next.proc.Pid) })
	if err := next.wake(); err != nil {
		t.Fatal(err)
	}
	for _, p := range threadPolicies(t, next.proc.Pid) {
		if p != unix.SCHED_NORMAL {
			t.Errorf("woken spare thread policies %v, want all SCHED_NORMAL", threadPolicies(t, next.proc.Pid))
			break
		}
	}
}

// Without a spare — the first spawn, or after the spare died — a spawn
// starts a worker the usual way, and a spare after it.
func TestSpareFallback(t *testing.T) {
	h := newSession(t)
	if !h.noSpare() {
		t.Fatal("a spare before the first spawn")
	}
	w, rep := h.spawn(h.main, false)
	h.ping(w)
	spare := h.spareWorker()
	if rep.PID == spare.proc.Pid {
		t.Fatal("the first worker is the spare")
	}

	spare.proc.Kill()
	<-spare.gone()
	w, rep = h.spawn(h.main, false)
	h.ping(w)
	if rep.PID == spare.proc.Pid || h.spareWorker() == spare {
		t.Errorf("worker %d after the spare %d died", rep.PID, spare.proc.Pid)
	}
}

// A spare stands in only for a fork of a thread like the one it was
// started from. A thread worker whose nice value differs spawns a worker
// the usual way, which gets that nice value.
func TestSpareUnfit(t *testing.T) {
	requireRoot(t)
	h := newSession(t)
	// The test may run niced: every figure is relative to its nice value.
	// getpriority returns 20 - nice.
	base := 20 - int(h.sys(h.main, unix.SYS_GETPRIORITY, unix.PRIO_PROCESS, 0))
	other := base + 3
	if other > 19 {
		other = base - 3 // root may lower it
	}
	first, _ := h.spawn(h.main, false)
	spare := h.spareWorker()
	thread, _ := h.spawn(h.main, true)
	if ret := h.sys(thread, unix.SYS_SETPRIORITY, unix.PRIO_PROCESS, 0, uint64(int64(other))); ret != 0 {
		t.Fatalf("setpriority = %d", ret)
	}
	w, rep := h.spawn(thread, false)
	if rep.PID == spare.proc.Pid {
		t.Fatal("the spare stood in for a thread with another nice value")
	}
	if got := h.sys(w, unix.SYS_GETPRIORITY, unix.PRIO_PROCESS, 0); got != int64(20-other) {
		t.Errorf("worker getpriority = %d, want %d (nice %d)", got, 20-other, other)
	}
	if got := h.sys(first, unix.SYS_GETPRIORITY, unix.PRIO_PROCESS, 0); got != int64(20-base) {
		t.Errorf("first worker getpriority = %d, want %d (nice %d, the test's)", got, 20-base, base)
	}
	eventually(t, "the unfit spare is gone", func() bool { return processGone(spare.proc.Pid) })
}

// Quiesce kills the spare (a snapshot holds none); the next spawn starts
// a worker and a spare again.
func TestQuiesceKillsTheSpare(t *testing.T) {
	h := newSession(t)
	h.spawn(h.main, false)
	spare := h.spareWorker()
	if err := h.s.Quiesce(h.ctx()); err != nil {
		t.Fatal(err)
	}
	if !processGone(spare.proc.Pid) || !h.noSpare() {
		t.Fatalf("after quiesce: spare %d gone %v, slot empty %v", spare.proc.Pid, processGone(spare.proc.Pid), h.noSpare())
	}
	// None starts again before the next spawn: a snapshot would hold it.
	time.Sleep(3 * spareDelay)
	if !h.noSpare() {
		t.Fatal("a spare started after quiesce")
	}
	w, rep := h.spawn(h.main, false)
	h.ping(w)
	if rep.PID == spare.proc.Pid {
		t.Error("worker is the killed spare")
	}
	h.spareWorker()
}

// placeFDs puts each received descriptor at its number, moving the socket
// and the received copies out of the way first, and refuses to clobber a
// descriptor the worker uses.
func TestPlaceFDs(t *testing.T) {
	const base = 900 // far above anything the test process has open
	for fd := base; fd < base+10; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			t.Skipf("descriptor %d is in use", fd)
		}
	}
	t.Cleanup(func() {
		for fd := base; fd < base+10; fd++ {
			unix.Close(fd)
		}
	})
	// Three files to place at base, base+1, base+2. The second arrives at
	// base+2 — where the third goes — and the socket sits at base+1.
	var files [3]*os.File
	var ino [3]uint64
	for i := range files {
		f, err := os.Create(filepath.Join(t.TempDir(), "f"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files[i] = f
		var st unix.Stat_t
		unix.Fstat(int(f.Fd()), &st)
		ino[i] = st.Ino
	}
	dupAt := func(f *os.File, fd int) int {
		if err := unix.Dup3(int(f.Fd()), fd, unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		return fd
	}
	got := []int{dupAt(files[0], base+5), dupAt(files[1], base+2), dupAt(files[2], base+6)}
	sock := dupAt(files[0], base+1)
	want := []int{base, base + 1, base + 2}

	sock, err := placeFDs(sock, got, want)
	if err != nil {
		t.Fatal(err)
	}
	if sock <= base+2 {
		t.Errorf("socket at %d, not moved above the wanted numbers", sock)
	}
	if flags, err := unix.FcntlInt(uintptr(sock), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("moved socket %d: flags %d, %v; want close-on-exec", sock, flags, err)
	}
	for i, fd := range want {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Ino != ino[i] {
			t.Errorf("descriptor %d: inode %d (%v), want %d", fd, st.Ino, err, ino[i])
		}
		if flags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); flags&unix.FD_CLOEXEC != 0 {
			t.Errorf("descriptor %d is close-on-exec", fd)
		}
	}
	if _, err := unix.FcntlInt(uintptr(base+5), unix.F_GETFD, 0); err == nil {
		t.Errorf("received copy %d still open", base+5)
	}
	unix.Close(sock)

	// A descriptor of the worker's own at a wanted number stops the claim.
	busy := dupAt(files[0], base+8)
	got = []int{dupAt(files[1], base+9)}
	if _, err := placeFDs(base+7, got, []int{busy}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("placing over a busy descriptor: %v", err)
	}
}

// A spare holds none of the test's descriptors while it waits: the write
// end of a pipe it held would keep the reader from seeing EOF.
func TestSpareHoldsNoTestDescriptors(t *testing.T) {
	h := newSession(t)
	var p [2]int
	if err := unix.Pipe2(p[:], 0); err != nil { // not close-on-exec, like a test's
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	var st unix.Stat_t
	unix.Fstat(p[1], &st)
	h.spawn(h.main, false)
	spare := h.spareWorker()
	dir := "/proc/" + strconv.Itoa(spare.proc.Pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		var fst unix.Stat_t
		if unix.Stat(filepath.Join(dir, e.Name()), &fst) == nil && fst.Ino == st.Ino && fst.Dev == st.Dev {
			t.Errorf("the spare holds the pipe as descriptor %s", e.Name())
		}
	}
}

// A worker process, started or claimed, sees the agent's environment:
// GODEBUG included.
func TestWorkerEnvironment(t *testing.T) {
	for _, godebug := range []string{"", "madvdontneed=1"} {
		if godebug == "" {
			old, had := os.LookupEnv("GODEBUG")
			os.Unsetenv("GODEBUG")
			if had {
				t.Cleanup(func() { os.Setenv("GODEBUG", old) })
			}
		} else {
			t.Setenv("GODEBUG", godebug)
		}
		want := strings.Join(os.Environ(), "\n")
		h := newSession(t)
		started, _ := h.spawn(h.main, false)
		spare := h.spareWorker()
		claimed, rep := h.spawn(h.main, false)
		if rep.PID != spare.proc.Pid {
			t.Fatalf("worker %d is not the spare %d", rep.PID, spare.proc.Pid)
		}
		for _, w := range []*client.Agent{started, claimed} {
			env := strings.Split(strings.TrimSuffix(h.stdout(w, "env -0"), "\x00"), "\x00")
			// The shell sets a few of its own.
			env = slices.DeleteFunc(env, func(kv string) bool {
				k, _, _ := strings.Cut(kv, "=")
				return k == "PWD" || k == "SHLVL" || k == "_" || k == "OLDPWD"
			})
			mine := slices.DeleteFunc(strings.Split(want, "\n"), func(kv string) bool {
				k, _, _ := strings.Cut(kv, "=")
				return k == "PWD" || k == "SHLVL" || k == "_" || k == "OLDPWD"
			})
			// The shell passes them on in an order of its own.
			slices.Sort(env)
			slices.Sort(mine)
			if !slices.Equal(env, mine) {
				t.Errorf("GODEBUG=%q: worker on channel %d has environment\n%s\nwant\n%s", godebug, w.Channel(), strings.Join(env, "\n"), strings.Join(mine, "\n"))
			}
		}
	}
}
