// Package network is a network of VMs as a test sees it: a switch inside
// provium (package netswitch) and the plan of its addresses. The N-th
// network a file creates is 10.N.0.0/24; its x-th member, in the order
// VMs join, is 10.N.0.x with the MAC address 52:54:00:NN:00:XX (QEMU's
// prefix), so a test can name addresses before any VM boots, and a
// fixture's VMs keep theirs when resumed.
//
// Nothing leaves the process: a member's card is one end of a socket pair
// whose other end is a port of the switch, so networks need no root and
// no host configuration, two files never share one, and the kernel frees
// everything when provium ends, however it ends.
package network

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"

	"github.com/provium/provium/internal/netswitch"
)

// Limits of the address plan: N and x are one byte each in the addresses,
// and x = 255 would be the broadcast address.
const (
	MaxNetworks = 255
	MaxMembers  = 254
)

// PrefixBits is the length of every network's prefix.
const PrefixBits = 24

// Sentinel errors.
var (
	ErrFull     = errors.New("network is full")
	ErrHostname = errors.New("hostname in use on the network")
	ErrClosed   = errors.New("network closed")
	ErrNotOn    = errors.New("VM is not on the network")
)

// Network is one virtual Ethernet segment.
type Network struct {
	name  string
	index int
	sw    *netswitch.Switch

	mu      sync.Mutex
	closed  bool
	members []*Member // in join order
	next    int       // x of the next member: addresses are never reused
	capture *captureFile
}

// Member is a VM's place on a network: its card's address and the
// socket that carries its frames.
type Member struct {
	net      *Network
	hostname string
	vm       string // the name of the member's VM, e.g. "minimal#3"
	host     int    // x in 10.N.0.x
	port     *netswitch.Port
	socket   *os.File // the end QEMU inherits
}

// New returns network number index (1 to MaxNetworks) called name.
func New(name string, index int) (*Network, error) {
	if index < 1 || index > MaxNetworks {
		return nil, fmt.Errorf("network %s: number %d outside 1..%d", name, index, MaxNetworks)
	}
	return &Network{name: name, index: index, sw: netswitch.New(name)}, nil
}

// Name is the name the test gave the network.
func (n *Network) Name() string { return n.name }

// Index is N of the network's addresses.
func (n *Network) Index() int { return n.index }

// Prefix is the network's address range, 10.N.0.0/24.
func (n *Network) Prefix() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(n.index), 0, 0}), PrefixBits)
}

// Join adds the VM vm, called hostname on the network, as the next member.
func (n *Network) Join(hostname, vm string) (*Member, error) {
	n.mu.Lock()
	host := max(n.next, 1)
	n.mu.Unlock()
	return n.Rejoin(hostname, vm, host)
}

// Rejoin adds the VM vm, called hostname, as member number host: a VM
// resumed from a fixture has its address already.
func (n *Network) Rejoin(hostname, vm string, host int) (*Member, error) {
	if host < 1 || host > MaxMembers {
		return nil, fmt.Errorf("network %s: %s: %w (at most %d VMs)", n.name, hostname, ErrFull, MaxMembers)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, fmt.Errorf("network %s: %s: %w", n.name, hostname, ErrClosed)
	}
	for _, m := range n.members {
		switch {
		case m.hostname == hostname:
			return nil, fmt.Errorf("network %s: %s: %w (hostnames name a network's VMs in /etc/hosts)", n.name, hostname, ErrHostname)
		case m.host == host:
			return nil, fmt.Errorf("network %s: %s: address %s is %s's", n.name, hostname, m.Addr().Addr(), m.hostname)
		}
	}
	socket, port, err := n.sw.NewPort(hostname)
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", n.name, err)
	}
	m := &Member{net: n, hostname: hostname, vm: vm, host: host, port: port, socket: socket}
	n.members = append(n.members, m)
	n.next = max(n.next, host+1)
	return m, nil
}

// Members returns the network's members in join order.
func (n *Network) Members() []*Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.members)
}

// Network is the network m is on.
func (m *Member) Network() *Network { return m.net }

// Hostname is the member's name on the network.
func (m *Member) Hostname() string { return m.hostname }

// VM is the name of the member's VM.
func (m *Member) VM() string { return m.vm }

