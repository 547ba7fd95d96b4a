package network

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func newNet(t *testing.T, name string, index int) *Network {
	t.Helper()
	n, err := New(name, index)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func join(t *testing.T, n *Network, hostname string) *Member {
	t.Helper()
	m, err := n.Join(hostname, hostname+"#1")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAddressPlan(t *testing.T) {
	n := newNet(t, "lan", 3)
	a, b := join(t, n, "alpha"), join(t, n, "beta")
	if got := a.Addr().String(); got != "10.3.0.1/24" {
		t.Errorf("first member: %s, want 10.3.0.1/24", got)
	}
	if got, want := b.MAC(), "52:54:00:03:00:02"; got != want {
		t.Errorf("second member's MAC: %s, want %s", got, want)
	}
	if _, err := n.Join("alpha", "x"); !errors.Is(err, ErrHostname) {
		t.Errorf("a second alpha: %v, want ErrHostname", err)
	}
	if err := b.Leave(); err != nil {
		t.Fatal(err)
	}
	// An address is never given to a second VM in the same network: a
	// guest may still have the first in its ARP cache.
	if c := join(t, n, "gamma"); c.Host() != 3 {
		t.Errorf("after a member left, the next joins as .%d, want .3", c.Host())
	}
	if _, err := n.Rejoin("delta", "x", 1); err == nil {
		t.Error("Rejoin at a taken address succeeded")
	}
	if _, err := n.Rejoin("delta", "x", MaxMembers+1); !errors.Is(err, ErrFull) {
		t.Errorf("Rejoin past the last address: %v, want ErrFull", err)
	}
	for _, bad := range []int{0, MaxNetworks + 1} {
		if _, err := New("x", bad); err == nil {
			t.Errorf("New with number %d succeeded", bad)
		}
	}
}

func TestHostsFile(t *testing.T) {
	lan, back := newNet(t, "lan", 1), newNet(t, "back", 2)
	join(t, lan, "alpha")
	join(t, lan, "beta")
	join(t, back, "alpha")
	guest := "127.0.0.1 localhost\n10.9.9.9 mine\n"
	got := HostsFile(guest, []*Network{back, lan})
	want := guest + hostsBegin + "\n10.1.0.1\talpha\n10.1.0.2\tbeta\n10.2.0.1\talpha\n" + hostsEnd + "\n"
	if got != want {
		t.Errorf("HostsFile =\n%s\nwant\n%s", got, want)
	}
	join(t, lan, "gamma")
	again := HostsFile(got, []*Network{lan})
	if strings.Count(again, hostsBegin) != 1 || !strings.Contains(again, "10.1.0.3\tgamma\n") || strings.Contains(again, "10.2.0.1") || !strings.HasPrefix(again, guest) {
		t.Errorf("an update replaces the block and keeps the guest's lines:\n%s", again)
	}
	if empty := HostsFile("", []*Network{lan}); !strings.HasPrefix(empty, "127.0.0.1\tlocalhost\n") {
		t.Errorf("a guest without a hosts table gets localhost:\n%s", empty)
	}
}

// frame is an Ethernet frame from src to dst (last bytes of the MACs).
func frame(dst, src byte) []byte {
	f := make([]byte, 60)
	copy(f, []byte{0x52, 0x54, 0, 1, 0, dst, 0x52, 0x54, 0, 1, 0, src, 0x08, 0x00})
	return f
}

func receives(t *testing.T, m *Member, want bool) {
	t.Helper()
	// QEMU's end of the link is a blocking socket: poll it.
	fds := []unix.PollFd{{Fd: int32(m.Socket().Fd()), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 300)
	if err != nil {
		t.Fatal(err)
	}
	if got := n == 1; got != want {
		t.Errorf("%s received a frame: %v, want %v", m.Hostname(), got, want)
	}
	if n == 1 {
		m.Socket().Read(make([]byte, 2000))
	}
}

func TestPartitionAndCapture(t *testing.T) {
	n := newNet(t, "lan", 1)
	a, b := join(t, n, "a"), join(t, n, "b")
	path := filepath.Join(t.TempDir(), "lan.pcap")
	if err := n.Capture(path); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Socket().Write(frame(2, 1)); err != nil {
		t.Fatal(err)
	}
	receives(t, b, true)
	if err := n.Partition([]*Member{a}, []*Member{b}); err != nil {
		t.Fatal(err)
	}
	a.Socket().Write(frame(2, 1))
	receives(t, b, false)
	n.Heal()
	a.Socket().Write(frame(2, 1))
	receives(t, b, true)
	if err := n.StopCapture(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The pcap header, then one record (16 bytes + frame) per frame sent.
	if want := 24 + 3*(16+60); len(data) != want || !bytes.Equal(data[:4], []byte{0xd4, 0xc3, 0xb2, 0xa1}) {
		t.Errorf("capture: %d bytes, want %d with the pcap magic", len(data), want)
	}
	other := newNet(t, "other", 2)
	c := join(t, other, "c")
	if err := n.Partition([]*Member{a, c}); !errors.Is(err, ErrNotOn) {
		t.Errorf("a partition with another network's member: %v, want ErrNotOn", err)
	}
	if err := n.SetLink(a, c, Impairment{}); !errors.Is(err, ErrNotOn) {
		t.Errorf("a link to another network's member: %v, want ErrNotOn", err)
	}
}
