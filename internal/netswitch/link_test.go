package netswitch

import (
	"errors"
	"math"
	"slices"
	"sync"
	"testing"
	"time"
)

// slack is how late a frame may be on a loaded 2-core machine before a
// test calls it wrong. Lower bounds are exact: timers never fire early.
const slack = 250 * time.Millisecond

func TestDelayAppliesBothWaysInOrder(t *testing.T) {
	s := newSwitch(t)
	a, b := newVM(t, s, "a", 1), newVM(t, s, "b", 2)
	const delay = 50 * time.Millisecond
	if err := s.SetLink(a.port, b.port, Impairment{Delay: delay}); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []struct{ from, to *vm }{{a, b}, {b, a}} {
		const n = 20
		for i := range n {
			dir.from.send(dir.from.numbered(dir.to.mac, uint32(i), 100))
			time.Sleep(2 * time.Millisecond)
		}
		for i := range n {
			f := dir.to.recv(delay + slack + n*2*time.Millisecond)
			if f == nil {
				t.Fatalf("%s->%s: frame %d lost", dir.from.name, dir.to.name, i)
			}
			if got := seqOf(f); got != uint32(i) {
				t.Fatalf("%s->%s: frame %d arrived as %d", dir.from.name, dir.to.name, got, i)
			}
			lat := time.Since(sentAt(f))
			if lat < delay || lat > delay+slack {
				t.Errorf("%s->%s: frame %d took %v, want %v (+%v)", dir.from.name, dir.to.name, i, lat, delay, slack)
			}
		}
	}
}

func TestJitterStaysWithinBounds(t *testing.T) {
	for _, tc := range []struct {
		name          string
		delay, jitter time.Duration
	}{
		{"jitter below delay", 40 * time.Millisecond, 20 * time.Millisecond},
		{"jitter above delay never makes it negative", 5 * time.Millisecond, 30 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSwitch(t)
			s.SetSeed(7)
			a, b := newVM(t, s, "a", 1), newVM(t, s, "b", 2)
			if err := s.SetLink(a.port, b.port, Impairment{Delay: tc.delay, Jitter: tc.jitter}); err != nil {
				t.Fatal(err)
			}
			const n = 100
			for i := range n {
				a.send(a.numbered(b.mac, uint32(i), 64))
			}
			lo, hi := max(tc.delay-tc.jitter, 0), tc.delay+tc.jitter
			var seqs []uint32
			minLat, maxLat := time.Hour, time.Duration(0)
			for range n {
				f := b.recv(hi + slack)
				if f == nil {
					t.Fatalf("got %d of %d frames", len(seqs), n)
				}
				seqs = append(seqs, seqOf(f))
				lat := time.Since(sentAt(f))
				minLat, maxLat = min(minLat, lat), max(maxLat, lat)
			}
			if minLat < lo || maxLat > hi+slack {
				t.Errorf("latencies %v..%v, want within %v..%v (+%v)", minLat, maxLat, lo, hi, slack)
			}
			if maxLat-minLat < tc.jitter/2 {
				t.Errorf("latencies %v..%v spread less than half the jitter %v", minLat, maxLat, tc.jitter)
			}
			if slices.IsSorted(seqs) {
				t.Error("jitter did not reorder any of 100 frames sent back to back")
			}
		})
	}
}

// lossRun sends n frames over a link with the given loss and seed and
// returns the sequence numbers that arrived.
func lossRun(t *testing.T, loss float64, seed uint64, n int) []uint32 {
	s := newSwitch(t)
	s.SetSeed(seed)
	a, b := newVM(t, s, "a", 1), newVM(t, s, "b", 2)
	if err := s.SetLink(a.port, b.port, Impairment{Loss: loss}); err != nil {
		t.Fatal(err)
	}
	var got []uint32
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			f := b.recv(500 * time.Millisecond)
			if f == nil {
				return
			}
			got = append(got, seqOf(f))
		}
	})
	for i := range n {
		a.send(a.numbered(b.mac, uint32(i), 64))
	}
	wg.Wait()
	st := s.Stats()["b"]
	if st.DroppedLoss+st.OutFrames != uint64(n) || st.OutFrames != uint64(len(got)) {
		t.Errorf("b: %d lost + %d out, %d received, %d sent", st.DroppedLoss, st.OutFrames, len(got), n)
	}
	return got
}

func TestLossIsStatisticalAndSeeded(t *testing.T) {
	const n, loss = 2000, 0.3
	got := lossRun(t, loss, 42, n)
	lost := n - len(got)
	// Five standard deviations of a binomial: a wrong loss rate fails,
	// a right one essentially never does (and the seed fixes it anyway).
	sd := math.Sqrt(n * loss * (1 - loss))
	if want := n * loss; math.Abs(float64(lost)-want) > 5*sd {
		t.Errorf("lost %d of %d, want %.0f ± %.0f", lost, n, want, 5*sd)
	}
	if !slices.IsSorted(got) {
		t.Error("loss reordered frames")
	}
	if again := lossRun(t, loss, 42, n); !slices.Equal(got, again) {
		t.Error("the same seed lost different frames")
	}
	if other := lossRun(t, loss, 43, n); slices.Equal(got, other) {
		t.Error("a different seed lost the same frames")
	}
}

