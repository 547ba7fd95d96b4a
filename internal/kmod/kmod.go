// Package kmod resolves Linux kernel modules, with their dependencies, from a
// kernel's module tree (/lib/modules/<version>), so that Provium can copy
// exactly the modules its guest transport needs into the initramfs and load
// them in an order the kernel accepts.
//
// A module tree does not always come with modules.dep (Debian's linux-image
// packages, for one, leave it to depmod at install time), so dependencies are
// read from each module's own metadata: the depends= entry of its .modinfo
// ELF section. Modules named in modules.builtin are compiled into the kernel
// and are never returned.
//
// Compressed modules (.ko.xz, .ko.zst) are decompressed with the xz or zstd
// command to read their metadata; without the tool they are an error that
// says so.
package kmod

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrUnknownModule means a module (asked for, or a dependency of one)
	// is neither built in nor present in the module tree.
	ErrUnknownModule = errors.New("unknown kernel module")
	// ErrCycle means modules depend on each other in a loop, which the
	// kernel cannot load.
	ErrCycle = errors.New("kernel module dependency cycle")
	// ErrCompressed means a compressed module could not be decompressed.
	ErrCompressed = errors.New("cannot read compressed kernel module")
)

// Modules each guest transport needs when the kernel does not have the
// driver built in. Names use the kernel's canonical spelling ('_').
var (
	// VirtioSerialModules is what the virtio-serial transport needs: the
	// virtio PCI bus and the virtio console (which also drives serial
	// ports).
	VirtioSerialModules = []string{"virtio_pci", "virtio_console"}
	// VsockModules is what the vsock transport needs.
	VsockModules = []string{"virtio_pci", "vmw_vsock_virtio_transport"}
	// TransportModules covers every transport, so one initramfs serves a
	// guest whichever transport the host picks at boot.
	TransportModules = []string{"virtio_pci", "virtio_console", "vmw_vsock_virtio_transport"}
	// DiskModules is what a virtio disk (a profile's rootfs, vm:boot's
	// disks) needs.
	DiskModules = []string{"virtio_pci", "virtio_blk"}
	// NetModules is what a virtio network card needs (virtio_net depends
	// on net_failover and failover, which Resolve finds).
	NetModules = []string{"virtio_pci", "virtio_net"}
)

// Name returns the canonical name of a module given a name or a file name
// ("virtio-rng.ko.xz" -> "virtio_rng"): modprobe treats '-' and '_' as the
// same character, and the kernel reports names with '_'.
func Name(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		s = s[i+1:]
	}
	for _, ext := range []string{".ko.xz", ".ko.zst", ".ko.gz", ".ko"} {
		if strings.HasSuffix(s, ext) {
			s = strings.TrimSuffix(s, ext)
			break
		}
	}
	return strings.ReplaceAll(s, "-", "_")
}

// Resolve returns the module files under moduleDir needed to load the named
// modules, dependencies first, each once. Built-in modules are left out, so
// the result is empty when the kernel has everything built in.
func Resolve(moduleDir string, names ...string) ([]string, error) {
	ix, err := indexDir(moduleDir)
	if err != nil {
		return nil, err
	}
	return ix.resolve(names)
}

// index is a module tree reduced to what resolution needs; depends is a
// field so tests can resolve without real module files.
type index struct {
	dir     string
	paths   map[string]string // canonical name -> file
	builtin map[string]bool
	depends func(path string) ([]string, error)
}

func (ix *index) resolve(names []string) ([]string, error) {
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var order []string
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		name = Name(name)
		if ix.builtin[name] {
			return nil
		}
		switch state[name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("%w: %s", ErrCycle, strings.Join(append(chain, name), " -> "))
		}
		path, ok := ix.paths[name]
		if !ok {
			msg := fmt.Sprintf("%q in %s", name, ix.dir)
			if len(chain) > 0 {
				msg += fmt.Sprintf(" (needed by %s)", chain[len(chain)-1])
			}
			return fmt.Errorf("%w: %s", ErrUnknownModule, msg)
		}
		state[name] = visiting
		deps, err := ix.depends(path)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, append(chain, name)); err != nil {
				return err
			}
		}
		state[name] = done
		order = append(order, path)
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}
