package agent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire"
)

// Spare worker process.
//
// Starting a worker process costs an exec and the Go runtime's start, tens
// of milliseconds on an emulated CPU. So the agent keeps one worker process
// started ahead, a spare, and a fork worker spawn claims it (see claim): the
// spare takes on what it would have inherited from the parent's thread, and
// becomes the worker. A spawn that finds no spare, or one that cannot stand
// in for a fork of the parent's thread (see inherited), starts a worker the
// usual way.
//
// A spare starts spareDelay after the last fork worker spawn, when no other
// one is in progress: not at boot (most tests never spawn a worker, and a
// spare starting beside a test's first calls made them 2-4 times slower,
// even under SCHED_IDLE), not
// while the test talks to the worker it just got (on a single emulated CPU a
// starting spare would double the latency of that first call), and not in
// a burst of spawns, where each would wait for a spare that starts after
// the previous one instead of starting its own worker. A spawn that comes
// while a spare is still starting claims it: the claim waits on the socket
// until the spare is there, which is sooner than a new process would be.
//
// A spare runs under SCHED_IDLE once it has exec'd (the fork itself holds
// locks every exec of the agent needs, so it runs at the agent's
// priority): on a single emulated CPU it then takes only time the guest
// would spend idle, and the calls a test makes meanwhile keep their speed
// (thread worker spawn 8-9 -> 3-5 ms while a spare starts; provium bench).
// A claim first gives its threads the claiming thread's policy back.
//
// Quiesce kills the spare and holds off the next until a spawn, so a
// fixture snapshot never holds one. A spare is not a worker: it is in no
// channel's map and the host never hears of it.
type spareSlot struct {
	// All fields are guarded by Agent.mu.
	w        *forkWorker
	base     inherited     // what w inherited when it was started
	starting chan struct{} // closed when the start in progress is over; nil if none
	gen      int           // bumped by quiesce: a start begun before is discarded
	timer    *time.Timer   // starts the next spare
	parked   bool          // quiesced: no spare until the next spawn
	closed   bool          // Close was called: no more spares
}

// spareDelay is how long after the last fork worker spawn a spare starts.
const spareDelay = 50 * time.Millisecond

// spawnBegins holds off the start of a spare while a spawn is in progress.
func (a *Agent) spawnBegins() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.spare.parked = false
	if a.spare.timer != nil {
		a.spare.timer.Stop()
	}
}

// spawnEnded starts a spare spareDelay from now, unless a spawn begins
// meanwhile.
func (a *Agent) spawnEnded() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.spare.timer == nil {
		a.spare.timer = time.AfterFunc(spareDelay, a.ensureSpare)
	} else {
		a.spare.timer.Reset(spareDelay)
	}
}

// wake gives every thread of the spare w the scheduling policy of the
// thread it was started from, which is the claiming thread's too (see
// inherited). It runs on a thread of its own: the claiming thread may have
// given up the privilege to change another process's policy. Threads the
// spare starts later inherit the policy from these; the spare checks once
// more when the claim arrives (see runSpare).
func (w *forkWorker) wake() error {
	done := make(chan error, 1)
	go func() { done <- setProcessSched(w.proc.Pid, w.sched[0], w.sched[1]) }()
	if err := <-done; err != nil {
		return fmt.Errorf("spare worker %d: restore its priority: %w", w.proc.Pid, err)
	}
	return nil
}

// errSpareUnfit says that the spawning thread differs from the spare in
// something a claim does not carry.
var errSpareUnfit = errors.New("the spare cannot stand in for a fork of this thread")

// claimSpare makes the spare the worker of ch, if there is a spare and it
// fits the calling thread, the parent identity's. It returns nil if the
// caller must start a worker the usual way.
func (a *Agent) claimSpare(ch uint32) (*forkWorker, wire.SpawnReply) {
	w, base := a.takeSpare()
	if w == nil {
		return nil, wire.SpawnReply{}
	}
	rep, err := w.claim(ch, base)
	if err != nil {
		if !errors.Is(err, errSpareUnfit) {
			a.logf("claim a spare worker process: %v", err)
		}
		w.dispose()
		return nil, wire.SpawnReply{}
	}
	return w, rep
}

// takeSpare removes the spare from its slot and returns it with what it
// inherited. A start in progress is waited for: it is only a fork and an
// exec, and the spare it yields is further along than a new process would
// be.
func (a *Agent) takeSpare() (*forkWorker, inherited) {
	a.mu.Lock()
	starting := a.spare.starting
	a.mu.Unlock()
	if starting != nil {
		select {
		case <-starting:
		case <-time.After(spawnWait):
		}
	}
	a.mu.Lock()
	w, base := a.spare.w, a.spare.base
	a.spare.w = nil
	a.mu.Unlock()
	if w == nil {
		return nil, inherited{}
	}
	select {
	case <-w.end: // died; the caller starts a worker, and a spare after it
		return nil, inherited{}
	default:
		return w, base
	}
}

