package machine

import (
	"os"
	"time"
)

// The shape of a VM booted without saying otherwise.
const (
	DefaultMemoryMiB = 512
	DefaultCPUs      = 1
)

// BootOptions shape a VM at boot (vm:boot's opts).
type BootOptions struct {
	MemoryMiB int               // 0: DefaultMemoryMiB
	CPUs      int               // 0: DefaultCPUs
	Files     map[string]string // guest path -> host path, injected into the initramfs
	Disks     []Disk
	// BootTimeout bounds the boot up to a working agent; 0 takes the
	// profile's, else DefaultBootTimeout.
	BootTimeout time.Duration
	// Hostname is the guest's hostname; "" leaves the guest's own.
	Hostname string
	// NICs are network cards, each on a network of package network.
	NICs []NIC
}

// NIC is a network card: the guest's init gives the card with MAC the
// address Addr ("10.1.0.2/24"). Socket carries its frames (see qemu.NIC);
// it belongs to the boot, not to the machine's shape, and stays the
// caller's: QEMU has its own copy, and the caller closes this one once
// the VM has stopped.
type NIC struct {
	MAC    string   `json:"mac"`
	Addr   string   `json:"addr"`
	Socket *os.File `json:"-"`
}

// WithDefaults fills in what o leaves unset.
func (o BootOptions) WithDefaults() BootOptions {
	if o.MemoryMiB <= 0 {
		o.MemoryMiB = DefaultMemoryMiB
	}
	if o.CPUs <= 0 {
		o.CPUs = DefaultCPUs
	}
	return o
}

// Disk is a host image attached as a virtio drive (/dev/vdX in order).
type Disk struct {
	Path     string
	Format   string // "raw" or "qcow2"
	ReadOnly bool
}