// Host is x of the member's address 10.N.0.x.
func (m *Member) Host() int { return m.host }

// Addr is the member's address with the network's prefix length.
func (m *Member) Addr() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(m.net.index), 0, byte(m.host)}), PrefixBits)
}

// MAC is the member's card's hardware address.
func (m *Member) MAC() string {
	return fmt.Sprintf("52:54:00:%02x:00:%02x", m.net.index, m.host)
}

// Socket is the end of the member's link that its QEMU inherits. It stays
// open until the member leaves.
func (m *Member) Socket() *os.File { return m.socket }

// Leave takes the member off the network: its VM has stopped, or never
// booted. Its address is not given to another VM.
func (m *Member) Leave() error {
	n := m.net
	n.mu.Lock()
	i := slices.Index(n.members, m)
	if i >= 0 {
		n.members = slices.Delete(n.members, i, i+1)
	}
	n.mu.Unlock()
	if i < 0 {
		return nil
	}
	return errors.Join(m.port.Close(), m.socket.Close())
}

// Partition cuts the network into groups: members in different groups
// cannot reach each other, and a member in no group reaches no one.
func (n *Network) Partition(groups ...[]*Member) error {
	ports := make([][]*netswitch.Port, len(groups))
	for i, g := range groups {
		for _, m := range g {
			if err := n.owns(m); err != nil {
				return fmt.Errorf("network %s: partition: %w", n.name, err)
			}
			ports[i] = append(ports[i], m.port)
		}
	}
	if err := n.sw.Partition(ports...); err != nil {
		return fmt.Errorf("network %s: partition: %w", n.name, err)
	}
	return nil
}

// Heal ends a partition.
func (n *Network) Heal() { n.sw.Heal() }

// Impairment is what a link between two members suffers; the zero value
// is a perfect link.
type Impairment = netswitch.Impairment

// SetLink impairs both directions between a and b.
func (n *Network) SetLink(a, b *Member, imp Impairment) error {
	for _, m := range []*Member{a, b} {
		if err := n.owns(m); err != nil {
			return fmt.Errorf("network %s: link: %w", n.name, err)
		}
	}
	if err := n.sw.SetLink(a.port, b.port, imp); err != nil {
		return fmt.Errorf("network %s: link %s-%s: %w", n.name, a.hostname, b.hostname, err)
	}
	return nil
}

func (n *Network) owns(m *Member) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if m == nil || !slices.Contains(n.members, m) {
		return ErrNotOn
	}
	return nil
}

// Stats counts each member's traffic, by hostname.
func (n *Network) Stats() map[string]netswitch.PortStats { return n.sw.Stats() }

// captureFile is a pcap file being written.
type captureFile struct {
	f *os.File
	w *bufio.Writer
}

// Capture writes every frame of the network from now on to a new pcap
// file at path, until Close or StopCapture.
func (n *Network) Capture(path string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return fmt.Errorf("network %s: capture: %w", n.name, ErrClosed)
	}
	if n.capture != nil {
		return fmt.Errorf("network %s: capture %s: already capturing to %s", n.name, path, n.capture.f.Name())
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("network %s: capture: %w", n.name, err)
	}
	c := &captureFile{f: f, w: bufio.NewWriterSize(f, 256<<10)}
	if err := n.sw.Capture(c.w); err != nil {
		f.Close()
		return fmt.Errorf("network %s: capture: %w", n.name, err)
	}
	n.capture = c
	return nil
}

// StopCapture ends the capture, if one runs, and completes its file.
func (n *Network) StopCapture() error {
	n.mu.Lock()
	c := n.capture
	n.capture = nil
	n.mu.Unlock()
	if c == nil {
		return nil
	}
	err := n.sw.StopCapture()
	if ferr := c.w.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("network %s: capture: %w", n.name, ferr)
	}
	if cerr := c.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("network %s: capture: %w", n.name, cerr)
	}
	return err
}

// Close ends the network: the capture is completed and every member's
// link closed.
func (n *Network) Close() error {
	err := n.StopCapture()
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return err
	}
	n.closed = true
	members := n.members
	n.members = nil
	n.mu.Unlock()
	errs := []error{err}
	for _, m := range members {
		errs = append(errs, m.socket.Close())
	}
	errs = append(errs, n.sw.Close())
	return errors.Join(errs...)
}
