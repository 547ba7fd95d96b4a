// Package profile loads the named VM profiles a test can boot: those in the
// project's provium.toml and the built-in "default" and "minimal".
//
// provium.toml is looked up from the starting directory upwards; the nearest
// one wins, and relative paths in it resolve against its directory:
//
//	[profile.minimal]
//	kernel = "../kernel/out/bzImage"   # required
//	initrd = "testdata/rootfs.cpio.gz" # initrd and/or rootfs
//	rootfs = "testdata/disk.img"
//	init   = "/sbin/init"              # default
//	append = "loglevel=7"
//	pvh    = false                     # boot as a bzImage (default: PVH when it works)
//	boot_timeout = "3m"                # up to a working agent (default 30s)
//	kernel_ignore = ["WARNING in noisy_driver"] # kernel reports that fail nothing
//	kmemleak = true                    # scan for leaks after each sub-test
//	vmlinux = "../kernel/out/vmlinux"  # DWARF to decode call traces with
//	modules = "../kernel/out"          # where the modules' .ko files are (for call
//	                                   # traces, and for the guest when the kernel
//	                                   # has no lib/modules/VERSION beside it)
//
// The built-in profiles boot a kernel found in this order: $PROVIUM_KERNEL
// (its modules in $PROVIUM_MODULES), the kernel `provium setup` extracted into
// the cache (cache.KernelPackage), and the host's /boot/vmlinuz-$(uname -r)
// with /lib/modules/$(uname -r). Their initramfs is a root generated from
// the static busybox at $PROVIUM_BUSYBOX or /bin/busybox, kept in
// cache.Initramfs.
package profile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/provium/provium/internal/wire/boot"
)

// FileName is the project configuration file.
const FileName = "provium.toml"

var (
	// ErrUnknownProfile means no profile has the name asked for.
	ErrUnknownProfile = errors.New("unknown profile")
	// ErrInvalid means provium.toml is malformed or a profile in it is
	// incomplete.
	ErrInvalid = errors.New("invalid configuration")
)

// Profile is what a VM boots.
type Profile struct {
	Name   string
	Kernel string // kernel image (bzImage), absolute path
	Initrd string // initramfs the shim is appended to, "" if none
	Rootfs string // disk image attached read-only, "" if none
	Init   string // the real init, run as PID 1 after the agent starts
	Append string // extra kernel command line

	// PVH forces how the kernel boots: through the PVH entry of the ELF
	// inside the image (true) or as a bzImage (false). Unset, Provium uses
	// PVH for a kernel that has one until it is seen not to work.
	PVH *bool
	// BootTimeout bounds a boot up to a working agent; 0 for the default.
	BootTimeout time.Duration
	// KernelIgnore lists kernel reports that fail nothing (known noise):
	// a report whose title or text contains one of them.
	KernelIgnore []string
	// Kmemleak has kmemleak scan for leaks after every sub-test.
	Kmemleak bool
	// Vmlinux is an ELF of the kernel with DWARF, to decode call traces
	// in kernel reports; Modules a directory of its modules' .ko files.
	Vmlinux string
	Modules string

	Builtin bool // one of the built-in profiles
	// InitrdFrom is the file Initrd is generated from, when Provium
	// generated it (a built-in profile's busybox); "" when Initrd is the
	// user's own.
	InitrdFrom string
	// ModulesDir is the kernel's module tree, where the transport modules
	// come from when they are not built in; "" if unknown.
	ModulesDir string
}

// Config is a project's set of profiles.
type Config struct {
	Path string // the provium.toml read, "" if none was found
	Dir  string // its directory, "" if none was found

	profiles map[string]*Profile // from Path

	mu       sync.Mutex
	builtins map[string]*Profile // resolved on first use
}

// builtinNames are the profiles that exist without configuration.
var builtinNames = []string{"default", "minimal"}

