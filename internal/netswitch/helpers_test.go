package netswitch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"
)

// vm stands in for QEMU: it holds the qemuEnd of a port, as QEMU would.
type vm struct {
	t    testing.TB
	name string
	mac  [6]byte
	port *Port
	conn *net.UnixConn
	buf  []byte
}

var broadcast = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// mac returns a locally administered unicast address ending in i.
func mac(i byte) [6]byte { return [6]byte{0x02, 0, 0, 0, 0, i} }

// newVM adds a port to s and connects a fake VM with address mac(i).
func newVM(t testing.TB, s *Switch, name string, i byte) *vm {
	t.Helper()
	qemuEnd, p, err := s.NewPort(name)
	if err != nil {
		t.Fatal(err)
	}
	return attach(t, qemuEnd, p, i)
}

func attach(t testing.TB, qemuEnd *os.File, p *Port, i byte) *vm {
	t.Helper()
	c, err := net.FileConn(qemuEnd)
	if err != nil {
		t.Fatal(err)
	}
	qemuEnd.Close()
	uc, ok := c.(*net.UnixConn)
	if !ok {
		t.Fatalf("qemuEnd is a %T, want a unix socket", c)
	}
	t.Cleanup(func() { uc.Close() })
	return &vm{t: t, name: p.Name(), mac: mac(i), port: p, conn: uc, buf: make([]byte, 1<<17)}
}

// frame builds an Ethernet frame.
func frame(dst, src [6]byte, ethertype uint16, payload []byte) []byte {
	b := make([]byte, 14+len(payload))
	copy(b[0:], dst[:])
	copy(b[6:], src[:])
	binary.BigEndian.PutUint16(b[12:], ethertype)
	copy(b[14:], payload)
	return b
}

// numbered is a frame from v to dst carrying a sequence number and a send
// time, padded to size bytes.
func (v *vm) numbered(dst [6]byte, seq uint32, size int) []byte {
	p := make([]byte, max(size-14, 12))
	binary.BigEndian.PutUint32(p[0:], seq)
	binary.BigEndian.PutUint64(p[4:], uint64(time.Now().UnixNano()))
	return frame(dst, v.mac, 0x88b5, p)
}

func seqOf(b []byte) uint32 { return binary.BigEndian.Uint32(b[14:]) }

func sentAt(b []byte) time.Time { return time.Unix(0, int64(binary.BigEndian.Uint64(b[18:]))) }

func (v *vm) send(b []byte) {
	v.t.Helper()
	if _, err := v.conn.Write(b); err != nil {
		v.t.Fatalf("%s: send: %v", v.name, err)
	}
}

// recv returns the next frame, or nil after timeout.
func (v *vm) recv(timeout time.Duration) []byte {
	v.t.Helper()
	v.conn.SetReadDeadline(time.Now().Add(timeout))
	n, err := v.conn.Read(v.buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		v.t.Fatalf("%s: recv: %v", v.name, err)
	}
	return append([]byte(nil), v.buf[:n]...)
}

// expect fails unless the next frame is want.
func (v *vm) expect(want []byte) {
	v.t.Helper()
	got := v.recv(2 * time.Second)
	if got == nil {
		v.t.Fatalf("%s: no frame, want % x", v.name, want[:14])
	}
	if string(got) != string(want) {
		v.t.Fatalf("%s: got frame % x..., want % x...", v.name, got[:min(len(got), 20)], want[:min(len(want), 20)])
	}
}

// expectNone fails if a frame arrives within d.
func (v *vm) expectNone(d time.Duration) {
	v.t.Helper()
	if got := v.recv(d); got != nil {
		v.t.Fatalf("%s: unexpected frame % x", v.name, got[:min(len(got), 20)])
	}
}

// waitStats polls s.Stats until ok accepts them, and fails after a while.
func waitStats(t testing.TB, s *Switch, what string, ok func(map[string]PortStats) bool) map[string]PortStats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.Stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; stats: %s", what, fmtStats(st))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func fmtStats(st map[string]PortStats) string {
	s := ""
	for k, v := range st {
		s += fmt.Sprintf("\n  %s: %+v", k, v)
	}
	return s
}

func newSwitch(t testing.TB) *Switch {
	t.Helper()
	s := New(t.Name())
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}
