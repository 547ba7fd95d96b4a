package linuxabi

import (
	"errors"
	"fmt"
	"maps"
	"strings"
)

// Arch is a Linux architecture.
type Arch string

// The architectures this package knows.
const (
	X86_64 Arch = "x86_64"
	ARM64  Arch = "arm64"
)

// ErrUnknownArch is wrapped by ParseArch's errors.
var ErrUnknownArch = errors.New("unknown architecture")

// ParseArch returns the architecture that s names: "x86_64" or "amd64",
// "arm64" or "aarch64", in any case and with surrounding space ignored, so
// that the output of uname -m and runtime.GOARCH both work.
func ParseArch(s string) (Arch, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "x86_64", "amd64":
		return X86_64, nil
	case "arm64", "aarch64":
		return ARM64, nil
	}
	return "", fmt.Errorf("parse architecture %q: %w (want x86_64 or arm64)", s, ErrUnknownArch)
}

// abi holds the tables of one architecture.
type abi struct {
	syscalls  map[string]int
	constants map[string]int64
}

func newABI(syscalls map[string]int, constants map[string]int64) *abi {
	return &abi{syscalls: syscalls, constants: constants}
}

var abis = map[Arch]*abi{
	X86_64: newABI(syscallsX86_64, constantsX86_64),
	ARM64:  newABI(syscallsARM64, constantsARM64),
}

// Syscalls returns the system calls of a, by name, or nil for an unknown
// architecture. The map is the caller's to change.
func Syscalls(a Arch) map[string]int {
	t := abis[a]
	if t == nil {
		return nil
	}
	return maps.Clone(t.syscalls)
}

// SyscallNumber returns the number of the system call name on a.
func SyscallNumber(a Arch, name string) (int, bool) {
	t := abis[a]
	if t == nil {
		return 0, false
	}
	nr, ok := t.syscalls[name]
	return nr, ok
}

// Errnos returns every error number by name, aliases such as EWOULDBLOCK
// (EAGAIN) and EDEADLOCK (EDEADLK) included. The numbers are the same on
// every architecture this package knows. The map is the caller's to change.
func Errnos() map[string]int { return maps.Clone(errnos) }

// ErrnoName returns the name of error number n, which may be negated as a
// raw system call returns it: ErrnoName(2) and ErrnoName(-2) are both
// "ENOENT". A number with aliases gets its primary name (EAGAIN, not
// EWOULDBLOCK).
func ErrnoName(n int) (string, bool) {
	if n < 0 {
		n = -n
	}
	if n <= 0 || n >= len(errnoNames) || errnoNames[n] == "" {
		return "", false
	}
	return errnoNames[n], true
}

// Constants returns the constants of a by their C names (the package
// documentation lists which), or nil for an unknown architecture. The map
// is the caller's to change.
func Constants(a Arch) map[string]int64 {
	t := abis[a]
	if t == nil {
		return nil
	}
	return maps.Clone(t.constants)
}
