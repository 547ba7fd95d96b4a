package netswitch

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

// fuzzFrames splits fuzz input into frames: each is a control byte (bits
// 0-1: ingress port mod 3; bit 2: pad beyond MaxFrame), a big-endian
// 16-bit length and that many bytes, the last one cut short by the input.
func fuzzFrames(data []byte) (ports []int, frames [][]byte) {
	for len(data) >= 3 && len(frames) < 16 {
		ctl, n := data[0], int(binary.BigEndian.Uint16(data[1:]))
		data = data[3:]
		n = min(n, len(data))
		f := data[:n]
		data = data[n:]
		if ctl&4 != 0 {
			f = append(bytes.Clone(f), make([]byte, MaxFrame+1)...)
		}
		ports = append(ports, int(ctl&3)%3)
		frames = append(frames, f)
	}
	return ports, frames
}

// macModel is the learning table as the package documents it.
type macModel struct {
	where map[[6]byte]int
	count [3]int
}

func (m *macModel) learn(p int, src [6]byte) {
	if src[0]&1 != 0 {
		return
	}
	old, ok := m.where[src]
	if ok && old == p {
		return
	}
	if ok {
		m.count[old]--
		delete(m.where, src)
	}
	if m.count[p] < MaxMACsPerPort {
		m.where[src] = p
		m.count[p]++
	}
}

// FuzzFrame feeds arbitrary frames from the three ports of a switch and
// checks every port receives exactly what a learning switch must deliver.
// After each frame its sender sends a broadcast fence with a source no
// input can spoof by chance; once the fence has reached both other ports,
// the frame's fate is decided.
func FuzzFrame(f *testing.F) {
	// The seed corpus is in testdata/fuzz/FuzzFrame.
	f.Fuzz(checkFrames)
}

func checkFrames(t *testing.T, data []byte) {
	ports, frames := fuzzFrames(data)
	if len(frames) == 0 {
		return
	}
	s := New("fuzz")
	defer s.Close()
	var vms [3]*vm
	for i := range vms {
		vms[i] = newVM(t, s, string(rune('a'+i)), byte(i+1))
	}
	model := &macModel{where: make(map[[6]byte]int)}
	var fenceSrc [6]byte
	copy(fenceSrc[:], "\x02fence")
	for i, fr := range frames {
		from := ports[i]
		vms[from].send(fr)
		valid := len(fr) >= MinFrame && len(fr) <= MaxFrame
		want := [3]bool{}
		if valid {
			var dst, src [6]byte
			copy(dst[:], fr[0:6])
			copy(src[:], fr[6:12])
			model.learn(from, src)
			if to, ok := model.where[dst]; ok && dst[0]&1 == 0 {
				want[to] = to != from
			} else {
				for p := range want {
					want[p] = p != from
				}
			}
		}
		fenceSrc[5] = byte(i)
		fence := frame(broadcast, fenceSrc, 0x88b5, []byte("fence after each fuzz frame, 7f3a9c"))
		model.learn(from, fenceSrc)
		vms[from].send(fence)
		for p, v := range vms {
			if p == from {
				continue
			}
			got := v.recv(5 * time.Second)
			if want[p] {
				if !bytes.Equal(got, fr) {
					t.Fatalf("frame %d (%d bytes) from port %d: port %d got %d bytes, want the frame", i, len(fr), from, p, len(got))
				}
				got = v.recv(5 * time.Second)
			}
			if !bytes.Equal(got, fence) {
				t.Fatalf("frame %d (%d bytes) from port %d: port %d got %d bytes, want the fence", i, len(fr), from, p, len(got))
			}
		}
	}
	// A frame wrongly sent back to its own sender was written before that
	// sender's fence, so it would now precede a last fence to that port:
	// port 0's last fence checks ports 1 and 2, port 1's checks port 0.
	for from := range 2 {
		fenceSrc[5] = 0xf0 + byte(from)
		fence := frame(broadcast, fenceSrc, 0x88b5, []byte("last fence, 7f3a9c"))
		model.learn(from, fenceSrc)
		vms[from].send(fence)
		for p, v := range vms {
			if p == from {
				continue
			}
			if got := v.recv(5 * time.Second); !bytes.Equal(got, fence) {
				t.Fatalf("port %d holds an unexpected %d-byte frame", p, len(got))
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.macs) != len(model.where) {
		t.Fatalf("switch learned %d addresses, model %d", len(s.macs), len(model.where))
	}
	for i, v := range vms {
		if v.port.nmacs != model.count[i] || v.port.nmacs > MaxMACsPerPort {
			t.Fatalf("port %d learned %d addresses, model %d", i, v.port.nmacs, model.count[i])
		}
	}
}
