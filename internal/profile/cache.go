package profile

import (
	"fmt"
	"os"
	"path/filepath"
)

// CacheDir is where Provium keeps what it downloads and generates:
// $PROVIUM_CACHE, else provium in the user's cache directory.
func CacheDir() string {
	if d := os.Getenv("PROVIUM_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "provium")
	}
	// No $HOME (a bare CI container): still one cache per user.
	return filepath.Join(os.TempDir(), fmt.Sprintf("provium-cache-%d", os.Getuid()))
}

// KernelCacheDir is where `provium setup` extracts a kernel package: the
// kernel in boot/vmlinuz-<ver>, its modules in lib/modules/<ver>.
func KernelCacheDir() string {
	return filepath.Join(CacheDir(), "kernel")
}