// Load reads the provium.toml in startDir or its nearest parent. Without
// one, the configuration holds only the built-in profiles.
func Load(startDir string) (*Config, error) {
	dir, err := filepath.Abs(startDir)
	if err != nil {
		return nil, err
	}
	c := &Config{profiles: map[string]*Profile{}, builtins: map[string]*Profile{}}
	for {
		p := filepath.Join(dir, FileName)
		if _, err := os.Stat(p); err == nil {
			c.Path, c.Dir = p, dir
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("look for %s: %w", FileName, err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return c, nil
		}
		dir = parent
	}
	if err := c.parse(); err != nil {
		return nil, err
	}
	return c, nil
}

// file is the layout of provium.toml.
type file struct {
	Profile map[string]struct {
		Kernel       string   `toml:"kernel"`
		Initrd       string   `toml:"initrd"`
		Rootfs       string   `toml:"rootfs"`
		Init         string   `toml:"init"`
		Append       string   `toml:"append"`
		PVH          *bool    `toml:"pvh"`
		BootTimeout  string   `toml:"boot_timeout"`
		KernelIgnore []string `toml:"kernel_ignore"`
		Kmemleak     bool     `toml:"kmemleak"`
		Vmlinux      string   `toml:"vmlinux"`
		Modules      string   `toml:"modules"`
	} `toml:"profile"`
}

func (c *Config) parse() error {
	var f file
	md, err := toml.DecodeFile(c.Path, &f)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, c.Path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return fmt.Errorf("%w: %s: unknown key %s", ErrInvalid, c.Path, strings.Join(keys, ", "))
	}
	for name, raw := range f.Profile {
		if raw.Kernel == "" {
			return fmt.Errorf("%w: %s: profile %q: kernel is required", ErrInvalid, c.Path, name)
		}
		if raw.Initrd == "" && raw.Rootfs == "" {
			return fmt.Errorf("%w: %s: profile %q: needs an initrd or a rootfs", ErrInvalid, c.Path, name)
		}
		p := &Profile{
			Name:   name,
			Kernel: c.abs(raw.Kernel),
			Initrd: c.abs(raw.Initrd),
			Rootfs: c.abs(raw.Rootfs),
			Init:   raw.Init,
			Append: raw.Append,
			PVH:    raw.PVH,

			KernelIgnore: raw.KernelIgnore,
			Kmemleak:     raw.Kmemleak,
			Vmlinux:      c.abs(raw.Vmlinux),
			Modules:      c.abs(raw.Modules),
		}
		if raw.BootTimeout != "" {
			d, err := time.ParseDuration(raw.BootTimeout)
			if err != nil || d <= 0 {
				return fmt.Errorf("%w: %s: profile %q: boot_timeout %q is not a duration such as \"90s\" or \"3m\"", ErrInvalid, c.Path, name, raw.BootTimeout)
			}
			p.BootTimeout = d
		}
		if p.Init == "" {
			p.Init = boot.DefaultInit
		}
		p.ModulesDir = modulesBeside(p.Kernel)
		if p.ModulesDir == "" {
			// A kernel outside a distribution's layout: its module tree
			// is where the profile says.
			p.ModulesDir = p.Modules
		}
		c.profiles[name] = p
	}
	return nil
}

// abs resolves a path from provium.toml against its directory.
func (c *Config) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// modulesBeside guesses the module tree of a kernel laid out as a
// distribution package is (<root>/boot/vmlinuz-<ver> with
// <root>/lib/modules/<ver>), which also covers the host's own kernels.
func modulesBeside(kernel string) string {
	base := filepath.Base(kernel)
	ver, ok := strings.CutPrefix(base, "vmlinuz-")
	if !ok || ver == "" {
		return ""
	}
	dir := filepath.Join(filepath.Dir(filepath.Dir(kernel)), "lib", "modules", ver)
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return dir
	}
	return ""
}

// Names returns every profile name, sorted.
func (c *Config) Names() []string {
	var names []string
	for n := range c.profiles {
		names = append(names, n)
	}
	for _, n := range builtinNames {
		if _, ok := c.profiles[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Get returns the named profile. A built-in profile is resolved on first
// use, so a host without a kernel only fails the tests that boot one.
func (c *Config) Get(name string) (*Profile, error) {
	if p, ok := c.profiles[name]; ok {
		if err := p.check(); err != nil {
			return nil, err
		}
		cp := *p
		return &cp, nil
	}
	for _, b := range builtinNames {
		if name == b {
			return c.builtin(name)
		}
	}
	return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownProfile, name, strings.Join(c.Names(), ", "))
}

func (c *Config) builtin(name string) (*Profile, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.builtins[name]; ok {
		cp := *p
		return &cp, nil
	}
	p, err := resolveBuiltin(name)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", name, err)
	}
	c.builtins[name] = p
	cp := *p
	return &cp, nil
}

// check reports a missing file now rather than as a QEMU failure at boot.
func (p *Profile) check() error {
	for _, f := range []struct{ field, path string }{{"kernel", p.Kernel}, {"initrd", p.Initrd}, {"rootfs", p.Rootfs}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("profile %s: %s: %w", p.Name, f.field, err)
		}
	}
	return nil
}