// ensureSpare starts a spare in the background unless there is one.
func (a *Agent) ensureSpare() {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := &a.spare
	if s.w != nil || s.starting != nil || s.parked || s.closed {
		return
	}
	done := make(chan struct{})
	s.starting = done
	gen := s.gen
	go func() {
		defer close(done)
		w, base, err := startSpare(a)
		a.mu.Lock()
		s.starting = nil
		keep := err == nil && s.gen == gen && !s.closed
		if keep {
			s.w, s.base = w, base
		}
		a.mu.Unlock()
		if err != nil {
			a.logf("start a spare worker process: %v", err)
		} else if !keep {
			w.dispose()
		}
	}()
}

// dropSpare kills the spare and any spare being started, holds off the
// next until a spawn, and returns a channel closed once they are gone.
func (a *Agent) dropSpare() <-chan struct{} {
	a.mu.Lock()
	s := &a.spare
	s.gen++
	s.parked = true
	if s.timer != nil {
		s.timer.Stop()
	}
	w, starting := s.w, s.starting
	s.w = nil
	a.mu.Unlock()
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		if w != nil {
			w.dispose()
		}
		if starting != nil {
			<-starting // the start sees the new generation and disposes of its spare
		}
	}()
	return gone
}

// startSpare starts a spare on a thread of its own, which has the process's
// base credentials and state (identities change only their own locked
// threads), and records what the spare inherits from that thread.
func startSpare(a *Agent) (*forkWorker, inherited, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread() // nothing on the thread is changed
	base, _, err := threadInherited()
	if err != nil {
		return nil, base, err
	}
	policy, param, err := getSched(0)
	if err != nil {
		return nil, base, err
	}
	w, err := startForkWorker(a, 0)
	if err != nil {
		return nil, base, err
	}
	w.sched = [2]int{policy, param}
	if err := setProcessSched(w.proc.Pid, unix.SCHED_IDLE, 0); err != nil {
		w.dispose()
		return nil, base, fmt.Errorf("spare worker %d: lower its priority: %w", w.proc.Pid, err)
	}
	prewarmClaim()
	return w, base, nil
}

// prewarmClaim runs what a claim runs in the agent, so that the first
// spawn does not pay for running that code the first time: page faults and
// translation under an emulated CPU, reflection on the claim's type.
func prewarmClaim() {
	threadInherited()
	threadCreds()
	inheritedFDs()
	newClaim(0, creds{}, 0, nil, []int{0, 1, 2}).encode()
}

// dispose ends a spare (or a failed claim) and waits until it is reaped. A
// spare has no jobs to kill: SIGKILL is all it takes.
func (w *forkWorker) dispose() {
	w.proc.Kill()
	w.kill()
	<-w.end
}

// claim sends the spare w everything it needs to become the worker of ch
// that a fork of the calling thread would have been, and waits until it is
// ready. It runs on the parent identity's thread: the credentials, the
// descriptor table, the working directory and the umask it sends are that
// thread's. base is what the spare inherited when it started; if the
// calling thread differs in any of that, the claim fails with
// errSpareUnfit.
func (w *forkWorker) claim(ch uint32, base inherited) (wire.SpawnReply, error) {
	now, umask, err := threadInherited()
	if err != nil {
		return wire.SpawnReply{}, err
	}
	if now != base {
		return wire.SpawnReply{}, errSpareUnfit
	}
	c, err := threadCreds()
	if err != nil {
		return wire.SpawnReply{}, err
	}
	fds, err := inheritedFDs()
	if err != nil {
		return wire.SpawnReply{}, err
	}
	if 1+len(fds) > maxClaimFDs {
		return wire.SpawnReply{}, fmt.Errorf("%w: more than %d descriptors to pass", errSpareUnfit, maxClaimFDs-1)
	}
	// The working directory travels as a descriptor, which also works
	// where a path would not (deleted, or out of the worker's reach).
	cwd, err := unix.Open(".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return wire.SpawnReply{}, fmt.Errorf("working directory: %w", err)
	}
	defer unix.Close(cwd)
	if err := w.wake(); err != nil {
		return wire.SpawnReply{}, err
	}
	cl := newClaim(ch, c, umask, os.Environ(), fds)
	cl.Sched = w.sched
	msg, err := cl.encode()
	if err != nil {
		return wire.SpawnReply{}, err
	}
	uc, ok := w.sock.(*net.UnixConn)
	if !ok {
		return wire.SpawnReply{}, fmt.Errorf("worker socket is a %T", w.sock)
	}
	w.ch.Store(ch)
	n, _, err := uc.WriteMsgUnix(msg, unix.UnixRights(append([]int{cwd}, fds...)...), nil)
	if err == nil && n < len(msg) {
		_, err = uc.Write(msg[n:])
	}
	if err != nil {
		return wire.SpawnReply{}, fmt.Errorf("send claim: %w", err)
	}
	return w.waitReady(spawnWait)
}

