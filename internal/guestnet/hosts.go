package guestnet

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// HostsPath is the hosts table the host keeps up to date.
const HostsPath = "/etc/hosts"

// writableDir holds the writable copy of a read-only root's hosts table.
// /dev is the one file system every guest has mounted and writable, and a
// real init leaves it in place.
const writableDir = "/dev/.provium"

// MakeHostsWritable makes HostsPath writable, so that the host can list
// the network's hostnames in it. On a read-only root (a profile's disk
// image) it bind-mounts a writable copy over it.
func MakeHostsWritable() error {
	f, err := os.OpenFile(HostsPath, os.O_WRONLY|os.O_CREATE, 0o644)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, unix.EROFS) {
		return fmt.Errorf("%s: %w", HostsPath, err)
	}
	if err := os.MkdirAll(writableDir, 0o755); err != nil {
		return fmt.Errorf("%s is read-only: %w", HostsPath, err)
	}
	copyPath := writableDir + "/hosts"
	old, err := os.ReadFile(HostsPath)
	if errors.Is(err, os.ErrNotExist) {
		// A bind mount needs a file to cover.
		return fmt.Errorf("%s is read-only and missing: the image needs one for hostnames to resolve", HostsPath)
	}
	if err != nil {
		return fmt.Errorf("%s is read-only: %w", HostsPath, err)
	}
	if err := os.WriteFile(copyPath, old, 0o644); err != nil {
		return fmt.Errorf("%s is read-only: %w", HostsPath, err)
	}
	if err := unix.Mount(copyPath, HostsPath, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("%s is read-only: bind a writable copy: %w", HostsPath, err)
	}
	return nil
}
