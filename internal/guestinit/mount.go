package guestinit

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// earlyMounts are what the agent and the transport need: /sys to find the
// virtio-serial port, /dev for its device node, /proc for the kernel
// command line and the agent's own use.
var earlyMounts = []struct {
	source, target, fstype string
	flags                  uintptr
}{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID},
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
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			logf("mount %s on %s: %v", m.fstype, m.target, err)
		}
	}
}
