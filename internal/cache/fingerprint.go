package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// Fingerprint identifies the current version of the file at path without
// reading it: its device, inode, size, and modification and change times.
// A file rewritten in place gets a new change time, which no user can set
// back, so two contents never share a fingerprint; a copy of a file gets a
// new one, which costs at most a hash.
func Fingerprint(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return "", fmt.Errorf("fingerprint %s: no file status", path)
	}
	return fmt.Sprintf("%d:%d:%d:%d.%d:%d.%d", s.Dev, s.Ino, s.Size,
		s.Mtim.Sec, s.Mtim.Nsec, s.Ctim.Sec, s.Ctim.Nsec), nil
}

// keepHashes bounds the remembered hashes; each is a 64-byte file.
const keepHashes = 4096

var digests sync.Map // kind and fingerprint -> digest

// Hash returns the SHA-256 of the content of the file at path, in hex. It
// is remembered by the file's fingerprint, in this process and in the
// cache, so that a kernel of 50 MB is read once and not at every run.
func Hash(path string) (string, error) {
	return Digest("", path, sha256File)
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Digest returns digest(path), a hex SHA-256 of some kind of the file at
// path, remembered as Hash's is: by the kind and the file's fingerprint,
// in this process and in the cache. Kind "" is Hash's.
func Digest(kind, path string, digest func(path string) (string, error)) (string, error) {
	fp, err := Fingerprint(path)
	if err != nil {
		return "", err
	}
	id := kind + "\n" + fp
	if v, ok := digests.Load(id); ok {
		return v.(string), nil
	}
	memo := filepath.Join(Hashes(), memoName(kind, fp))
	if b, err := os.ReadFile(memo); err == nil && isHash(strings.TrimSpace(string(b))) {
		sum := strings.TrimSpace(string(b))
		Touch(memo)
		digests.Store(id, sum)
		return sum, nil
	}
	sum, err := digest(path)
	if err != nil {
		return "", err
	}
	// The file may have changed while it was read: remember the digest
	// only if it still is the version fingerprinted.
	if after, err := Fingerprint(path); err == nil && after == fp {
		digests.Store(id, sum)
		if WriteFile(memo, 0o644, func(w io.Writer) error {
			_, err := io.WriteString(w, sum+"\n")
			return err
		}) == nil {
			Prune(Hashes(), "*", Limit{MaxEntries: keepHashes}, memo)
		}
	}
	return sum, nil
}

// memoName is the file of a digest's memo; Hash's keep the names they
// always had.
func memoName(kind, fp string) string {
	name := "hash-memo/1\n" + fp
	if kind != "" {
		name = "digest-memo/1\n" + kind + "\n" + fp
	}
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:16])
}

func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// Key is a hex SHA-256 of parts, each length-prefixed so that no two lists
// of parts give the same key.
func Key(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s\n", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}
