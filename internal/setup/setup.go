// Package setup installs what Provium needs on a Debian or Ubuntu host
// (`provium setup`): QEMU and a static busybox from the distribution, and
// a kernel for the built-in profiles, extracted from the distribution's
// cloud kernel package into the user's cache (cache.KernelPackage).
//
// It is idempotent and quick when everything is present: each step first
// checks, and apt-get update runs at most once, only if something must be
// fetched. Installing packages needs root; as another user it goes through
// sudo. The kernel needs no root: apt-get download and dpkg-deb -x work
// anywhere.
package setup

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/provium/provium/internal/cache"
	"github.com/provium/provium/internal/initramfs"
	"github.com/provium/provium/internal/qemu"
)

var (
	// ErrUnsupported means the host has no apt: setup only knows Debian
	// and its derivatives.
	ErrUnsupported = errors.New("provium setup needs apt (Debian or Ubuntu)")
	// ErrNoKernelPackage means apt knows no cloud kernel to download.
	ErrNoKernelPackage = errors.New("no kernel package found")
)

// KernelMeta is the package whose dependency is the current cloud kernel:
// small, with virtio built in or as modules, and no firmware.
const KernelMeta = "linux-image-cloud-amd64"

// host is what setup touches of the machine; tests replace it.
type host struct {
	out      io.Writer
	run      func(ctx context.Context, dir string, name string, args ...string) ([]byte, error)
	lookPath func(string) (string, error)
	root     bool
	busybox  string // the busybox the built-in profiles would use
	qemu     string
	kernels  string // cache.KernelPackage()
	lists    string // apt's package lists
	updated  bool
}

// Run brings the host to a state where the built-in profiles boot,
// printing one line per step to out.
func Run(ctx context.Context, out io.Writer) error {
	bb := os.Getenv("PROVIUM_BUSYBOX")
	if bb == "" {
		bb = "/bin/busybox"
	}
	h := &host{
		out:      out,
		run:      runCommand(out),
		lookPath: exec.LookPath,
		root:     os.Geteuid() == 0,
		busybox:  bb,
		qemu:     qemu.Binary(),
		kernels:  cache.KernelPackage(),
		lists:    "/var/lib/apt/lists",
	}
	return h.setup(ctx)
}

func (h *host) setup(ctx context.Context) error {
	if _, err := h.lookPath("apt-get"); err != nil {
		return fmt.Errorf("%w: install QEMU (qemu-system-x86_64) and a static busybox, and set PROVIUM_KERNEL", ErrUnsupported)
	}
	if err := h.packages(ctx); err != nil {
		return err
	}
	return h.kernel(ctx)
}

// packages installs QEMU and busybox-static if either is missing.
func (h *host) packages(ctx context.Context) error {
	var need []string
	if p, err := h.lookPath(h.qemu); err == nil {
		h.step("qemu: ok (%s)", p)
	} else {
		need = append(need, "qemu-system-x86")
	}
	if err := initramfs.CheckStatic(h.busybox); err == nil {
		h.step("busybox: ok (%s is static)", h.busybox)
	} else if os.Getenv("PROVIUM_BUSYBOX") != "" {
		return fmt.Errorf("PROVIUM_BUSYBOX: %w", err)
	} else {
		need = append(need, "busybox-static")
	}
	if len(need) == 0 {
		return nil
	}
	if err := h.update(ctx); err != nil {
		return err
	}
	h.step("installing %s", strings.Join(need, " "))
	args := append([]string{"install", "-y", "--no-install-recommends"}, need...)
	if _, err := h.apt(ctx, "", args...); err != nil {
		return err
	}
	return nil
}

// apt runs apt-get, through sudo when not root.
func (h *host) apt(ctx context.Context, dir string, args ...string) ([]byte, error) {
	if h.root {
		return h.run(ctx, dir, "apt-get", args...)
	}
	if _, err := h.lookPath("sudo"); err != nil {
		return nil, fmt.Errorf("apt-get %s needs root: run provium setup as root, or run it yourself", strings.Join(args, " "))
	}
	return h.run(ctx, dir, "sudo", append([]string{"apt-get"}, args...)...)
}

