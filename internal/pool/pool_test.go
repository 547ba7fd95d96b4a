package pool

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// acquireAsync starts an Acquire and returns a channel that receives its
// outcome.
type outcome struct {
	release func()
	err     error
}

func acquireAsync(ctx context.Context, p *Pool, mem, cpus int) <-chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		r, err := p.Acquire(ctx, mem, cpus)
		ch <- outcome{r, err}
	}()
	return ch
}

// waitWaiting blocks until n Acquire calls are queued, so tests order their
// steps by state rather than by sleeping.
func waitWaiting(t *testing.T, p *Pool, n int) {
	t.Helper()
	for p.Usage().Waiting != n {
		time.Sleep(time.Millisecond)
	}
}

func mustAcquire(t *testing.T, p *Pool, mem, cpus int) func() {
	t.Helper()
	r, err := p.Acquire(context.Background(), mem, cpus)
	if err != nil {
		t.Fatalf("Acquire(%d, %d): %v", mem, cpus, err)
	}
	return r
}

func TestFixedBlocksUntilRelease(t *testing.T) {
	p := NewFixed(1024, 2)
	r1 := mustAcquire(t, p, 512, 1)
	r2 := mustAcquire(t, p, 512, 1)

	ch := acquireAsync(context.Background(), p, 512, 1)
	waitWaiting(t, p, 1)
	select {
	case o := <-ch:
		t.Fatalf("Acquire returned %v while the pool was full", o.err)
	default:
	}

	r1()
	o := <-ch
	if o.err != nil {
		t.Fatal(o.err)
	}
	if u := p.Usage(); u.VMs != 2 || u.MemMiB != 1024 || u.CPUs != 2 {
		t.Errorf("usage = %+v, want 2 VMs, 1024 MiB, 2 CPUs", u)
	}
	r2()
	o.release()
	if u := p.Usage(); u.VMs != 0 || u.MemMiB != 0 || u.CPUs != 0 {
		t.Errorf("usage after releases = %+v, want empty", u)
	}
}

func TestFixedCPUsGate(t *testing.T) {
	p := NewFixed(0, 2) // memory unlimited
	r := mustAcquire(t, p, 100000, 2)
	ch := acquireAsync(context.Background(), p, 1, 1)
	waitWaiting(t, p, 1)
	r()
	if o := <-ch; o.err != nil {
		t.Fatal(o.err)
	}
}

func TestReleaseIdempotent(t *testing.T) {
	p := NewFixed(1024, 0)
	r := mustAcquire(t, p, 1024, 1)
	r()
	r()
	r2 := mustAcquire(t, p, 1024, 1)
	r()
	if u := p.Usage(); u.MemMiB != 1024 || u.VMs != 1 {
		t.Errorf("a second release freed someone else's memory: %+v", u)
	}
	r2()
}

func TestTooLargeFailsAtOnce(t *testing.T) {
	tests := []struct {
		name      string
		mem, cpus int
		want      string
	}{
		{"memory", 8192, 1, "VM needs 8192 MiB but the pool has 4096 MiB"},
		{"cpus", 512, 3, "VM needs 3 CPUs but the pool has 2"},
	}
	p := NewFixed(4096, 2)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Acquire(context.Background(), tt.mem, tt.cpus)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err = %v, want ErrTooLarge", err)
			}
			if err.Error() != tt.want {
				t.Errorf("err = %q, want %q", err, tt.want)
			}
		})
	}
}

func TestUnlimitedFixedPool(t *testing.T) {
	p := NewFixed(0, 0)
	for range 10 {
		mustAcquire(t, p, 1<<20, 64)
	}
}

func TestCancelWhileWaiting(t *testing.T) {
	p := NewFixed(512, 0)
	r := mustAcquire(t, p, 512, 1)
	ctx, cancel := context.WithCancel(context.Background())
	ch := acquireAsync(ctx, p, 512, 1)
	waitWaiting(t, p, 1)
	cancel()
	o := <-ch
	if !errors.Is(o.err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", o.err)
	}
	if u := p.Usage(); u.Waiting != 0 || u.VMs != 1 {
		t.Errorf("usage after cancel = %+v, want 1 VM and no waiter", u)
	}
	r()
	// The cancelled waiter must not have been granted behind our back.
	if u := p.Usage(); u.VMs != 0 || u.MemMiB != 0 {
		t.Errorf("usage after release = %+v, want empty", u)
	}
}

