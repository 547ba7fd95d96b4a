package pool

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"
)

// A fixed budget of 1024 MiB holds eight template VMs estimated at 128
// MiB where it held two of 512; a VM measured to grow takes more of it.
func TestMeasuredFixedChargesTheEstimate(t *testing.T) {
	h := &fakeHost{avail: 16384, total: 16384, now: time.Unix(1000, 0)}
	p := NewFixed(1024, 0)
	p.meminfo, p.now, p.poll = h.meminfo, h.clock, time.Millisecond
	var vms []*Measured
	for range 8 {
		m, err := p.AcquireMeasured(context.Background(), 128, 512, 1)
		if err != nil {
			t.Fatal(err)
		}
		vms = append(vms, m)
	}
	if u := p.Usage(); u.MemMiB != 1024 || u.VMs != 8 {
		t.Fatalf("usage %+v, want 1024 MiB in 8 VMs", u)
	}
	done := make(chan error, 1)
	go func() {
		m, err := p.AcquireMeasured(context.Background(), 128, 512, 1)
		if err == nil {
			m.Release()
		}
		done <- err
	}()
	waitWaiting(t, p, 1)
	// One VM writes much of its memory, another is released: the
	// budget is still full, so the waiter still waits.
	vms[0].Set(256)
	vms[1].Release()
	time.Sleep(20 * time.Millisecond)
	if p.Usage().Waiting != 1 {
		t.Fatal("a waiter got in while a grown VM fills the budget")
	}
	vms[0].Set(64) // measured smaller again
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, m := range vms {
		m.Release()
	}
	vms[1].Set(500) // after release: no effect
	if u := p.Usage(); u.MemMiB != 0 || u.VMs != 0 {
		t.Errorf("usage after all releases %+v", u)
	}
}

// In fixed mode a measured grant must also fit in the host's memory:
// its budget no longer counts the VM at its full size.
func TestMeasuredFixedBoundedByTheHost(t *testing.T) {
	h := &fakeHost{avail: 100, total: 16384, now: time.Unix(1000, 0)}
	p := NewFixed(8192, 0)
	p.meminfo, p.now, p.poll = h.meminfo, h.clock, time.Millisecond
	done := make(chan error, 1)
	go func() {
		m, err := p.AcquireMeasured(context.Background(), 128, 512, 1)
		if err == nil {
			m.Release()
		}
		done <- err
	}()
	waitWaiting(t, p, 1)
	h.set(func(h *fakeHost) { h.avail = 1024 })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Recent measured grants are promised too, as in auto mode.
	m1, _ := p.AcquireMeasured(context.Background(), 600, 1024, 1)
	defer m1.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.AcquireMeasured(ctx, 600, 1024, 1); err == nil {
		t.Error("two 600 MiB grants went into 1024 MiB of MemAvailable at once")
	}
}

func TestMeasuredRejectsBadEstimates(t *testing.T) {
	p := NewFixed(0, 0)
	for _, c := range [][2]int{{-1, 512}, {600, 512}, {1, -1}} {
		if _, err := p.AcquireMeasured(context.Background(), c[0], c[1], 1); err == nil {
			t.Errorf("AcquireMeasured(%d, %d) accepted", c[0], c[1])
		}
	}
}

func TestParseSmapsRollup(t *testing.T) {
	data := []byte(`55d0c0a00000-7ffd8a9f2000 ---p 00000000 00:00 0                          [rollup]
Rss:              312344 kB
Pss:              160512 kB
Shared_Clean:     150000 kB
Private_Clean:      2000 kB
Private_Dirty:     90000 kB
Swap:               1000 kB
SwapPss:             500 kB
`)
	kb, err := parseSmapsRollup(data, "Private_Dirty", "Swap")
	if err != nil || kb != 91000 {
		t.Errorf("parseSmapsRollup = %d, %v; want 91000", kb, err)
	}
	if kb, err := parseSmapsRollup(data, "Pss", "SwapPss"); err != nil || kb != 161012 {
		t.Errorf("parseSmapsRollup of Pss = %d, %v; want 161012", kb, err)
	}
	for _, bad := range []string{"Rss: 1 kB\n", "Private_Dirty: x kB\n", "Private_Dirty: 5\n", "Private_Dirty: -5 kB\n"} {
		if _, err := parseSmapsRollup([]byte(bad), "Private_Dirty", "Swap"); err == nil {
			t.Errorf("parseSmapsRollup(%q) accepted", bad)
		}
	}
}

// This process has written memory of its own: a real rollup says so.
func TestPrivateDirtyOfThisProcess(t *testing.T) {
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = 1
	}
	mib, err := PrivateDirtyMiB(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if mib < 64 {
		t.Errorf("PrivateDirtyMiB = %d with 64 MiB written", mib)
	}
	pss, err := PSSMiB(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if pss < 64 {
		t.Errorf("PSSMiB = %d with 64 MiB written", pss)
	}
	runtime.KeepAlive(buf)
}

func TestTryAcquireNeverQueuesOrJumpsTheQueue(t *testing.T) {
	h := &fakeHost{avail: 4096, total: 16384, now: time.Unix(1000, 0)}
	p := NewFixed(1024, 2)
	p.meminfo, p.now, p.poll = h.meminfo, h.clock, time.Millisecond

	rel, ok := p.TryAcquire(512, 0, nil)
	if !ok {
		t.Fatal("TryAcquire(512) refused by an empty pool")
	}
	if _, ok := p.TryAcquire(600, 0, nil); ok {
		t.Error("TryAcquire(600) granted past the budget")
	}
	// A VM that asked first and waits keeps its turn.
	ch := acquireAsync(context.Background(), p, 1024, 1)
	waitWaiting(t, p, 1)
	if r, ok := p.TryAcquire(1, 0, nil); ok {
		r()
		t.Error("TryAcquire granted while a VM waits")
	}
	rel()
	rel() // harmless twice
	o := <-ch
	if o.err != nil {
		t.Fatal(o.err)
	}
	o.release()

	// In fixed mode, the host's MemAvailable bounds it too.
	h.set(func(h *fakeHost) { h.avail = 100 })
	if r, ok := p.TryAcquire(200, 0, nil); ok {
		r()
		t.Error("TryAcquire granted more than MemAvailable")
	}
	if u := p.Usage(); u.MemMiB != 0 || u.VMs != 0 {
		t.Errorf("after every release the pool holds %d MiB in %d grants", u.MemMiB, u.VMs)
	}
}

// Work ahead of need gives its reservation back once a VM waits for it.
func TestTryAcquireRevokedForAWaitingVM(t *testing.T) {
	p := NewFixed(1024, 0)
	p.meminfo = (&fakeHost{avail: 4096, total: 16384}).meminfo
	revoked := make(chan struct{})
	var release func()
	release, ok := p.TryAcquire(48, 0, func() {
		close(revoked) // twice would panic
		release()
	})
	if !ok {
		t.Fatal("TryAcquire refused by an empty pool")
	}
	fits := mustAcquire(t, p, 512, 0) // fits beside it: nothing asked back
	select {
	case <-revoked:
		t.Fatal("revoked while every VM fitted")
	default:
	}
	ch := acquireAsync(context.Background(), p, 512, 0)
	select {
	case <-revoked:
	case <-time.After(10 * time.Second):
		t.Fatal("a VM waits for memory a TryAcquire holds, and it was not asked back")
	}
	o := <-ch
	if o.err != nil {
		t.Fatal(o.err)
	}
	o.release()
	fits()
}
