package initramfs

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/provium/provium/internal/cachedir"
)

// keepArchives is how many archives of one name the cache keeps: enough
// for the variants one provium build makes (transports, disks, profiles)
// and a few builds more.
const keepArchives = 16

// Cached returns the path of the archive dir/<name>-<hash>.cpio, where
// hash is derived from key, writing it with write if it does not exist
// yet. The file is written under a temporary name and renamed into place,
// so a concurrent reader (another provium process) sees either no file or
// a complete one; two concurrent writers both succeed and the last rename
// wins with the same contents.
func Cached(dir, name string, key []byte, write func(io.Writer) error) (string, error) {
	sum := sha256.Sum256(key)
	path := filepath.Join(dir, fmt.Sprintf("%s-%s.cpio", name, hex.EncodeToString(sum[:])[:16]))
	if _, err := os.Stat(path); err == nil {
		cachedir.Used(path)
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("initramfs cache: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+name+"-*.tmp")
	if err != nil {
		return "", fmt.Errorf("initramfs cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := write(bw); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("initramfs cache: %w", err)
	}
	cachedir.Prune(dir, name+"-*.cpio", keepArchives)
	return path, nil
}
