package qemu

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/provium/provium/internal/cache"
)

// probeTime is how long the KVM probe lets SeaBIOS run; it prints its
// banner within milliseconds when KVM works.
const probeTime = 2 * time.Second

var accelOnce struct {
	sync.Once
	accel string
}

// Accel returns the accelerator VMs use: "kvm" or "tcg" (software
// emulation). $PROVIUM_ACCEL decides if set. Otherwise KVM is used only if
// /dev/kvm opens read-write and QEMU can actually run a guest with it: some
// hosts (nested virtualization, odd CPU models) have a /dev/kvm on which
// QEMU aborts or the guest hangs. That probe boots the firmware alone and
// watches its debug port; its answer is cached in <cache>/accel, keyed by
// the QEMU binary, and computed once per process.
func Accel() string {
	if a := os.Getenv("PROVIUM_ACCEL"); a == "kvm" || a == "tcg" {
		return a
	}
	accelOnce.Do(func() { accelOnce.accel = detectAccel(Binary()) })
	return accelOnce.accel
}

// KVMUsable reports whether /dev/kvm opens read-write and, if not, why.
func KVMUsable() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

func detectAccel(binary string) string {
	return decideAccel(accelDeps{
		kvmUsable: KVMUsable,
		probe:     func() error { return ProbeKVM(context.Background(), binary) },
		memo:      cache.Accel(),
		binary:    binary,
	})
}

// accelDeps is what deciding the accelerator needs of the host.
type accelDeps struct {
	kvmUsable func() error
	probe     func() error // runs a guest with KVM; nil if it works
	memo      string       // file remembering the answer for a QEMU build
	binary    string
}

// decideAccel picks KVM only when /dev/kvm is usable and a guest ran on
// it. The probe's answer is remembered for the QEMU build it was made
// with, so that each run does not pay for it again.
func decideAccel(d accelDeps) string {
	if d.kvmUsable() != nil {
		return "tcg"
	}
	key := accelKey(d.binary)
	if b, err := os.ReadFile(d.memo); err == nil {
		if k, v, ok := strings.Cut(strings.TrimSpace(string(b)), "\n"); ok && k == key && key != "" && (v == "kvm" || v == "tcg") {
			return v
		}
	}
	accel := "tcg"
	if d.probe() == nil {
		accel = "kvm"
	}
	if key != "" {
		cache.WriteFile(d.memo, 0o644, func(w io.Writer) error {
			_, err := io.WriteString(w, key+"\n"+accel+"\n")
			return err
		})
	}
	return accel
}

// accelKey identifies a QEMU build: its path and fingerprint.
func accelKey(binary string) string {
	path, err := exec.LookPath(binary)
	if err != nil {
		return ""
	}
	fp, err := cache.Fingerprint(path)
	if err != nil {
		return ""
	}
	return path + " " + fp
}

// ProbeKVM runs QEMU with KVM on the bare firmware and returns nil if the
// firmware got to print something on its debug console (I/O port 0x402).
func ProbeKVM(ctx context.Context, binary string) error {
	dir, err := os.MkdirTemp("", "provium-kvm-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "debugcon")
	ctx, cancel := context.WithTimeout(ctx, probeTime)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary,
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-machine", DefaultMachine, "-accel", "kvm", "-cpu", "host", "-m", "16",
		"-chardev", "file,id=dbg,path="+opt(out),
		"-device", "isa-debugcon,iobase=0x402,chardev=dbg")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("kvm probe: %w", err)
	}
	// Stop as soon as the firmware has spoken; a working KVM gets there
	// in milliseconds.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for {
		if st, err := os.Stat(out); err == nil && st.Size() > 0 {
			cancel()
			<-exited
			return nil
		}
		select {
		case err := <-exited:
			if st, serr := os.Stat(out); serr == nil && st.Size() > 0 {
				return nil
			}
			return fmt.Errorf("kvm probe: qemu exited: %v %s", err, strings.TrimSpace(stderr.String()))
		case <-ctx.Done():
			<-exited
			if st, serr := os.Stat(out); serr == nil && st.Size() > 0 {
				return nil
			}
			return fmt.Errorf("kvm probe: the firmware printed nothing in %v", probeTime)
		case <-tick.C:
		}
	}
}
