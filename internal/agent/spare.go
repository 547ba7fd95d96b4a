package agent

import (
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
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
