// Package pool gates VM boots on host memory and CPUs, so that test files
// running in parallel do not overcommit the machine.
//
// A Pool works in one of two modes.
//
// Auto mode (NewAuto) watches the host: before each boot or resume, Acquire
// waits until MemAvailable from /proc/meminfo, minus a reserve for the host
// and minus the memory promised to VMs that started in the last few seconds,
// has room for the VM. The promise matters because a fresh QEMU's resident
// memory grows for a while after boot, so MemAvailable alone would let a
// burst of boots through at once. CPUs are not gated in auto mode.
//
// Fixed mode (NewFixed) is a budget: a VM takes its memory and CPUs when it
// boots and gives them back when it stops (the release function). A VM larger
// than the whole budget fails at once with ErrTooLarge; one that only does
// not fit now waits.
//
// Waiters are served in arrival order, but one that fits is not held up
// behind an earlier one that does not: strict FIFO would deadlock a file that
// holds one VM and needs a second while a larger request from another file
// waits at the head of the queue for memory that only the first file frees.
//
// A VM resumed from a memory template maps the fixture's RAM privately:
// its clean pages are the page cache's, shared with every other VM of
// that fixture, and only what it writes is its own. AcquireMeasured
// reserves an estimate of that for such a VM, which the caller corrects
// as it measures the VM's QEMU (PrivateDirtyMiB). The host still bounds
// it: in fixed mode too, such a grant waits for MemAvailable to have
// room.
//
// Scope ties reservations to a test file: everything acquired through a
// context derived from a scope is released when the scope ends, whatever the
// code that acquired it did, so a file that errors or crashes returns what it
// held.
package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrTooLarge is the error (wrapped) of an Acquire that can never be granted:
// the request exceeds the whole budget.
var ErrTooLarge = errors.New("VM is larger than the resource pool")

// Defaults of auto mode.
const (
	// settle is how long a grant counts in full on top of MemAvailable:
	// the time a fresh VM's memory takes to show up in the host's accounting.
	settle = 5 * time.Second
	// pollInterval is how often an auto-mode waiter looks at MemAvailable again.
	pollInterval = 200 * time.Millisecond
)

// Pool hands out memory and CPUs to VMs. It is safe for concurrent use.
type Pool struct {
	auto       bool
	memMiB     int // fixed mode budget; 0 = unlimited
	cpus       int // fixed mode budget; 0 = unlimited
	reserveMiB int // auto mode: kept free for the host

	// Auto mode's view of the host; replaced in tests.
	meminfo func() (memInfo, error)
	now     func() time.Time
	poll    time.Duration

	mu        sync.Mutex
	usedMem   int
	usedCPUs  int
	held      int      // grants not yet released
	recent    []*grant // auto mode: grants younger than settle
	waiters   []*waiter
	revocable []*grant // TryAcquire's, not yet asked back
	lastAvail int      // auto mode: MemAvailable at the last look, MiB; -1 unknown
}

// grant is one reservation.
type grant struct {
	mem, cpus int
	at        time.Time
	once      sync.Once
	scope     *scope // the scope it was made under, if any
	measured  bool   // AcquireMeasured's: mem is an estimate
	released  bool   // under Pool.mu
	revoke    func() // TryAcquire's: asks the grant back
}

// waiter is an Acquire that has not been granted yet.
type waiter struct {
	mem, cpus int
	measured  bool          // AcquireMeasured's
	ready     chan struct{} // closed when g is set
	g         *grant
}

// NewFixed returns a pool with a budget of memMiB MiB and cpus CPUs; 0 makes
// that dimension unlimited.
func NewFixed(memMiB, cpus int) *Pool {
	return &Pool{memMiB: max(memMiB, 0), cpus: max(cpus, 0), lastAvail: -1,
		meminfo: readMeminfo, now: time.Now, poll: pollInterval}
}

// NewAuto returns a pool that gates boots on the host's MemAvailable, keeping
// reserveMiB MiB free for the host.
func NewAuto(reserveMiB int) *Pool {
	return newAuto(reserveMiB, readMeminfo)
}

func newAuto(reserveMiB int, meminfo func() (memInfo, error)) *Pool {
	return &Pool{
		auto:       true,
		reserveMiB: max(reserveMiB, 0),
		meminfo:    meminfo,
		now:        time.Now,
		poll:       pollInterval,
		lastAvail:  -1,
	}
}

// Acquire reserves memMiB MiB and cpus CPUs for one VM, waiting until they
// fit or ctx is done. The returned release gives them back; calling it more
// than once is harmless. A request that can never fit fails at once with an
// error wrapping ErrTooLarge.
func (p *Pool) Acquire(ctx context.Context, memMiB, cpus int) (release func(), err error) {
	_, release, err = p.acquire(ctx, memMiB, cpus, false)
	return release, err
}

