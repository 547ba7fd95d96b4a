package machine

import "time"

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
