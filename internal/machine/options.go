package machine

// BootOptions shape a VM at boot (vm:boot's opts).
type BootOptions struct {
	MemoryMiB int               // default 512
	CPUs      int               // default 1
	Files     map[string]string // guest path -> host path, injected into the initramfs
	Disks     []Disk
}

// Disk is a host image attached as a virtio drive (/dev/vdX in order).
type Disk struct {
	Path     string
	Format   string // "raw" or "qcow2"
	ReadOnly bool
}