// acquire is Acquire; measured grants must fit in the host's memory in
// fixed mode too.
func (p *Pool) acquire(ctx context.Context, memMiB, cpus int, measured bool) (*grant, func(), error) {
	if memMiB < 0 || cpus < 0 {
		return nil, nil, fmt.Errorf("pool: invalid request of %d MiB and %d CPUs", memMiB, cpus)
	}
	if err := p.check(memMiB, cpus); err != nil {
		return nil, nil, err
	}
	sc := scopeFrom(ctx)
	if sc != nil && sc.done() {
		return nil, nil, errScopeEnded
	}
	if err := p.checkScope(sc, memMiB, cpus); err != nil {
		return nil, nil, err
	}

	w := &waiter{mem: memMiB, cpus: cpus, measured: measured, ready: make(chan struct{})}
	p.mu.Lock()
	p.waiters = append(p.waiters, w)
	p.grantLocked()
	p.mu.Unlock()

	// Fixed mode is woken by releases; auto mode must look at the host
	// again, since memory is freed by processes the pool does not know.
	var tick <-chan time.Time
	if p.auto || measured {
		t := time.NewTicker(p.poll)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-w.ready:
			release := func() { p.release(w.g) }
			if sc != nil && !sc.add(w.g, release) {
				release()
				return nil, nil, errScopeEnded
			}
			return w.g, release, nil
		case <-ctx.Done():
			p.mu.Lock()
			g := w.g
			if g == nil {
				p.removeLocked(w)
			}
			p.mu.Unlock()
			if g != nil { // granted while ctx ended: nobody will use it
				p.release(g)
			}
			return nil, nil, fmt.Errorf("waiting for %d MiB and %d CPUs from the pool: %w", memMiB, cpus, context.Cause(ctx))
		case <-tick:
			p.mu.Lock()
			p.grantLocked()
			p.mu.Unlock()
		}
	}
}

// Measured is a reservation for a VM that shares most of its memory with
// others (resumed from a memory template): it holds an estimate of what
// the VM keeps privately, which the caller corrects as it measures.
type Measured struct {
	p       *Pool
	g       *grant
	release func()
}

// AcquireMeasured reserves estimateMiB MiB and cpus CPUs for a VM whose
// memory is mostly pages it shares; fullMiB is its guest RAM, the most it
// can come to hold. In fixed mode the grant must also fit in the host's
// MemAvailable, since the budget no longer counts a VM at its full size.
func (p *Pool) AcquireMeasured(ctx context.Context, estimateMiB, fullMiB, cpus int) (*Measured, error) {
	if estimateMiB < 0 || fullMiB < 0 || estimateMiB > fullMiB {
		return nil, fmt.Errorf("pool: invalid estimate of %d MiB for a VM of %d MiB", estimateMiB, fullMiB)
	}
	g, release, err := p.acquire(ctx, estimateMiB, cpus, true)
	if err != nil {
		return nil, err
	}
	return &Measured{p: p, g: g, release: release}, nil
}

// Set makes the reservation mib MiB: what the VM was measured to hold.
// Growth is accounted even past the budget (the memory is in use), so
// later VMs wait for it.
func (m *Measured) Set(mib int) {
	p := m.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if m.g.released {
		return
	}
	mib = max(mib, 0)
	p.usedMem += mib - m.g.mem
	m.g.mem = mib
	p.grantLocked()
}

// Release gives the reservation back; calling it more than once is
// harmless.
func (m *Measured) Release() { m.release() }

// TryAcquire reserves memMiB MiB and cpus CPUs now, if they fit and no
// one is waiting: for work done ahead of need, which must never hold up a
// VM. Like a measured grant, it must fit in the host's MemAvailable in
// fixed mode too. ok is false when nothing was reserved. Once a VM waits
// for what the pool lacks, revoke is called, once, in a goroutine of its
// own: the holder is to give the reservation back.
func (p *Pool) TryAcquire(memMiB, cpus int, revoke func()) (release func(), ok bool) {
	if memMiB < 0 || cpus < 0 || p.check(memMiB, cpus) != nil {
		return nil, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.waiters) > 0 || !p.fitTest()(memMiB, cpus, true) {
		return nil, false
	}
	g := p.grantNowLocked(memMiB, cpus, true)
	g.revoke = revoke
	p.revocable = append(p.revocable, g)
	return func() { p.release(g) }, true
}

// revokeLocked asks every TryAcquire grant back.
func (p *Pool) revokeLocked() {
	for _, g := range p.revocable {
		if g.revoke != nil {
			go g.revoke()
		}
	}
	clear(p.revocable)
	p.revocable = p.revocable[:0]
}

// check fails requests that no amount of waiting can grant.
func (p *Pool) check(memMiB, cpus int) error {
	if !p.auto {
		if p.memMiB > 0 && memMiB > p.memMiB {
			return tooLarge(fmt.Sprintf("VM needs %d MiB but the pool has %d MiB", memMiB, p.memMiB))
		}
		if p.cpus > 0 && cpus > p.cpus {
			return tooLarge(fmt.Sprintf("VM needs %d CPUs but the pool has %d", cpus, p.cpus))
		}
		return nil
	}
	info, err := p.meminfo()
	if err != nil {
		return nil // see grantLocked: without meminfo the pool does not gate
	}
	if limit := info.totalMiB - p.reserveMiB; memMiB > limit {
		return tooLarge(fmt.Sprintf("VM needs %d MiB but the host has %d MiB (%d MiB total minus a %d MiB reserve)",
			memMiB, max(limit, 0), info.totalMiB, p.reserveMiB))
	}
	return nil
}