// update runs apt-get update once, and only when the package lists are
// missing or more than a day old.
func (h *host) update(ctx context.Context) error {
	if h.updated {
		return nil
	}
	h.updated = true
	if fresh(h.lists, 24*time.Hour) {
		return nil
	}
	h.step("apt-get update")
	_, err := h.apt(ctx, "", "update")
	return err
}

// fresh reports whether dir holds package lists younger than maxAge.
func fresh(dir string, maxAge time.Duration) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if !strings.Contains(e.Name(), "_Packages") {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) < maxAge {
			return true
		}
	}
	return false
}

// kernel extracts the cloud kernel package into h.kernels unless a kernel
// is there already.
func (h *host) kernel(ctx context.Context) error {
	if k, _ := filepath.Glob(filepath.Join(h.kernels, "boot", "vmlinuz-*")); len(k) > 0 {
		h.step("kernel: ok (%s)", k[len(k)-1])
		return nil
	}
	if err := h.update(ctx); err != nil {
		return err
	}
	pkg, err := h.kernelPackage(ctx)
	if err != nil {
		return err
	}
	parent := filepath.Dir(h.kernels)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	dl, err := os.MkdirTemp(parent, ".download-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dl)
	h.step("downloading %s", pkg)
	if _, err := h.run(ctx, dl, "apt-get", "download", pkg); err != nil {
		return err
	}
	debs, _ := filepath.Glob(filepath.Join(dl, "*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download %s: expected one .deb in %s, found %d", pkg, dl, len(debs))
	}
	// Extract next to the final place and rename, so an interrupted
	// extraction never looks like an installed kernel.
	tmp, err := os.MkdirTemp(parent, ".kernel-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	h.step("extracting %s into %s", filepath.Base(debs[0]), h.kernels)
	if _, err := h.run(ctx, "", "dpkg-deb", "-x", debs[0], tmp); err != nil {
		return err
	}
	if k, _ := filepath.Glob(filepath.Join(tmp, "boot", "vmlinuz-*")); len(k) == 0 {
		return fmt.Errorf("%s has no boot/vmlinuz-*", filepath.Base(debs[0]))
	}
	// A leftover directory without a kernel (older layout, manual
	// tinkering) is in the way of the rename.
	if err := os.RemoveAll(h.kernels); err != nil {
		return err
	}
	if err := os.Rename(tmp, h.kernels); err != nil {
		return err
	}
	k, _ := filepath.Glob(filepath.Join(h.kernels, "boot", "vmlinuz-*"))
	h.step("kernel: ok (%s)", k[len(k)-1])
	return nil
}

// kernelPackage returns the versioned package KernelMeta depends on, e.g.
// linux-image-6.1.0-56-cloud-amd64.
func (h *host) kernelPackage(ctx context.Context) (string, error) {
	out, err := h.run(ctx, "", "apt-cache", "depends", KernelMeta)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoKernelPackage, err)
	}
	if pkg := parseDepends(out); pkg != "" {
		return pkg, nil
	}
	return "", fmt.Errorf("%w: %s depends on no linux-image-*-cloud-amd64", ErrNoKernelPackage, KernelMeta)
}

// parseDepends finds the kernel image in apt-cache depends output.
func parseDepends(out []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		dep, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Depends: ")
		dep = strings.Trim(dep, "<>")
		if ok && strings.HasPrefix(dep, "linux-image-") && strings.HasSuffix(dep, "-cloud-amd64") && dep != KernelMeta {
			return dep
		}
	}
	return ""
}

func (h *host) step(format string, args ...any) {
	fmt.Fprintf(h.out, "setup: "+format+"\n", args...)
}

// runCommand runs a command, showing its output only when it fails (apt
// is verbose), with the terminal's stdin for sudo's password prompt.
func runCommand(out io.Writer) func(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	return func(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		cmd.Stdin = os.Stdin
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		b, err := cmd.Output()
		if err != nil {
			out.Write(stderr.Bytes())
			return b, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
		}
		return b, nil
	}
}
