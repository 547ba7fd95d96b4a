package netswitch

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
	"time"
)

const quiet = 50 * time.Millisecond // how long "nothing arrives" is watched

func TestLearningSendsKnownUnicastToOnePort(t *testing.T) {
	s := newSwitch(t)
	a, b, c := newVM(t, s, "a", 1), newVM(t, s, "b", 2), newVM(t, s, "c", 3)

	// b is unknown yet: the frame is flooded.
	f := frame(b.mac, a.mac, 0x0800, []byte("unknown"))
	a.send(f)
	b.expect(f)
	c.expect(f)

	// b answers; a was learned from the first frame, so only a gets it.
	f = frame(a.mac, b.mac, 0x0800, []byte("reply"))
	b.send(f)
	a.expect(f)
	c.expectNone(quiet)

	// b has now been learned too.
	f = frame(b.mac, a.mac, 0x0800, []byte("known"))
	a.send(f)
	b.expect(f)
	c.expectNone(quiet)

	st := s.Stats()
	if st["a"].OutFrames != 1 || st["b"].OutFrames != 2 || st["c"].OutFrames != 1 {
		t.Errorf("out frames a=%d b=%d c=%d, want 1 2 1", st["a"].OutFrames, st["b"].OutFrames, st["c"].OutFrames)
	}
	if st["a"].InFrames != 2 || st["a"].InBytes != uint64(2*14+len("unknown")+len("known")) {
		t.Errorf("a in = %d frames %d bytes", st["a"].InFrames, st["a"].InBytes)
	}
}

func TestStationMoveRelearns(t *testing.T) {
	s := newSwitch(t)
	a, b, c := newVM(t, s, "a", 1), newVM(t, s, "b", 2), newVM(t, s, "c", 3)
	roaming := mac(9)
	f := frame(broadcast, roaming, 0x0806, nil)
	b.send(f) // roaming is behind b
	a.expect(f)
	c.expect(f)
	c.send(f) // now behind c
	a.expect(f)
	b.expect(f)
	u := frame(roaming, a.mac, 0x0800, []byte("where"))
	a.send(u)
	c.expect(u)
	b.expectNone(quiet)
}

func TestFloodReachesEveryOtherPort(t *testing.T) {
	for _, tc := range []struct {
		name string
		dst  [6]byte
	}{
		{"broadcast", broadcast},
		{"IPv4 multicast", [6]byte{0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb}},
		{"unknown unicast", mac(99)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSwitch(t)
			vms := []*vm{newVM(t, s, "a", 1), newVM(t, s, "b", 2), newVM(t, s, "c", 3), newVM(t, s, "d", 4)}
			f := frame(tc.dst, vms[0].mac, 0x0800, []byte(tc.name))
			vms[0].send(f)
			for _, v := range vms[1:] {
				v.expect(f)
			}
			vms[0].expectNone(quiet)
		})
	}
}

func TestMulticastSourceIsNotLearned(t *testing.T) {
	s := newSwitch(t)
	a, b, c := newVM(t, s, "a", 1), newVM(t, s, "b", 2), newVM(t, s, "c", 3)
	// A frame claiming the broadcast address as source must not make
	// broadcasts unicast to b.
	bogus := frame(a.mac, broadcast, 0x0800, nil)
	b.send(bogus)
	a.expect(bogus)
	c.expect(bogus)
	f := frame(broadcast, a.mac, 0x0800, []byte("hello"))
	a.send(f)
	b.expect(f)
	c.expect(f)
}

func TestPartition(t *testing.T) {
	s := newSwitch(t)
	a, b, c, d := newVM(t, s, "a", 1), newVM(t, s, "b", 2), newVM(t, s, "c", 3), newVM(t, s, "d", 4)
	all := []*vm{a, b, c, d}
	// Every address is learned before the cut, so unicast is to one port.
	for _, v := range all {
		f := frame(broadcast, v.mac, 0x0806, nil)
		v.send(f)
		for _, w := range all {
			if w != v {
				w.expect(f)
			}
		}
	}
	if err := s.Partition([]*Port{a.port, b.port}, []*Port{c.port}); err != nil {
		t.Fatal(err)
	}
	type step struct {
		name     string
		from     *vm
		dst      [6]byte
		reach    []*vm
		blockedN map[*vm]uint64 // partition drops this step adds
	}
	steps := []step{
		{"broadcast stays in its group", a, broadcast, []*vm{b}, map[*vm]uint64{c: 1, d: 1}},
		{"unicast within a group passes", b, a.mac, []*vm{a}, nil},
		{"unicast across groups is blocked", a, c.mac, nil, map[*vm]uint64{c: 1}},
		{"a group of one reaches nobody", c, broadcast, nil, map[*vm]uint64{a: 1, b: 1, d: 1}},
		{"a port in no group is cut off", d, broadcast, nil, map[*vm]uint64{a: 1, b: 1, c: 1}},
		{"nothing reaches a port in no group", a, d.mac, nil, map[*vm]uint64{d: 1}},
	}
	run := func(st step) {
		t.Helper()
		before := s.Stats()
		f := frame(st.dst, st.from.mac, 0x0800, []byte(st.name))
		st.from.send(f)
		for _, v := range st.reach {
			v.expect(f)
		}
		after := waitStats(t, s, st.name, func(m map[string]PortStats) bool {
			for v, n := range st.blockedN {
				if m[v.name].DroppedPartition != before[v.name].DroppedPartition+n {
					return false
				}
			}
			return true
		})
		for _, v := range all {
			if v.mac == st.from.mac {
				continue
			}
			v.expectNone(quiet)
			if st.blockedN[v] == 0 && after[v.name].DroppedPartition != before[v.name].DroppedPartition {
				t.Errorf("%s: %s counted a partition drop", st.name, v.name)
			}
		}
	}
	for _, st := range steps {
		run(st)
	}

	s.Heal()
	run(step{"heal restores broadcast", d, broadcast, []*vm{a, b, c}, nil})
	run(step{"heal restores unicast", a, c.mac, []*vm{c}, nil})
}