// checkScope fails a request of a test file that cannot fit even when
// every other file has given back what it holds: the file waits for
// nothing but itself, since it keeps what it holds while it waits.
func (p *Pool) checkScope(sc *scope, memMiB, cpus int) error {
	if p.auto || sc == nil {
		return nil
	}
	mem, used := sc.held()
	if p.memMiB > 0 && mem+memMiB > p.memMiB {
		return tooLarge(fmt.Sprintf("VM needs %d MiB, but the file already holds %d MiB of the pool's %d MiB and keeps it while it waits", memMiB, mem, p.memMiB))
	}
	if p.cpus > 0 && used+cpus > p.cpus {
		return tooLarge(fmt.Sprintf("VM needs %d CPUs, but the file already holds %d of the pool's %d and keeps them while it waits", cpus, used, p.cpus))
	}
	return nil
}

// tooLarge is an ErrTooLarge whose text is the whole sentence.
type tooLarge string

func (e tooLarge) Error() string        { return string(e) }
func (e tooLarge) Is(target error) bool { return target == ErrTooLarge }

// grantLocked grants, in arrival order, every waiter that fits.
func (p *Pool) grantLocked() {
	if len(p.waiters) == 0 {
		return
	}
	fits := p.fitTest()
	kept := p.waiters[:0]
	for _, w := range p.waiters {
		if !fits(w.mem, w.cpus, w.measured) {
			kept = append(kept, w)
			continue
		}
		w.g = p.grantNowLocked(w.mem, w.cpus, w.measured)
		close(w.ready)
	}
	clear(p.waiters[len(kept):])
	p.waiters = kept
	if len(kept) > 0 {
		p.revokeLocked()
	}
}

// fitTest returns the fit test of one pass over requests, made as they
// are granted: in fixed mode the budget, and for a measured request the
// host's MemAvailable too; in auto mode MemAvailable.
func (p *Pool) fitTest() func(mem, cpus int, measured bool) bool {
	if p.auto {
		fits := p.autoFits()
		return func(mem, cpus int, _ bool) bool { return fits(mem, cpus) }
	}
	var hostFits func(mem, cpus int) bool // read once, when first needed
	return func(mem, cpus int, measured bool) bool {
		if measured && hostFits == nil {
			hostFits = p.autoFits()
		}
		return p.fixedFits(mem, cpus) && (!measured || hostFits(mem, cpus))
	}
}

// grantNowLocked reserves mem and cpus, which fit.
func (p *Pool) grantNowLocked(mem, cpus int, measured bool) *grant {
	g := &grant{mem: mem, cpus: cpus, measured: measured}
	p.usedMem += mem
	p.usedCPUs += cpus
	p.held++
	if p.auto || measured {
		g.at = p.now()
		p.recent = append(p.recent, g)
	}
	return g
}

func (p *Pool) fixedFits(mem, cpus int) bool {
	return (p.memMiB == 0 || p.usedMem+mem <= p.memMiB) &&
		(p.cpus == 0 || p.usedCPUs+cpus <= p.cpus)
}

// autoFits reads the host once and returns a fit test that spends what it
// finds, so one pass does not grant the same free memory twice.
func (p *Pool) autoFits() func(mem, cpus int) bool {
	info, err := p.meminfo()
	if err != nil {
		// A harness that cannot read /proc/meminfo should still run
		// tests rather than wait forever: fail open.
		p.lastAvail = -1
		return func(int, int) bool { return true }
	}
	p.lastAvail = info.availMiB
	now := p.now()
	promised := 0
	fresh := p.recent[:0]
	for _, g := range p.recent {
		if now.Sub(g.at) < settle {
			fresh = append(fresh, g)
			promised += g.mem
		}
	}
	clear(p.recent[len(fresh):])
	p.recent = fresh
	free := info.availMiB - p.reserveMiB - promised
	return func(mem, _ int) bool {
		if mem > free {
			return false
		}
		free -= mem
		return true
	}
}

func (p *Pool) removeLocked(w *waiter) {
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			return
		}
	}
}

func (p *Pool) release(g *grant) {
	g.once.Do(func() {
		if g.scope != nil {
			g.scope.forget(g)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		g.released = true
		p.usedMem -= g.mem
		p.usedCPUs -= g.cpus
		p.held--
		for i, r := range p.recent {
			if r == g {
				p.recent = append(p.recent[:i], p.recent[i+1:]...)
				break
			}
		}
		for i, r := range p.revocable {
			if r == g {
				p.revocable = append(p.revocable[:i], p.revocable[i+1:]...)
				break
			}
		}
		p.grantLocked()
	})
}