func TestSmallerWaiterNotHeldUpByLarger(t *testing.T) {
	p := NewFixed(1024, 0)
	r := mustAcquire(t, p, 512, 1)
	big := acquireAsync(context.Background(), p, 1024, 1)
	waitWaiting(t, p, 1)
	small := acquireAsync(context.Background(), p, 512, 1)
	o := <-small // fits beside r although big waits ahead of it
	if o.err != nil {
		t.Fatal(o.err)
	}
	r()
	o.release()
	if o := <-big; o.err != nil {
		t.Fatal(o.err)
	}
}

func TestFIFOAmongEqualWaiters(t *testing.T) {
	p := NewFixed(512, 0)
	r := mustAcquire(t, p, 512, 1)
	var order []int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rel, err := p.Acquire(context.Background(), 512, 1)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			rel()
		}()
		waitWaiting(t, p, i+1) // queue them in a known order
	}
	r()
	wg.Wait()
	if len(order) != 3 || order[0] != 0 || order[1] != 1 || order[2] != 2 {
		t.Errorf("grant order = %v, want [0 1 2]", order)
	}
}

func TestScopeReleasesEverything(t *testing.T) {
	p := NewFixed(1024, 0)
	ctx, end := Scope(context.Background())
	mustAcquireCtx(t, ctx, p, 512)
	r := mustAcquireCtx(t, ctx, p, 512)
	r() // released early by its owner; the scope must not free it twice
	mustAcquireCtx(t, ctx, p, 256)
	other := mustAcquire(t, p, 256, 1) // outside the scope

	end()
	if u := p.Usage(); u.VMs != 1 || u.MemMiB != 256 {
		t.Errorf("usage after scope end = %+v, want only the unscoped 256 MiB", u)
	}
	if _, err := p.Acquire(ctx, 1, 1); !errors.Is(err, errScopeEnded) {
		t.Errorf("Acquire after scope end: err = %v, want errScopeEnded", err)
	}
	if _, err := p.Acquire(WithoutScope(ctx), 1, 1); err != nil {
		t.Errorf("Acquire WithoutScope: %v", err)
	}
	other()
}