func TestPartitionDropsFramesAlreadyQueued(t *testing.T) {
	s := newSwitch(t)
	a, b := newVM(t, s, "a", 1), newVM(t, s, "b", 2)
	if err := s.SetLink(a.port, b.port, Impairment{Delay: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	a.send(frame(b.mac, a.mac, 0x0800, []byte("in flight")))
	waitStats(t, s, "frame to enter", func(m map[string]PortStats) bool { return m["a"].InFrames == 1 })
	if err := s.Partition([]*Port{a.port}, []*Port{b.port}); err != nil {
		t.Fatal(err)
	}
	b.expectNone(600 * time.Millisecond)
	if got := s.Stats()["b"].DroppedPartition; got != 1 {
		t.Errorf("b dropped by partition = %d, want 1", got)
	}
}

func TestNewPortAfterPartitionIsCutOff(t *testing.T) {
	s := newSwitch(t)
	a, b := newVM(t, s, "a", 1), newVM(t, s, "b", 2)
	if err := s.Partition([]*Port{a.port, b.port}); err != nil {
		t.Fatal(err)
	}
	c := newVM(t, s, "c", 3)
	f := frame(broadcast, a.mac, 0x0800, nil)
	a.send(f)
	b.expect(f)
	c.expectNone(quiet)
}

func TestPartitionRejectsBadGroups(t *testing.T) {
	s := newSwitch(t)
	other := newSwitch(t)
	a, b := newVM(t, s, "a", 1), newVM(t, s, "b", 2)
	x := newVM(t, other, "x", 3)
	for _, tc := range []struct {
		name   string
		groups [][]*Port
		is     error
	}{
		{"port in two groups", [][]*Port{{a.port}, {a.port, b.port}}, nil},
		{"port of another switch", [][]*Port{{a.port, x.port}}, ErrForeignPort},
		{"nil port", [][]*Port{{a.port, nil}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Partition(tc.groups...)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
		})
	}
	// A rejected partition changes nothing.
	f := frame(broadcast, a.mac, 0x0800, nil)
	a.send(f)
	b.expect(f)
}

func TestMalformedFramesAreDroppedAndCounted(t *testing.T) {
	s := newSwitch(t)
	a, b := newVM(t, s, "a", 1), newVM(t, s, "b", 2)
	for _, tc := range []struct {
		name      string
		size      int
		forwarded bool
	}{
		{"empty", 0, false},
		{"one byte short of a header", MinFrame - 1, false},
		{"bare header", MinFrame, true},
		{"longest", MaxFrame, true},
		{"one byte too long", MaxFrame + 1, false},
		{"far too long", 100000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Stats()["a"]
			f := bytes.Repeat([]byte{0xff}, tc.size) // broadcast, if long enough
			a.send(f)
			after := waitStats(t, s, "frame to enter", func(m map[string]PortStats) bool {
				return m["a"].InFrames == before.InFrames+1
			})["a"]
			if got := after.InBytes - before.InBytes; got != uint64(tc.size) {
				t.Errorf("in bytes grew by %d, want %d", got, tc.size)
			}
			if tc.forwarded {
				b.expect(f)
				if after.DroppedMalformed != before.DroppedMalformed {
					t.Error("counted as malformed")
				}
				return
			}
			b.expectNone(quiet)
			if after.DroppedMalformed != before.DroppedMalformed+1 {
				t.Errorf("malformed drops = %d, want %d", after.DroppedMalformed, before.DroppedMalformed+1)
			}
		})
	}
}

func TestLearnedAddressesPerPortAreBounded(t *testing.T) {
	s := newSwitch(t)
	a, b := newVM(t, s, "a", 1), newVM(t, s, "b", 2)
	const n = 3 * MaxMACsPerPort
	for i := range n {
		src := [6]byte{0x02, 0xaa, 0, 0, byte(i >> 8), byte(i)}
		a.send(frame(broadcast, src, 0x0800, nil))
		if b.recv(2*time.Second) == nil {
			t.Fatalf("frame %d not forwarded", i)
		}
	}
	s.mu.Lock()
	learned, table := a.port.nmacs, len(s.macs)
	s.mu.Unlock()
	if learned != MaxMACsPerPort || table != MaxMACsPerPort {
		t.Fatalf("learned %d on a, table holds %d; want %d", learned, table, MaxMACsPerPort)
	}
	// An address beyond the bound is unknown, so frames to it are flooded
	// and still arrive.
	last := n - 1
	late := [6]byte{0x02, 0xaa, 0, 0, byte(last >> 8), byte(last)}
	f := frame(late, b.mac, 0x0800, []byte("flooded"))
	b.send(f)
	a.expect(f)
}

func TestPortClose(t *testing.T) {
	s := newSwitch(t)
	a, b, c := newVM(t, s, "a", 1), newVM(t, s, "b", 2), newVM(t, s, "c", 3)
	f := frame(broadcast, b.mac, 0x0806, nil)
	b.send(f)
	a.expect(f)
	c.expect(f)
	if err := b.port.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.port.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	// b's address is forgotten: a frame to it is unknown unicast now, so
	// c sees it, and b is not a flood target.
	u := frame(b.mac, a.mac, 0x0800, []byte("to the departed"))
	a.send(u)
	c.expect(u)
	st := waitStats(t, s, "a's frame", func(m map[string]PortStats) bool { return m["a"].InFrames == 1 })
	if _, ok := st["b"]; !ok {
		t.Fatal("closed port missing from stats")
	}
	if st["b"].OutFrames != 0 || st["b"].DroppedDown != 0 {
		t.Errorf("closed port stats %+v", st["b"])
	}
	if err := s.SetLink(a.port, b.port, Impairment{Delay: time.Second}); err == nil {
		t.Error("set link to a closed port accepted")
	}

	if _, _, err := s.NewPort("a"); !errors.Is(err, ErrDuplicatePort) {
		t.Errorf("duplicate name: err = %v, want ErrDuplicatePort", err)
	}
	// A restarted VM may take the closed port's name.
	b2 := newVM(t, s, "b", 2)
	a.send(u)
	b2.expect(u)
	// The counter moves after the frame is written, so the reader may see
	// the frame first.
	waitStats(t, s, "new b's counters to start again at 1 frame out", func(m map[string]PortStats) bool { return m["b"].OutFrames == 1 })
}

func TestVMGoneCountsDropsAndDoesNotStall(t *testing.T) {
	s := newSwitch(t)
	a, b, c := newVM(t, s, "a", 1), newVM(t, s, "b", 2), newVM(t, s, "c", 3)
	b.conn.Close() // QEMU exited without the port being closed
	for i := range 10 {
		f := a.numbered(broadcast, uint32(i), 64)
		a.send(f)
		c.expect(f)
	}
	st := waitStats(t, s, "drops toward b", func(m map[string]PortStats) bool { return m["b"].DroppedDown == 10 })
	if st["b"].OutFrames != 0 {
		t.Errorf("b out = %d", st["b"].OutFrames)
	}
}

func TestSwitchCloseEndsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	s := New("leak")
	var vms []*vm
	for i := range 4 {
		vms = append(vms, newVM(t, s, string(rune('a'+i)), byte(i+1)))
	}
	if err := s.SetLink(vms[0].port, vms[1].port, Impairment{Delay: time.Hour / 2, Loss: 0.1, RateBitsPerSec: 1e6}); err != nil {
		t.Fatal(err)
	}
	var pcap bytes.Buffer
	if err := s.Capture(&pcap); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		vms[i%4].send(vms[i%4].numbered(broadcast, uint32(i), 200))
	}
	waitStats(t, s, "all frames in", func(m map[string]PortStats) bool {
		var n uint64
		for _, p := range m {
			n += p.InFrames
		}
		return n == 50
	})
	if runtime.NumGoroutine() < before+5 {
		t.Fatalf("%d goroutines, expected the switch's 5 on top of %d", runtime.NumGoroutine(), before)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, op := range []struct {
		name string
		err  error
	}{
		{"new port", func() error { _, _, err := s.NewPort("z"); return err }()},
		{"partition", s.Partition()},
		{"set link", s.SetLink(vms[2].port, vms[3].port, Impairment{})},
		{"capture", s.Capture(&pcap)},
	} {
		if !errors.Is(op.err, ErrClosed) {
			t.Errorf("%s after close: err = %v, want ErrClosed", op.name, op.err)
		}
	}
}
