package agent

import (
	"fmt"
	"slices"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// creds are the credentials of one thread. Linux keeps them per thread;
// glibc and Go's syscall.Setuid hide that by changing every thread, which
// is exactly what the agent must not do. Everything here is raw system
// calls on the calling thread, but for applyAll.
type creds struct {
	uid, gid [3]uint32 // real, effective, saved
	groups   []uint32
	caps     [2]unix.CapUserData // _LINUX_CAPABILITY_VERSION_3 uses two
}

// threadCreds reads the calling thread's credentials.
func threadCreds() (creds, error) {
	var c creds
	if _, _, e := unix.RawSyscall(unix.SYS_GETRESUID, uintptr(unsafe.Pointer(&c.uid[0])), uintptr(unsafe.Pointer(&c.uid[1])), uintptr(unsafe.Pointer(&c.uid[2]))); e != 0 {
		return c, fmt.Errorf("getresuid: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_GETRESGID, uintptr(unsafe.Pointer(&c.gid[0])), uintptr(unsafe.Pointer(&c.gid[1])), uintptr(unsafe.Pointer(&c.gid[2]))); e != 0 {
		return c, fmt.Errorf("getresgid: %w", e)
	}
	n, _, e := unix.RawSyscall(unix.SYS_GETGROUPS, 0, 0, 0)
	if e != 0 {
		return c, fmt.Errorf("getgroups: %w", e)
	}
	if n > 0 {
		c.groups = make([]uint32, n)
		n, _, e = unix.RawSyscall(unix.SYS_GETGROUPS, n, uintptr(unsafe.Pointer(&c.groups[0])), 0)
		if e != 0 {
			return c, fmt.Errorf("getgroups: %w", e)
		}
		c.groups = c.groups[:n]
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	if _, _, e := unix.RawSyscall(unix.SYS_CAPGET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&c.caps[0])), 0); e != 0 {
		return c, fmt.Errorf("capget: %w", e)
	}
	return c, nil
}

// rawSyscall is unix.RawSyscall's shape, which syscall.AllThreadsSyscall
// shares.
type rawSyscall func(trap, a1, a2, a3 uintptr) (r1, r2 uintptr, err unix.Errno)

func (c creds) equal(o creds) bool {
	return c.uid == o.uid && c.gid == o.gid && c.caps == o.caps && slices.Equal(c.groups, o.groups)
}

// apply gives the calling thread the credentials c, changing only what
// differs.
func (c creds) apply() error { return c.applyWith(unix.RawSyscall) }

// applyAll gives every thread of the process the credentials c, as a
// process forked from a thread with them would have: a claimed spare
// worker process (see claim), whose threads all have the same credentials
// until then. Afterwards each identity changes its own thread again. A
// binary linked with cgo (a test binary) cannot change other threads; it
// changes the calling one.
func (c creds) applyAll() error {
	if !allThreadsSupported() {
		return c.apply()
	}
	return c.applyWith(syscall.AllThreadsSyscall)
}

var allThreadsSupported = sync.OnceValue(func() bool {
	_, _, e := syscall.AllThreadsSyscall(unix.SYS_GETPID, 0, 0, 0)
	return e != unix.ENOTSUP
})

// applyWith changes credentials through sys. Groups and gids go first,
// while the thread may still have the capability to change them;
// capabilities go last, since a uid change clears them.
func (c creds) applyWith(sys rawSyscall) error {
	have, err := threadCreds()
	if err != nil {
		return err
	}
	if !slices.Equal(have.groups, c.groups) {
		var p uintptr
		if len(c.groups) > 0 {
			p = uintptr(unsafe.Pointer(&c.groups[0]))
		}
		if _, _, e := sys(unix.SYS_SETGROUPS, uintptr(len(c.groups)), p, 0); e != 0 {
			return fmt.Errorf("setgroups: %w", e)
		}
	}
	if have.gid != c.gid {
		if _, _, e := sys(unix.SYS_SETRESGID, uintptr(c.gid[0]), uintptr(c.gid[1]), uintptr(c.gid[2])); e != 0 {
			return fmt.Errorf("setresgid %v: %w", c.gid, e)
		}
	}
	if have.uid != c.uid {
		// Keep the permitted set across the uid change, so that capset
		// below can give back a non-root parent's capabilities.
		if _, _, e := sys(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1, 0); e != 0 {
			return fmt.Errorf("prctl keepcaps: %w", e)
		}
		_, _, e := sys(unix.SYS_SETRESUID, uintptr(c.uid[0]), uintptr(c.uid[1]), uintptr(c.uid[2]))
		sys(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 0, 0)
		if e != 0 {
			return fmt.Errorf("setresuid %v: %w", c.uid, e)
		}
	}
	if have, err = threadCreds(); err != nil {
		return err
	}
	if have.caps != c.caps {
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		if _, _, e := sys(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&c.caps[0])), 0); e != 0 {
			return fmt.Errorf("capset: %w", e)
		}
	}
	return nil
}