func TestRateCapsThroughput(t *testing.T) {
	s := newSwitch(t)
	a, b := newVM(t, s, "a", 1), newVM(t, s, "b", 2)
	rate, err := ParseRate("8mbit")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetLink(a.port, b.port, Impairment{RateBitsPerSec: rate}); err != nil {
		t.Fatal(err)
	}
	const size, n = 1500, 700 // 1.05 MB: 1.05 s at 8 Mbit/s
	start := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			a.send(a.numbered(b.mac, uint32(i), size))
		}
	})
	for i := range n {
		f := b.recv(5 * time.Second)
		if f == nil {
			t.Fatalf("frame %d never arrived", i)
		}
		if seqOf(f) != uint32(i) {
			t.Fatalf("frame %d arrived as %d", i, seqOf(f))
		}
	}
	elapsed := time.Since(start)
	wg.Wait()
	want := time.Duration(size * 8 * n * float64(time.Second) / float64(rate))
	if elapsed < want*8/10 || elapsed > want+2*time.Second {
		t.Errorf("%d bytes took %v at %d bit/s, want about %v", size*n, elapsed, rate, want)
	}
	t.Logf("%d bytes in %v (%.2f Mbit/s)", size*n, elapsed, float64(size*n*8)/elapsed.Seconds()/1e6)
}

func TestImpairmentChangesWhileTrafficFlows(t *testing.T) {
	s := newSwitch(t)
	a, b := newVM(t, s, "a", 1), newVM(t, s, "b", 2)
	const delay = 400 * time.Millisecond

	type arrival struct {
		seq     uint32
		latency time.Duration
	}
	var (
		mu       sync.Mutex
		arrivals []arrival
		wg       sync.WaitGroup
		stop     = make(chan struct{})
	)
	wg.Go(func() {
		for i := uint32(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			a.send(a.numbered(b.mac, i, 64))
			time.Sleep(3 * time.Millisecond)
		}
	})
	wg.Go(func() {
		for {
			f := b.recv(delay + slack + 200*time.Millisecond)
			if f == nil {
				return
			}
			mu.Lock()
			arrivals = append(arrivals, arrival{seqOf(f), time.Since(sentAt(f))})
			mu.Unlock()
		}
	})
	// sentAfter is the first sequence number sent after an instant; the
	// sender runs concurrently, so it is read from a's counter.
	sentSoFar := func() uint32 { return uint32(s.Stats()["a"].InFrames) }

	time.Sleep(100 * time.Millisecond)
	if err := s.SetLink(a.port, b.port, Impairment{Delay: delay}); err != nil {
		t.Fatal(err)
	}
	delayedFrom := sentSoFar() + 1 // the one in flight may have been read already
	time.Sleep(300 * time.Millisecond)
	if err := s.SetLink(a.port, b.port, Impairment{}); err != nil {
		t.Fatal(err)
	}
	liftedFrom := sentSoFar() + 1
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()

	var nDelayed, nLifted int
	for _, ar := range arrivals {
		switch {
		case ar.seq >= delayedFrom && ar.seq < liftedFrom-2:
			nDelayed++
			if ar.latency < delay {
				t.Errorf("frame %d sent under the delay took only %v", ar.seq, ar.latency)
			}
		case ar.seq >= liftedFrom:
			nLifted++
			if ar.latency > slack {
				t.Errorf("frame %d sent after the delay was lifted took %v", ar.seq, ar.latency)
			}
		}
	}
	if nDelayed < 10 || nLifted < 10 {
		t.Fatalf("only %d delayed and %d undelayed frames checked of %d", nDelayed, nLifted, len(arrivals))
	}
	if st := s.Stats()["b"]; st.OutFrames != uint64(len(arrivals)) || st.OutFrames != s.Stats()["a"].InFrames {
		t.Errorf("frames lost: a sent %d, b out %d, received %d", s.Stats()["a"].InFrames, st.OutFrames, len(arrivals))
	}
}

