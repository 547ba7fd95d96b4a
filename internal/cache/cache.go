// Package cache is Provium's cache on disk: where it is and what lives
// where in it, how an entry is published so that a reader sees it whole or
// not at all, how a file is fingerprinted and its content hashed, and how
// the least recently used entries make room. Every cache of Provium (the
// fixture snapshots, the derived initramfs archives, the extracted kernels,
// the kernel that provium setup fetched, the accelerator probe's answer)
// uses it.
//
// The cache is $PROVIUM_CACHE, else provium in the user's cache directory
// (~/.cache/provium), else a directory of the user's own under the temporary
// directory.
//
// Several provium processes may use one cache at once: publishing is a
// rename of a complete, synced file or directory, and whoever removes an
// entry holds its lock (see Lock). A cache that cannot be written to (a CI
// cache restored read-only) can still be read from.
package cache

import (
	"fmt"
	"os"
	"path/filepath"
)

// Dir is the cache's root.
func Dir() string {
	if d := os.Getenv("PROVIUM_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "provium")
	}
	// No $HOME (a bare CI container): still one cache per user.
	return filepath.Join(os.TempDir(), fmt.Sprintf("provium-cache-%d", os.Getuid()))
}

// The cache's parts.
func Fixtures() string  { return filepath.Join(Dir(), "fixtures") }  // fixture snapshots, one directory an entry
func Initramfs() string { return filepath.Join(Dir(), "initramfs") } // derived initramfs archives
func Kernels() string   { return filepath.Join(Dir(), "vmlinux") }   // kernels extracted from bzImages, and what booting them taught
func Hashes() string    { return filepath.Join(Dir(), "hashes") }    // content hashes of files, by fingerprint
func Accel() string     { return filepath.Join(Dir(), "accel") }     // the accelerator probe's answer
func Templates() string { return filepath.Join(Dir(), "templates") } // whether QEMU can save memory templates
func Modules() string   { return filepath.Join(Dir(), "modules") }   // kernel modules resolved for guests, by module tree

// KernelPackage is where `provium setup` extracts a kernel package: the
// kernel in boot/vmlinuz-<ver>, its modules in lib/modules/<ver>.
func KernelPackage() string { return filepath.Join(Dir(), "kernel") }
