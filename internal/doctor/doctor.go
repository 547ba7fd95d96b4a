// Package doctor checks the host for what Provium needs (`provium doctor`)
// and says how to fix what is missing: QEMU, KVM, vsock, the kernel and
// busybox of the built-in profiles, and the kernel modules the guest
// transport needs.
//
// Missing KVM or vsock is reported but is not a failure: VMs then run
// under software emulation and talk over virtio-serial.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/provium/provium/internal/initramfs"
	"github.com/provium/provium/internal/kmod"
	"github.com/provium/provium/internal/profile"
	"github.com/provium/provium/internal/qemu"
)

// Result is the outcome of one check.
type Result struct {
	Name     string
	OK       bool
	Detail   string // what was found, or what is wrong
	Fix      string // how to fix it, when not OK
	Optional bool   // not OK is a warning, not a failure
}

// Check is one thing to check.
type Check func() Result

// Checks are the checks Run performs, in order.
var Checks = []Check{checkQEMU, checkKVM, checkVsock, checkKernel, checkBusybox, checkModules}

// Run performs every check, prints one line per check to out, and reports
// whether Provium can run tests here.
func Run(out io.Writer) (ok bool) {
	return report(out, Checks)
}

func report(out io.Writer, checks []Check) bool {
	ok := true
	for _, c := range checks {
		r := c()
		status := "ok"
		switch {
		case r.OK:
		case r.Optional:
			status = "missing (optional)"
		default:
			status = "missing"
			ok = false
		}
		line := fmt.Sprintf("%-18s %s", r.Name+":", status)
		if r.Detail != "" {
			line += ": " + r.Detail
		}
		if !r.OK && r.Fix != "" {
			line += " — " + r.Fix
		}
		fmt.Fprintln(out, line)
	}
	return ok
}

func checkQEMU() Result {
	r := Result{Name: "qemu", Fix: "run: provium setup (or apt-get install qemu-system-x86), or set PROVIUM_QEMU"}
	bin := qemu.Binary()
	path, err := exec.LookPath(bin)
	if err != nil {
		r.Detail = fmt.Sprintf("%s not found", bin)
		return r
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		r.Detail = fmt.Sprintf("%s --version: %v", path, err)
		return r
	}
	first, _, _ := strings.Cut(string(v), "\n")
	r.OK, r.Detail = true, fmt.Sprintf("%s (%s)", path, strings.TrimSpace(first))
	return r
}

func checkKVM() Result {
	r := Result{Name: "kvm", Optional: true}
	if err := qemu.KVMUsable(); err != nil {
		r.Detail = fmt.Sprintf("/dev/kvm: %v; VMs use software emulation (much slower)", unwrapPath(err))
		r.Fix = "enable virtualization, load kvm_intel or kvm_amd, and add yourself to the kvm group"
		return r
	}
	if os.Getenv("PROVIUM_ACCEL") == "" {
		if err := qemu.ProbeKVM(context.Background(), qemu.Binary()); err != nil {
			r.Detail = fmt.Sprintf("/dev/kvm opens but QEMU cannot run a guest with it (%v); VMs use software emulation", firstLine(err))
			r.Fix = "check nested virtualization on the host; PROVIUM_ACCEL=tcg silences the probe"
			return r
		}
	}
	r.OK, r.Detail = true, "accelerator "+qemu.Accel()
	return r
}

func checkVsock() Result {
	r := Result{Name: "vhost-vsock", Optional: true}
	f, err := os.OpenFile("/dev/vhost-vsock", os.O_RDWR, 0)
	if err != nil {
		r.Detail = fmt.Sprintf("/dev/vhost-vsock: %v; the agent uses virtio-serial instead", unwrapPath(err))
		r.Fix = "modprobe vhost_vsock"
		return r
	}
	f.Close()
	r.OK = true
	return r
}

func checkKernel() Result {
	r := Result{Name: "kernel", Fix: "run: provium setup, or set PROVIUM_KERNEL"}
	k, err := profile.FindKernel()
	if err != nil {
		r.Detail = err.Error()
		if errors.Is(err, profile.ErrNoKernel) {
			r.Detail = "none for the built-in profiles"
		}
		return r
	}
	r.OK, r.Detail = true, fmt.Sprintf("%s (from %s)", k.Path, k.Source)
	return r
}

func checkBusybox() Result {
	r := Result{Name: "busybox", Fix: "run: provium setup (or apt-get install busybox-static), or set PROVIUM_BUSYBOX"}
	bb, err := profile.Busybox()
	if err != nil {
		r.Detail = err.Error()
		if errors.Is(err, profile.ErrNoBusybox) {
			r.Detail = "not found"
		}
		return r
	}
	if err := initramfs.CheckStatic(bb); err != nil {
		r.Detail = err.Error()
		return r
	}
	r.OK, r.Detail = true, bb+" (static)"
	return r
}

func checkModules() Result {
	r := Result{Name: "transport modules"}
	k, err := profile.FindKernel()
	if err != nil {
		r.Detail, r.Fix = "no kernel to check", "see kernel above"
		return r
	}
	if k.ModulesDir == "" {
		r.OK = true
		r.Detail = fmt.Sprintf("no module tree known for %s: fine if virtio and vsock are built in (else set PROVIUM_MODULES)", k.Path)
		return r
	}
	mods, err := kmod.Resolve(k.ModulesDir, kmod.TransportModules...)
	if err != nil {
		r.Detail = err.Error()
		r.Fix = "use a kernel with virtio_pci, virtio_console and vmw_vsock_virtio_transport (run: provium setup), or set PROVIUM_MODULES"
		return r
	}
	r.OK = true
	if len(mods) == 0 {
		r.Detail = "built into " + k.Path
	} else {
		r.Detail = fmt.Sprintf("%d modules from %s", len(mods), k.ModulesDir)
	}
	return r
}

// unwrapPath drops the path an *os.PathError repeats.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
