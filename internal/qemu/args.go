package qemu

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultMachine is the QEMU machine type. Under TCG, q35 and pc reach
// userspace equally fast (3.4-3.5 s for the Debian cloud kernel, within
// the noise; BenchmarkBoot); q35 has PCIe and is what distributions
// target today.
const DefaultMachine = "q35"

// bootArgs come first on the kernel command line; devices' and the
// caller's arguments follow and so override them.
var bootArgs = []string{
	// A panic reboots at once, and -no-reboot turns that into an exit:
	// a dead guest ends its QEMU instead of spinning.
	"panic=-1",
	// The crypto self-tests run at every boot; under TCG they cost
	// 0.4-0.85 s of a 3.5 s boot to userspace (BenchmarkBoot;
	// crypto_algapi_init with initcall_debug). Tests of crypto code can
	// put cryptomgr.notests=0 in their append.
	"cryptomgr.notests",
	// The SP800-108 KDF runs its own self-test, which cryptomgr.notests
	// does not cover; looking up hmac(sha256) for it waits for the
	// initramfs and runs modprobe, 0.2 s of every boot under TCG
	// (guest time from "Freeing initrd memory" to init: 0.57 -> 0.35 s).
	// The initcall does nothing else: the KDF itself stays available.
	"initcall_blacklist=crypto_kdf108_init",
	// Keep the guest on the TSC: emulation jitter can make the
	// clocksource watchdog demote it to the HPET, whose every read is an
	// expensive device access under TCG.
	"tsc=reliable",
}

// Fixed file descriptors in QEMU (ExtraFiles start at 3).
const (
	qmpFD = 3
)

// memoryBackend is the id of the memory backend of a VM whose RAM is a
// file.
const memoryBackend = "ram0"

// args returns QEMU's arguments for cfg (after defaults), with the
// console written to consolePath ("" for none), the migration stream
// read from incomingFD (0 for none) and the RAM in the file memoryFD (0:
// QEMU's own memory).
func (cfg *Config) args(consolePath string, incomingFD, memoryFD int) []string {
	accel := cfg.Accel
	cpu := "max"
	if accel == "kvm" {
		cpu = "host"
	}
	machine := cfg.Machine
	var memory []string
	if memoryFD > 0 {
		share := "off"
		if cfg.MemoryShared {
			share = "on"
		}
		machine += ",memory-backend=" + memoryBackend
		memory = []string{"-object", fmt.Sprintf("memory-backend-file,id=%s,size=%dM,mem-path=/dev/fd/%d,share=%s",
			memoryBackend, cfg.MemoryMiB, memoryFD, share)}
	}
	args := []string{
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-machine", machine,
		"-accel", accel,
		"-cpu", cpu,
		"-chardev", fmt.Sprintf("socket,id=qmp,fd=%d", qmpFD),
		"-mon", "chardev=qmp,mode=control",
	}
	if cfg.MemoryMiB > 0 {
		args = append(args, "-m", strconv.Itoa(cfg.MemoryMiB))
	}
	args = append(args, memory...)
	if cfg.CPUs > 0 {
		args = append(args, "-smp", strconv.Itoa(cfg.CPUs))
	}
	devices := cfg.Devices
	if consolePath != "" {
		devices = append([]Device{SerialConsole{Path: consolePath}}, devices...)
	}
	for _, d := range devices {
		args = append(args, d.QEMUArgs()...)
	}
	if cfg.Kernel != "" {
		args = append(args, "-kernel", cfg.Kernel, "-append", strings.Join(kernelArgs(devices, cfg.Append), " "))
		if cfg.Initrd != "" {
			args = append(args, "-initrd", cfg.Initrd)
		}
	}
	if cfg.GDB != "" {
		args = append(args, "-gdb", cfg.GDB)
	}
	if cfg.Paused && incomingFD == 0 {
		args = append(args, "-S")
	}
	switch {
	case incomingFD > 0 && cfg.Template:
		// The capability that leaves the RAM out of the stream must be
		// set before the load starts: Start sets it, then starts the
		// load (loadTemplate).
		args = append(args, "-S", "-incoming", "defer")
	case incomingFD > 0:
		// -S: stay paused after the state is loaded, so the caller
		// decides when the guest runs again.
		args = append(args, "-S", "-incoming", fmt.Sprintf("fd:%d", incomingFD))
	}
	return args
}

// kernelArgs is the kernel command line: the boot defaults, what each
// device needs, then the caller's arguments, which so override the rest.
func kernelArgs(devices []Device, extra []string) []string {
	kargs := append([]string{}, bootArgs...)
	for _, d := range devices {
		kargs = append(kargs, d.KernelArgs()...)
	}
	return append(kargs, extra...)
}

// KernelCommandLine is the kernel command line the guest gets.
func (cfg Config) KernelCommandLine() string {
	devices := append([]Device{SerialConsole{}}, cfg.Devices...)
	return strings.Join(kernelArgs(devices, cfg.Append), " ")
}

// ShellQuote quotes args so that a POSIX shell reads them back unchanged.
func ShellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = quote(a)
	}
	return strings.Join(q, " ")
}

func quote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_@%+=:,./-", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
