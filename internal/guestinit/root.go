package guestinit

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// rootFSTypes are tried in order: mount(2) needs a type, and a disk image
// does not say which it is without parsing it.
var rootFSTypes = []string{"ext4", "xfs", "btrfs", "squashfs", "ext2", "vfat"}

// switchRoot mounts dev read-only and makes it the root, keeping /dev,
// /proc and /sys. The agent is started afterwards from /proc/self/exe,
// which still names this binary in the initramfs, so the disk need not
// contain provium.
func switchRoot(dev string) error {
	const newRoot = "/provium/root"
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	// The block device appears asynchronously once its driver probed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(dev); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear", dev)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var errs []error
	mounted := false
	for _, fs := range rootFSTypes {
		err := unix.Mount(dev, newRoot, fs, unix.MS_RDONLY, "")
		if err == nil {
			mounted = true
			break
		}
		errs = append(errs, fmt.Errorf("%s: %w", fs, err))
	}
	if !mounted {
		return fmt.Errorf("mount: %w", errors.Join(errs...))
	}
	for _, dir := range []string{"/dev", "/proc", "/sys"} {
		target := newRoot + dir
		if _, err := os.Stat(target); err != nil {
			continue
		}
		if err := unix.Mount(dir, target, "", unix.MS_MOVE, ""); err != nil {
			logf("move %s: %v", dir, err)
		}
	}
	if err := os.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	return os.Chdir("/")
}
