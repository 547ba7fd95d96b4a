package machine

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/provium/provium/internal/cache"
	"github.com/provium/provium/internal/kernelimage"
	"github.com/provium/provium/internal/profile"
	"github.com/provium/provium/internal/wire/boot"
)

// MinMemoryMiB is the least memory a VM boots with: below it, a kernel and
// the initramfs do not fit.
const MinMemoryMiB = 64

// Plan is what booting a profile with some options is made of, worked out
// without booting: the machine QEMU runs, and every host file the guest
// starts from (for cache keys, which must notice a change in any of them).
type Plan struct {
	Shape  Shape   // Initrd is left for the boot to build
	Inputs []Input // by role, in a stable order
	// Image is the kernel image the profile names. Shape.Kernel is the
	// ELF inside it when it boots through PVH; TryPVH says that this
	// has not been seen to work yet, so a boot that fails early is
	// retried as a bzImage.
	Image  string
	TryPVH bool
	// BootTimeout bounds the boot up to a working agent.
	BootTimeout time.Duration
}

// Input is a host file a boot reads.
type Input struct {
	Role string // "kernel", "initrd", "module virtio_console.ko", "file /guest/path", "disk 1"
	Path string
}

// ErrBadOptions means boot options no VM can boot with.
var ErrBadOptions = errors.New("invalid boot options")

// PlanBoot works out the boot of profile p with opts. log, if set, hears
// why a kernel boots as a bzImage.
func PlanBoot(p *profile.Profile, opts BootOptions, log io.Writer) (Plan, error) {
	opts = opts.WithDefaults()
	if err := opts.Check(); err != nil {
		return Plan{}, err
	}
	transport := ChooseTransport()
	kernel, try := bootKernel(p, log)
	plan := Plan{
		Shape:       newShape(p, opts, transport, kernel, ""),
		Image:       p.Kernel,
		TryPVH:      try,
		BootTimeout: opts.BootTimeout,
	}
	if plan.BootTimeout <= 0 {
		plan.BootTimeout = p.BootTimeout
	}
	if plan.BootTimeout <= 0 {
		plan.BootTimeout = DefaultBootTimeout
	}
	add := func(role, path string) { plan.Inputs = append(plan.Inputs, Input{role, path}) }
	add("kernel", p.Kernel)
	switch {
	case p.InitrdFrom != "":
		add("initrd source", p.InitrdFrom)
	case p.Initrd != "":
		add("initrd", p.Initrd)
	}
	mods, err := guestModules(p.ModulesDir, needsOf(plan.Shape), transport)
	if err != nil {
		return Plan{}, err
	}
	for _, m := range mods {
		add("module "+filepath.Base(m), m)
	}
	guests := make([]string, 0, len(opts.Files))
	for g := range opts.Files {
		guests = append(guests, g)
	}
	sort.Strings(guests)
	for _, g := range guests {
		add("file "+g, opts.Files[g])
	}
	for i, d := range plan.Shape.Disks {
		add(fmt.Sprintf("disk %d", i), d.Path)
	}
	return plan, nil
}

// Check rejects options no VM can boot with, naming the limit.
func (o BootOptions) Check() error {
	o = o.WithDefaults()
	if o.MemoryMiB < MinMemoryMiB {
		return fmt.Errorf("%w: memory %d MiB is below the %d MiB a kernel needs to boot", ErrBadOptions, o.MemoryMiB, MinMemoryMiB)
	}
	if n := runtime.NumCPU(); o.CPUs > n {
		return fmt.Errorf("%w: cpus %d is more than the host's %d CPUs", ErrBadOptions, o.CPUs, n)
	}
	if o.Hostname != "" && !boot.ValidHostname(o.Hostname) {
		return fmt.Errorf("%w: hostname %q: want 1 to 63 letters, digits and inner hyphens", ErrBadOptions, o.Hostname)
	}
	for _, n := range o.NICs {
		if _, err := boot.ParseNIC(n.MAC + "," + n.Addr); err != nil {
			return fmt.Errorf("%w: network card: %w", ErrBadOptions, err)
		}
	}
	return nil
}

// bootKernel returns what QEMU boots for profile p's kernel image, and
// whether that is a PVH entry not yet seen to work. The ELF inside the
// image, booted through its PVH entry, skips the firmware's bzImage loader
// and the kernel's decompressor (half a second of every cold boot under
// TCG); the image itself always works.
func bootKernel(p *profile.Profile, log io.Writer) (kernel string, untried bool) {
	if p.PVH != nil && !*p.PVH {
		return p.Kernel, false
	}
	k, err := kernelimage.PVH(p.Kernel, cache.Kernels())
	if err != nil {
		if !errors.Is(err, kernelimage.ErrUnsupported) && log != nil {
			fmt.Fprintf(log, "booting %s as a bzImage: %v\n", p.Kernel, err)
		}
		return p.Kernel, false
	}
	if k == p.Kernel {
		return k, false // an ELF already: nothing to fall back to
	}
	if p.PVH != nil {
		return k, false // forced: no fallback
	}
	works, known := kernelimage.Known(p.Kernel, cache.Kernels())
	return k, !(known && works)
}
