// Package guestnet brings up a guest's network as the host planned it:
// the hostname, the loopback interface, and each network card with the
// address the kernel command line gives it (package boot's NICs). The
// guest's init runs it before the agent starts, so a VM is on its
// networks by the time the host can talk to it.
//
// It uses the kernel's ioctls directly: a guest may have no ip(8) or
// ifconfig, and a minimal one has no shell.
package guestnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire/boot"
)

// cardTimeout bounds the wait for a network card to appear: its driver
// probes it while its module loads, so it is normally there at once.
const cardTimeout = 5 * time.Second

// Configure sets the hostname and brings up lo and every card of nics.
// It goes on after a failure, so that one bad card leaves the others up,
// and returns every failure.
func Configure(hostname string, nics []boot.NIC) error {
	var errs []error
	if hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			errs = append(errs, fmt.Errorf("sethostname %s: %w", hostname, err))
		}
	}
	if len(nics) == 0 {
		return errors.Join(errs...)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("socket: %w", err))...)
	}
	defer unix.Close(fd)
	// The kernel gives lo 127.0.0.1 when it goes up; /etc/hosts names
	// localhost, and services bind to it.
	if err := up(fd, "lo"); err != nil {
		errs = append(errs, err)
	}
	for _, n := range nics {
		name, err := cardName(n.MAC)
		if err == nil {
			err = configure(fd, name, n.Addr)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("network card %s: %w", n.MAC, err))
		}
	}
	return errors.Join(errs...)
}

// cardName finds the interface with hardware address mac, waiting for it
// to appear.
func cardName(mac net.HardwareAddr) (string, error) {
	deadline := time.Now().Add(cardTimeout)
	for {
		ifs, err := net.Interfaces()
		if err == nil {
			for _, i := range ifs {
				if i.HardwareAddr.String() == mac.String() {
					return i.Name, nil
				}
			}
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("no interface has this address after %s (is virtio_net loaded?)", cardTimeout)
			}
			return "", err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// configure gives the interface name the address addr and brings it up.
func configure(fd int, name string, addr netip.Prefix) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := ifr.SetInet4Addr(addr.Addr().AsSlice()); err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFADDR, ifr); err != nil {
		return fmt.Errorf("%s: set address %s: %w", name, addr.Addr(), err)
	}
	mask := net.CIDRMask(addr.Bits(), 32)
	if err := ifr.SetInet4Addr(mask); err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFNETMASK, ifr); err != nil {
		return fmt.Errorf("%s: set netmask /%d: %w", name, addr.Bits(), err)
	}
	return up(fd, name)
}

// up sets IFF_UP on the interface name.
func up(fd int, name string) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("%s: get flags: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("%s: up: %w", name, err)
	}
	return nil
}