func mustAcquireCtx(t *testing.T, ctx context.Context, p *Pool, mem int) func() {
	t.Helper()
	r, err := p.Acquire(ctx, mem, 1)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fakeHost is an injectable /proc/meminfo with a controllable clock.
type fakeHost struct {
	mu    sync.Mutex
	avail int
	total int
	err   error
	now   time.Time
}

func (h *fakeHost) meminfo() (memInfo, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return memInfo{availMiB: h.avail, totalMiB: h.total}, h.err
}

func (h *fakeHost) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

func (h *fakeHost) set(f func(h *fakeHost)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
}

func newFakeAuto(h *fakeHost) *Pool {
	p := newAuto(1536, h.meminfo)
	p.now = h.clock
	p.poll = time.Millisecond
	return p
}

func TestAutoWaitsForMemAvailable(t *testing.T) {
	h := &fakeHost{avail: 2048, total: 16384, now: time.Unix(1000, 0)}
	p := newFakeAuto(h)

	// 2048 - 1536 reserve = 512 free: a 1024 MiB VM must wait.
	ch := acquireAsync(context.Background(), p, 1024, 1)
	waitWaiting(t, p, 1)
	h.set(func(h *fakeHost) { h.avail = 4096 })
	o := <-ch
	if o.err != nil {
		t.Fatal(o.err)
	}
	o.release()
}

func TestAutoCountsRecentBoots(t *testing.T) {
	h := &fakeHost{avail: 1536 + 1024, total: 16384, now: time.Unix(1000, 0)}
	p := newFakeAuto(h)

	r := mustAcquire(t, p, 1024, 1)
	// MemAvailable has not dropped yet (the new QEMU has not touched its
	// memory), but the pool must count the promise and make the next wait.
	ch := acquireAsync(context.Background(), p, 1024, 1)
	waitWaiting(t, p, 1)
	// A few seconds later the promise no longer counts: by now the first
	// VM's memory shows in MemAvailable, which here has not changed.
	h.set(func(h *fakeHost) { h.now = h.now.Add(settle) })
	o := <-ch
	if o.err != nil {
		t.Fatal(o.err)
	}
	r()
	o.release()
}

func TestAutoTooLargeForHost(t *testing.T) {
	h := &fakeHost{avail: 4096, total: 4096, now: time.Unix(1000, 0)}
	p := newFakeAuto(h)
	_, err := p.Acquire(context.Background(), 4096, 1)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if !strings.Contains(err.Error(), "VM needs 4096 MiB but the host has 2560 MiB") {
		t.Errorf("err = %q", err)
	}
}

func TestAutoCancelWhileWaiting(t *testing.T) {
	h := &fakeHost{avail: 0, total: 16384, now: time.Unix(1000, 0)}
	p := newFakeAuto(h)
	ctx, cancel := context.WithCancel(context.Background())
	ch := acquireAsync(ctx, p, 512, 1)
	waitWaiting(t, p, 1)
	cancel()
	if o := <-ch; !errors.Is(o.err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", o.err)
	}
}

func TestAutoFailsOpenWithoutMeminfo(t *testing.T) {
	h := &fakeHost{err: errors.New("no /proc"), now: time.Unix(1000, 0)}
	p := newFakeAuto(h)
	mustAcquire(t, p, 4096, 1)
	if u := p.Usage(); u.AvailMiB != -1 {
		t.Errorf("AvailMiB = %d, want -1 when unknown", u.AvailMiB)
	}
}

func TestParseMeminfo(t *testing.T) {
	data := []byte("MemTotal:       32768000 kB\nMemFree:  100 kB\nMemAvailable:   24341048 kB\n")
	info, err := parseMeminfo(data)
	if err != nil {
		t.Fatal(err)
	}
	if info.totalMiB != 32000 || info.availMiB != 23770 {
		t.Errorf("info = %+v", info)
	}
	if _, err := parseMeminfo([]byte("MemTotal: 1 kB\n")); err == nil {
		t.Error("missing MemAvailable: no error")
	}
	if _, err := parseMeminfo([]byte("MemTotal: x kB\nMemAvailable: 1 kB\n")); err == nil {
		t.Error("bad number: no error")
	}
}

func TestReadMeminfoOnThisHost(t *testing.T) {
	info, err := readMeminfo()
	if err != nil {
		t.Skip(err)
	}
	if info.totalMiB <= 0 || info.availMiB < 0 || info.availMiB > info.totalMiB {
		t.Errorf("implausible meminfo %+v", info)
	}
}

func TestUsageString(t *testing.T) {
	tests := []struct {
		u    Usage
		want string
	}{
		{Usage{VMs: 3, MemMiB: 1536, CPUs: 3, LimitMiB: 4096, LimitCPU: 4, Waiting: 1}, "3 VMs, mem 1.5G/4.0G, cpus 3/4, 1 waiting"},
		{Usage{VMs: 1, MemMiB: 512}, "1 VM, mem 512M"},
		{Usage{Auto: true, VMs: 2, MemMiB: 1024, AvailMiB: 20480}, "2 VMs, mem 1.0G (20.0G free)"},
		{Usage{Auto: true, AvailMiB: -1}, "0 VMs, mem 0M"},
	}
	for _, tt := range tests {
		if got := tt.u.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.u, got, tt.want)
		}
	}
}

// A file that holds part of the pool and asks for more than the rest can
// ever give fails at once with the numbers, rather than waiting for
// itself until it times out.
func TestFileThatCanNeverFitFailsAtOnce(t *testing.T) {
	p := NewFixed(1024, 0)
	ctx, end := Scope(context.Background())
	defer end()
	release, err := p.Acquire(ctx, 768, 1)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = p.Acquire(ctx, 768, 1)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "already holds 768 MiB of the pool's 1024 MiB") {
		t.Fatalf("second VM of the file: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v to fail", d)
	}
	// Once the file gave its first VM back, the same request fits.
	release()
	r2, err := p.Acquire(ctx, 768, 1)
	if err != nil {
		t.Fatalf("after the release: %v", err)
	}
	r2()
	// Another file's holdings are not the asker's: that one waits.
	other, endOther := Scope(context.Background())
	defer endOther()
	held, _ := p.Acquire(other, 768, 1)
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := p.Acquire(wctx, 768, 1); errors.Is(err, ErrTooLarge) || err == nil {
		t.Errorf("waiting on another file's VM: %v, want a wait that times out", err)
	}
	held()
}
