package initramfs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/provium/provium/internal/cache"
)

// keepArchives is how many archives of one name the cache keeps: enough
// for the variants one provium build makes (transports, disks, profiles)
// and a few builds more.
const keepArchives = 16

// Cached returns the path of the archive dir/<name>-<key>.cpio, writing it
// with write if it does not exist yet. key must identify everything the
// archive is made of. It is published whole (see cache.WriteFile), so a
// concurrent reader sees no file or a complete one.
func Cached(dir, name, key string, write func(io.Writer) error) (string, error) {
	path := filepath.Join(dir, fmt.Sprintf("%s-%s.cpio", name, key[:16]))
	if _, err := os.Stat(path); err == nil {
		cache.Touch(path)
		return path, nil
	}
	if err := cache.WriteFile(path, 0o644, write); err != nil {
		return "", fmt.Errorf("initramfs cache: %w", err)
	}
	cache.Prune(dir, name+"-*.cpio", cache.Limit{MaxEntries: keepArchives}, path)
	return path, nil
}
