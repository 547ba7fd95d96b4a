package profile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/cache"
	"github.com/provium/provium/internal/initramfs"
	"github.com/provium/provium/internal/wire/boot"
)

var (
	// ErrNoKernel means the built-in profiles found no kernel to boot.
	ErrNoKernel = errors.New("no kernel for the built-in profiles: run `provium setup` or set PROVIUM_KERNEL")
	// ErrNoBusybox means the built-in profiles found no busybox.
	ErrNoBusybox = errors.New("no busybox for the built-in profiles: run `provium setup` (apt-get install busybox-static) or set PROVIUM_BUSYBOX")
)

// Where the host keeps its kernels; variables so tests can point elsewhere.
var (
	hostBootDir    = "/boot"
	hostModulesDir = "/lib/modules"
)

// Kernel is a kernel image and its module tree.
type Kernel struct {
	Path       string
	ModulesDir string // "" if unknown
	Source     string // where it was found, for messages: "PROVIUM_KERNEL", "cache", "host"
}

// FindKernel returns the kernel the built-in profiles boot.
func FindKernel() (Kernel, error) {
	if k := os.Getenv("PROVIUM_KERNEL"); k != "" {
		if err := readable(k); err != nil {
			return Kernel{}, fmt.Errorf("PROVIUM_KERNEL: %w", err)
		}
		mods := os.Getenv("PROVIUM_MODULES")
		if mods == "" {
			mods = modulesBeside(k)
		}
		return Kernel{Path: k, ModulesDir: mods, Source: "PROVIUM_KERNEL"}, nil
	}
	if k, ok := cachedKernel(cache.KernelPackage()); ok {
		return k, nil
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err == nil {
		rel := unix.ByteSliceToString(uts.Release[:])
		k := filepath.Join(hostBootDir, "vmlinuz-"+rel)
		if err := readable(k); err == nil {
			mods := filepath.Join(hostModulesDir, rel)
			if _, err := os.Stat(mods); err != nil {
				mods = ""
			}
			return Kernel{Path: k, ModulesDir: mods, Source: "host"}, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			// Ubuntu keeps /boot/vmlinuz-* readable by root only.
			return Kernel{}, fmt.Errorf("%w (host kernel: %v)", ErrNoKernel, err)
		}
	}
	return Kernel{}, ErrNoKernel
}

// cachedKernel returns the newest kernel extracted under dir.
func cachedKernel(dir string) (Kernel, bool) {
	images, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	sort.Slice(images, func(i, j int) bool { return versionLess(images[i], images[j]) })
	for i := len(images) - 1; i >= 0; i-- {
		if readable(images[i]) != nil {
			continue
		}
		ver := strings.TrimPrefix(filepath.Base(images[i]), "vmlinuz-")
		mods := filepath.Join(dir, "lib", "modules", ver)
		if _, err := os.Stat(mods); err != nil {
			mods = ""
		}
		return Kernel{Path: images[i], ModulesDir: mods, Source: "cache"}, true
	}
	return Kernel{}, false
}

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// Busybox returns the busybox the built-in profiles use:
// $PROVIUM_BUSYBOX, else /bin/busybox. It does not check that it is static.
func Busybox() (string, error) {
	bb := os.Getenv("PROVIUM_BUSYBOX")
	if bb == "" {
		bb = "/bin/busybox"
	}
	if err := readable(bb); err != nil {
		return "", fmt.Errorf("%w (%v)", ErrNoBusybox, err)
	}
	return bb, nil
}

// busyboxRootVersion changes when the generated root changes, so cached
// archives from older builds are not reused.
const busyboxRootVersion = "busybox-root/1"

// BusyboxRoot returns the cached busybox root archive for busybox,
// generating it on first use.
func BusyboxRoot(busybox string) (string, error) {
	fp, err := cache.Fingerprint(busybox)
	if err != nil {
		return "", err
	}
	key := cache.Key(busyboxRootVersion, busybox, fp)
	return initramfs.Cached(cache.Initramfs(), "busybox", key, func(w io.Writer) error {
		return initramfs.WriteBusyboxRoot(w, busybox)
	})
}

func resolveBuiltin(name string) (*Profile, error) {
	k, err := FindKernel()
	if err != nil {
		return nil, err
	}
	bb, err := Busybox()
	if err != nil {
		return nil, err
	}
	root, err := BusyboxRoot(bb)
	if err != nil {
		return nil, err
	}
	return &Profile{
		Name:       name,
		Kernel:     k.Path,
		Initrd:     root,
		InitrdFrom: bb,
		Init:       boot.DefaultInit, // absent from the busybox root: the agent stays PID 1
		Builtin:    true,
		ModulesDir: k.ModulesDir,
	}, nil
}

// versionLess orders kernel versions, comparing runs of digits by value so
// that 6.1.0-10 comes after 6.1.0-9.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		ca, ra := chunk(a)
		cb, rb := chunk(b)
		if ca != cb {
			if isDigits(ca) && isDigits(cb) {
				na, nb := strings.TrimLeft(ca, "0"), strings.TrimLeft(cb, "0")
				if len(na) != len(nb) {
					return len(na) < len(nb)
				}
				return na < nb
			}
			return ca < cb
		}
		a, b = ra, rb
	}
	return len(a) < len(b)
}

// chunk splits off the leading run of digits or of non-digits.
func chunk(s string) (string, string) {
	digit := isDigits(s[:1])
	i := 1
	for i < len(s) && isDigits(s[i:i+1]) == digit {
		i++
	}
	return s[:i], s[i:]
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
