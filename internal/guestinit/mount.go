package guestinit

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire/boot"
)

// earlyMounts are what the agent and the transport need: /sys to find the
// virtio-serial port, /dev for its device node, /proc for the kernel
// command line and the agent's own use, /dev/pts for the terminals of
// provium shell and of the guest's own programs (openpty, script).
//
// devpts is mounted here rather than when the first terminal opens:
// a VM resumed from a fixture would translate the mount's kernel code
// afresh, about 2,500 blocks of a shell's start, where at boot it
// shares most of that code with the mounts before it.
var earlyMounts = []struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, ""},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, boot.DevptsOptions},
}

func mountEarly() {
	for _, m := range earlyMounts {
		// A second proc mount would not fail but stack; skip it when
		// one is already there.
		if m.fstype == "proc" {
			if _, err := os.Stat("/proc/self/stat"); err == nil {
				continue
			}
		}
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			logf("mount %s: %v", m.target, err)
			continue
		}
		// EBUSY: already mounted, e.g. devtmpfs by the kernel.
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			logf("mount %s on %s: %v", m.fstype, m.target, err)
		}
	}
}