// inherited is what a process inherits from the thread that forks it and a
// claim does not carry: everything else that a test can change through an
// identity's system calls and a worker would see. A spare stands in for a
// fork of the parent's thread only if that thread has the same as the
// thread the spare was forked from. Comparable with ==.
type inherited struct {
	ns     string          // the thread's namespace links, e.g. "mnt:[4026531841]"
	root   [2]uint64       // device and inode of the root directory
	limits [16]unix.Rlimit // RLIMIT_CPU .. RLIMIT_RTTIME
	cpus   unix.CPUSet     // affinity
	attrs  [len(attrProbes)]uintptr
	status string // the inheritedStatus fields of /proc/thread-self/status
	cgroup string // /proc/thread-self/cgroup
	oomAdj string // /proc/thread-self/oom_score_adj
}

// namespaces are those of the calling thread that a child gets.
var namespaces = [...]string{"cgroup", "ipc", "mnt", "net", "pid_for_children", "time_for_children", "user", "uts"}

// attrProbes are raw system calls that read one thread attribute each.
var attrProbes = [...][3]uintptr{
	{unix.SYS_PERSONALITY, 0xffffffff},
	{unix.SYS_GETPRIORITY, unix.PRIO_PROCESS, 0}, // who 0: the calling thread
	{unix.SYS_SCHED_GETSCHEDULER, 0},
	{unix.SYS_IOPRIO_GET, 1, 0}, // IOPRIO_WHO_PROCESS, the calling thread
	{unix.SYS_PRCTL, unix.PR_GET_SECUREBITS},
	{unix.SYS_PRCTL, unix.PR_GET_TIMERSLACK},
	{unix.SYS_PRCTL, unix.PR_GET_THP_DISABLE},
	{unix.SYS_PRCTL, unix.PR_GET_NO_NEW_PRIVS},
}

// inheritedStatus are the fields of /proc/thread-self/status that a child
// inherits and nothing else reads.
var inheritedStatus = map[string]bool{"CapBnd": true, "CapAmb": true, "Seccomp": true, "Seccomp_filters": true,
	"Speculation_Store_Bypass": true, "SpeculationIndirectBranch": true, "Mems_allowed": true}

// threadInherited reads what a fork of the calling thread would inherit and
// a claim does not carry, and the umask, which a claim does. Under an
// emulated CPU a lookup in /proc costs a hundred microseconds or more: this
// reads three files and eight links, a few milliseconds in all.
func threadInherited() (s inherited, umask int, err error) {
	var ns strings.Builder
	buf := make([]byte, 64)
	for _, name := range namespaces {
		if n, err := unix.Readlink("/proc/thread-self/ns/"+name, buf); err == nil {
			ns.Write(buf[:n])
		}
		ns.WriteByte(' ')
	}
	s.ns = ns.String()
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		return s, 0, fmt.Errorf("stat /: %w", err)
	}
	s.root = [2]uint64{st.Dev, st.Ino}
	for r := range s.limits {
		unix.Prlimit(0, r, nil, &s.limits[r])
	}
	unix.SchedGetaffinity(0, &s.cpus)
	for i, p := range attrProbes {
		r, _, e := unix.RawSyscall(p[0], p[1], p[2], 0)
		if e != 0 {
			r = ^uintptr(e)
		}
		s.attrs[i] = r
	}
	status, err := readProc("status")
	if err != nil {
		return s, 0, err
	}
	umask = -1
	var kept strings.Builder
	for rest := status; rest != ""; {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		key, value, _ := strings.Cut(line, ":")
		if key == "Umask" {
			n, err := strconv.ParseUint(strings.TrimSpace(value), 8, 32)
			if err != nil {
				return s, 0, fmt.Errorf("umask %q: %w", value, err)
			}
			umask = int(n)
		} else if inheritedStatus[key] {
			kept.WriteString(line)
		}
	}
	if umask < 0 {
		return s, 0, errors.New("no umask in /proc/thread-self/status")
	}
	s.status = kept.String()
	s.cgroup, _ = readProc("cgroup")
	s.oomAdj, _ = readProc("oom_score_adj")
	return s, umask, nil
}

// readProc reads a small file of /proc/thread-self with plain system calls
// on the calling thread.
func readProc(name string) (string, error) {
	fd, err := unix.Open("/proc/thread-self/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open /proc/thread-self/%s: %w", name, err)
	}
	defer unix.Close(fd)
	var b []byte
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read /proc/thread-self/%s: %w", name, err)
		}
		if n == 0 {
			return string(b), nil
		}
		b = append(b, buf[:n]...)
	}
}