func TestQueueOverflowDropsAndCounts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		imp      Impairment
		size, n  int
		accepted int // frames the link queue takes; -1: unknown (socket buffer)
	}{
		{"link queue by frames", Impairment{Delay: time.Minute}, 64, MaxLinkFrames + 500, MaxLinkFrames},
		{"link queue by bytes", Impairment{Delay: time.Minute}, 1500, 3500, MaxLinkBytes / 1500},
		{"rate-limited link queue", Impairment{RateBitsPerSec: 1000}, 1500, 3500, MaxLinkBytes / 1500},
		{"socket buffer toward a VM that does not read", Impairment{}, 1500, 4 * EgressBuffer / 1500, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSwitch(t)
			a, b := newVM(t, s, "a", 1), newVM(t, s, "b", 2)
			if err := s.SetLink(a.port, b.port, tc.imp); err != nil {
				t.Fatal(err)
			}
			for i := range tc.n {
				a.send(a.numbered(b.mac, uint32(i), tc.size))
			}
			queued := func() int {
				s.mu.Lock()
				defer s.mu.Unlock()
				return len(s.sched)
			}
			// A frame is counted in before it is forwarded: wait until
			// every frame sent is also queued, written to b or dropped.
			var nq int
			st := waitStats(t, s, "every frame forwarded or dropped", func(m map[string]PortStats) bool {
				nq = queued()
				b := m["b"]
				return m["a"].InFrames == uint64(tc.n) && b.OutFrames+b.DroppedOverflow+uint64(nq) == uint64(tc.n)
			})["b"]
			if tc.accepted >= 0 {
				if want := uint64(tc.n - tc.accepted); st.DroppedOverflow != want {
					t.Fatalf("overflow drops = %d, want %d", st.DroppedOverflow, want)
				}
				if nq+int(st.OutFrames) != tc.accepted {
					t.Fatalf("%d queued + %d delivered, want %d", nq, st.OutFrames, tc.accepted)
				}
				return
			}
			if st.DroppedOverflow == 0 {
				t.Fatalf("no overflow drops after %d unread frames of %d bytes", tc.n, tc.size)
			}
			for i := range st.OutFrames {
				if f := b.recv(time.Second); f == nil || seqOf(f) != uint32(i) {
					t.Fatalf("frame %d of %d written to b missing", i, st.OutFrames)
				}
			}
			b.expectNone(quiet)
			// Once b reads again, frames flow again.
			f := a.numbered(b.mac, 0, 64)
			a.send(f)
			b.expect(f)
		})
	}
}

func TestSetLinkRejectsBadArguments(t *testing.T) {
	s := newSwitch(t)
	other := newSwitch(t)
	a, b := newVM(t, s, "a", 1), newVM(t, s, "b", 2)
	x := newVM(t, other, "x", 3)
	for _, tc := range []struct {
		name string
		a, b *Port
		imp  Impairment
		is   error
	}{
		{"nil port", a.port, nil, Impairment{}, nil},
		{"port to itself", a.port, a.port, Impairment{Delay: time.Millisecond}, nil},
		{"port of another switch", a.port, x.port, Impairment{}, ErrForeignPort},
		{"negative delay", a.port, b.port, Impairment{Delay: -1}, nil},
		{"delay beyond MaxDelay", a.port, b.port, Impairment{Delay: MaxDelay + 1}, nil},
		{"negative jitter", a.port, b.port, Impairment{Jitter: -1}, nil},
		{"loss above 1", a.port, b.port, Impairment{Loss: 1.5}, nil},
		{"negative loss", a.port, b.port, Impairment{Loss: -0.1}, nil},
		{"NaN loss", a.port, b.port, Impairment{Loss: math.NaN()}, nil},
		{"negative rate", a.port, b.port, Impairment{RateBitsPerSec: -1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.SetLink(tc.a, tc.b, tc.imp)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
		})
	}
	if err := s.SetLink(a.port, b.port, Impairment{Loss: 1}); err != nil {
		t.Fatalf("total loss rejected: %v", err)
	}
	a.send(frame(b.mac, a.mac, 0x0800, nil))
	b.expectNone(quiet)
}

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64 // 0: rejected
	}{
		{"10mbit", 10_000_000},
		{"1gbit", 1_000_000_000},
		{"512kbit", 512_000},
		{"1.5mbit", 1_500_000},
		{"100", 100},
		{"100bit", 100},
		{"1kibit", 1024},
		{"2mibit", 2 << 20},
		{"1gibit", 1 << 30},
		{"1tbit", 1_000_000_000_000},
		{"100bps", 800},
		{"100kbps", 800_000},
		{"1mbps", 8_000_000},
		{"1MBps", 8_000_000},
		{"1kibps", 8192},
		{"10Mbit", 10_000_000},
		{".5kbit", 500},
		{"1.kbit", 1000},
		{"", 0},
		{"mbit", 0},
		{"10", 10},
		{"0", 0},
		{"0mbit", 0},
		{"0.1bit", 0},
		{"-1mbit", 0},
		{"+1mbit", 0},
		{"10 mbit", 0},
		{" 10mbit", 0},
		{"10mbit ", 0},
		{"10mb", 0},
		{"10mbits", 0},
		{"10xbit", 0},
		{"1e6bit", 0},
		{"0x10mbit", 0},
		{"inf", 0},
		{"NaN", 0},
		{"1.2.3mbit", 0},
		{".", 0},
		{"10000000tbit", 0}, // 10^19: beyond int64
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRate(tc.in)
			if tc.want == 0 {
				if err == nil {
					t.Fatalf("accepted as %d", got)
				}
				if !errors.Is(err, ErrBadRate) {
					t.Fatalf("err = %v, want ErrBadRate", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("= %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}
