package machine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/provium/provium/internal/kernelreport"
	"github.com/provium/provium/internal/result"
	"github.com/provium/provium/internal/symbolize"
	"github.com/provium/provium/internal/wire"
)

// ErrNoKmemleak means a profile asks for leak scans of a kernel that has
// no kmemleak.
var ErrNoKmemleak = errors.New("kmemleak = true, but the guest kernel has no kmemleak (CONFIG_DEBUG_KMEMLEAK): /sys/kernel/debug/kmemleak is missing")

// KernelReports returns the kernel reports the VM printed, from the n-th
// on, in the order they appeared.
func (vm *VM) KernelReports(n int) []result.KernelReport { return vm.reports.since(n) }

// DrainConsole waits (briefly, bounded) until the VM has printed what it
// had, so that a report printed just before now is in KernelReports. For a
// kernel that keeps its messages off the console (quiet, a low loglevel),
// it reads the kernel log through the agent instead.
func (vm *VM) DrainConsole(ctx context.Context) {
	vm.mu.Lock()
	proc, state := vm.proc, vm.state
	vm.mu.Unlock()
	if state != StateRunning || proc == nil {
		return
	}
	vm.reports.drain(ctx, proc.Done())
	if vm.kmsg != nil {
		vm.kmsg.poll(ctx, vm)
	}
}

// settleWait bounds how long a VM whose agent is gone is given to end:
// a panicking kernel ends QEMU at once (panic=-1 and -no-reboot).
const settleWait = 2 * time.Second

// Settle waits, when the VM's agent connection is gone, until QEMU has
// ended too (at most settleWait), so that the panic that ended it has been
// read off the console. It returns the VM's panics.
func (vm *VM) Settle(ctx context.Context) []result.KernelReport {
	vm.mu.Lock()
	proc, sess := vm.proc, vm.sess
	vm.mu.Unlock()
	if proc != nil && sess != nil && sess.Err() != nil {
		select {
		case <-proc.Done():
		case <-time.After(settleWait):
		case <-ctx.Done():
		}
	}
	return vm.Panics()
}

// KernelIgnore lists the kernel reports the profile calls noise.
func (vm *VM) KernelIgnore() []string {
	if vm.cfg.Profile == nil {
		return nil
	}
	return vm.cfg.Profile.KernelIgnore
}

// ScanLeaks has kmemleak scan the guest's memory and turns what it finds
// into kernel reports, then clears its list, so that each scan reports
// only the leaks since the last. It does nothing unless the profile asks
// for it; a kernel without kmemleak is ErrNoKmemleak.
func (vm *VM) ScanLeaks(ctx context.Context) error {
	if vm.cfg.Profile == nil || !vm.cfg.Profile.Kmemleak {
		return nil
	}
	a := vm.Agent()
	if a == nil {
		return nil
	}
	const file = "/sys/kernel/debug/kmemleak"
	// A guest broken by what the test provoked must not hold the run up
	// for a call's five minutes.
	ctx, cancel := context.WithTimeout(ctx, leakScanTimeout)
	defer cancel()
	r, err := a.Exec(ctx, wire.Exec{Cmd: "grep -q ' /sys/kernel/debug ' /proc/mounts || mount -t debugfs debugfs /sys/kernel/debug; " +
		"test -e " + file + " || exit 3; echo scan > " + file + " && cat " + file + " && echo clear > " + file}, nil)
	if err != nil {
		return fmt.Errorf("kmemleak scan on %s: %w", vm.cfg.Name, err)
	}
	switch {
	case r.ExitCode == 3:
		return fmt.Errorf("%s: %w", vm.cfg.Name, ErrNoKmemleak)
	case r.ExitCode != 0:
		return fmt.Errorf("kmemleak scan on %s: exit %d: %s", vm.cfg.Name, r.ExitCode, strings.TrimSpace(string(r.Stderr)))
	}
	vm.reports.mu.Lock()
	for _, k := range kernelreport.Parse(string(r.Stdout)) {
		vm.reports.add(k)
	}
	vm.reports.mu.Unlock()
	return nil
}

// leakScanTimeout bounds one kmemleak scan; under emulation, with KASAN,
// a scan of a 1 GiB guest takes about ten seconds.
const leakScanTimeout = 90 * time.Second

// quietConsole reports whether a kernel command line keeps warnings (level
// 4) off the console, as quiet and loglevel=4 or lower do.
func quietConsole(cmdline []string) bool {
	level := 7
	for _, a := range cmdline {
		switch {
		case a == "quiet":
			level = 4
		case strings.HasPrefix(a, "loglevel="):
			if n, err := strconv.Atoi(strings.TrimPrefix(a, "loglevel=")); err == nil {
				level = n
			}
		case a == "debug" || a == "ignore_loglevel":
			level = 15
		}
	}
	return level <= 4
}

// kmsgReader feeds the kernel log, read through the agent, to a detector
// of its own, for a VM whose console does not show warnings.
type kmsgReader struct {
	mu   sync.Mutex
	seen int // lines of the log already fed
	det  *kernelreport.Detector
	vm   *reporter
}

func newKmsgReader(r *reporter) *kmsgReader {
	k := &kmsgReader{vm: r}
	k.det = kernelreport.NewDetector(func(rep kernelreport.Report) {
		// Panics and anything else the console shows too are already
		// there.
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, have := range r.reports {
			if have.Title == rep.Title && strings.SplitN(have.Text, "\n", 2)[0] == strings.SplitN(rep.Text, "\n", 2)[0] {
				return
			}
		}
		r.add(rep)
	})
	return k
}

// poll reads the kernel log and feeds the lines not seen yet.
func (k *kmsgReader) poll(ctx context.Context, vm *VM) {
	a := vm.Agent()
	if a == nil {
		return
	}
	log, err := a.Dmesg(ctx)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(log), "\n"), "\n")
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.seen > len(lines) {
		k.seen = 0 // the ring buffer wrapped
	}
	for _, l := range lines[k.seen:] {
		k.det.Line(l, time.Now())
	}
	k.seen = len(lines)
	k.det.Flush(time.Now())
}

// symbolizers are opened once per vmlinux and module directory.
var symbolizers sync.Map // [2]string -> *symbolize.Symbolizer (nil if it failed)

func symbolizerFor(vmlinux, modules string, log func(string, ...any)) *symbolize.Symbolizer {
	if vmlinux == "" && modules == "" {
		return nil
	}
	key := [2]string{vmlinux, modules}
	if v, ok := symbolizers.Load(key); ok {
		s, _ := v.(*symbolize.Symbolizer)
		return s
	}
	s, err := symbolize.Open(vmlinux, modules)
	if err != nil {
		log("call traces stay as printed: %v", err)
		s = nil
	}
	v, _ := symbolizers.LoadOrStore(key, s)
	s, _ = v.(*symbolize.Symbolizer)
	return s
}
