package netswitch

import (
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pair is two fake VMs connected either through a switch or, as the
// baseline, directly by one socketpair.
func benchPair(b *testing.B, through string) (src, dst *net.UnixConn, s *Switch) {
	b.Helper()
	switch through {
	case "socketpair":
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
		if err != nil {
			b.Fatal(err)
		}
		conn := func(fd int) *net.UnixConn {
			f := os.NewFile(uintptr(fd), "pair")
			c, err := net.FileConn(f)
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { c.Close() })
			return c.(*net.UnixConn)
		}
		return conn(fds[0]), conn(fds[1]), nil
	default:
		s = newSwitch(b)
		x, y := newVM(b, s, "x", 1), newVM(b, s, "y", 2)
		// Each learns the other, so frames are unicast, not flooded.
		x.send(frame(broadcast, x.mac, 0x88b5, nil))
		y.expect(frame(broadcast, x.mac, 0x88b5, nil))
		y.send(frame(x.mac, y.mac, 0x88b5, nil))
		x.expect(frame(x.mac, y.mac, 0x88b5, nil))
		// expect left read deadlines behind.
		x.conn.SetReadDeadline(time.Time{})
		y.conn.SetReadDeadline(time.Time{})
		if through == "switch-delay-1ms" {
			if err := s.SetLink(x.port, y.port, Impairment{Delay: time.Millisecond}); err != nil {
				b.Fatal(err)
			}
		}
		return x.conn, y.conn, s
	}
}

// BenchmarkForward measures one hop's throughput for 1500-byte frames. The
// sender keeps a window of frames in flight so the receiver's socket
// buffer never overflows: the figure is frames delivered, not frames sent.
func BenchmarkForward(b *testing.B) {
	for _, through := range []string{"switch", "switch-delay-1ms", "socketpair"} {
		b.Run(through, func(b *testing.B) {
			src, dst, s := benchPair(b, through)
			f := frame(mac(2), mac(1), 0x88b5, make([]byte, 1500-14))
			const window = 128
			credits := make(chan struct{}, window)
			done := make(chan error, 1)
			b.SetBytes(int64(len(f)))
			b.ResetTimer()
			go func() {
				buf := make([]byte, 2048)
				dst.SetReadDeadline(time.Now().Add(time.Minute))
				for range b.N {
					if _, err := dst.Read(buf); err != nil {
						done <- err
						return
					}
					<-credits
				}
				done <- nil
			}()
			for range b.N {
				credits <- struct{}{}
				if _, err := src.Write(f); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
			if s != nil {
				// The counter moves just after the frame is written.
				waitStats(b, s, "every frame counted", func(m map[string]PortStats) bool {
					return m["y"].OutFrames == uint64(b.N)+1 && m["y"].DroppedOverflow == 0
				})
			}
		})
	}
}

// BenchmarkRoundTrip measures ping-pong latency of a 64-byte frame between
// two ports; the far side echoes each frame back with the addresses
// swapped.
func BenchmarkRoundTrip(b *testing.B) {
	for _, through := range []string{"switch", "socketpair"} {
		b.Run(through, func(b *testing.B) {
			src, dst, s := benchPair(b, through)
			go func() {
				buf := make([]byte, 2048)
				for {
					n, err := dst.Read(buf)
					if err != nil {
						return
					}
					var t [6]byte
					copy(t[:], buf[0:6])
					copy(buf[0:6], buf[6:12])
					copy(buf[6:12], t[:])
					if _, err := dst.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
			ping := frame(mac(2), mac(1), 0x88b5, make([]byte, 64-14))
			buf := make([]byte, 2048)
			src.SetReadDeadline(time.Now().Add(10 * time.Second))
			rtts := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if _, err := src.Write(ping); err != nil {
					b.Fatal(err)
				}
				if _, err := src.Read(buf); err != nil {
					if s != nil {
						b.Log(fmtStats(s.Stats()))
					}
					b.Fatal(err)
				}
				rtts = append(rtts, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(rtts)
			us := func(q float64) float64 { return float64(rtts[int(q*float64(len(rtts)-1))]) / 1e3 }
			b.ReportMetric(us(0.5), "median-µs")
			b.ReportMetric(us(0.99), "p99-µs")
		})
	}
}
