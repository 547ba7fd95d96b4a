// Package memfile is the file a VM's RAM lives in when its fixture is a
// memory template: QEMU maps it (memory-backend-file) instead of keeping
// the guest's memory anonymous, so that a snapshot needs to write only the
// devices' state, and a resume maps the file privately instead of reading
// the RAM out of a migration stream.
//
// A memory file is made unnamed (O_TMPFILE) in the directory its entry
// will be published in, and given a name only once the snapshot is
// complete (Link): a build killed at any point leaves nothing on disk.
// Pages the guest never touched are holes, so the file takes the disk the
// guest's memory used, not its size; Copy and Hash keep to the pages that
// hold data.
package memfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// pageSize is the unit of the zero test: the guest's page.
const pageSize = 4096

// chunk is how much is read at a time.
const chunk = 1 << 20

// Create makes an unnamed file of size bytes in dir, on dir's file
// system, to be named with Link. It is a hole throughout: it takes no
// disk until written.
func Create(dir string, size int64) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("memfile: %w", err)
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("memfile: unnamed file in %s: %w", dir, err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir, "(memory)"))
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("memfile: size %s: %w", dir, err)
	}
	return f, nil
}

// Link syncs the unnamed file f and gives it the name path, which must
// not exist, on f's file system.
func Link(f *os.File, path string) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("memfile: sync: %w", err)
	}
	// AT_EMPTY_PATH links the descriptor itself but needs a capability
	// most users lack; the descriptor's /proc link does the same for
	// anyone who may write the directory.
	err := unix.Linkat(int(f.Fd()), "", unix.AT_FDCWD, path, unix.AT_EMPTY_PATH)
	if err != nil {
		err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	}
	if err != nil {
		return fmt.Errorf("memfile: link %s: %w", path, err)
	}
	// The name must last as the content does.
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Probe reports whether files in dir can back guest memory: an unnamed
// file can be made there, sized, mapped shared, and its writes through
// the mapping read back, and it can be linked.
func Probe(dir string) error {
	f, err := Create(dir, 2*pageSize)
	if err != nil {
		return err
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, 2*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("memfile: map a file in %s shared: %w", dir, err)
	}
	copy(m[pageSize:], "provium")
	err = unix.Munmap(m)
	if err != nil {
		return fmt.Errorf("memfile: unmap: %w", err)
	}
	got := make([]byte, 7)
	if _, err := f.ReadAt(got, pageSize); err != nil || string(got) != "provium" {
		return fmt.Errorf("memfile: a shared mapping of a file in %s does not write to it (%q, %v)", dir, got, err)
	}
	// Linking through /proc is what Link needs; try it on a name that
	// is removed at once.
	tmp, err := os.CreateTemp(dir, ".memfile-probe-")
	if err != nil {
		return fmt.Errorf("memfile: %w", err)
	}
	// A name of its own, free again: probes at once do not collide.
	name := tmp.Name()
	tmp.Close()
	os.Remove(name)
	defer os.Remove(name)
	return Link(f, name)
}

// Copy makes an unnamed copy of the file at src in dir (see Create). It
// shares src's blocks where the file system can (a reflink); otherwise it
// copies the pages that hold data and are not all zero, so the copy is
// as sparse as the original, or more.
func Copy(dir, src string) (*os.File, error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("memfile: %w", err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return nil, fmt.Errorf("memfile: %w", err)
	}
	out, err := Create(dir, st.Size())
	if err != nil {
		return nil, err
	}
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
		return out, nil
	}
	err = eachPage(in, st.Size(), func(off int64, page []byte) error {
		_, err := out.WriteAt(page, off)
		return err
	})
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("memfile: copy %s: %w", src, err)
	}
	return out, nil
}

// Hash returns a digest of the file at path: of its size and of every
// page that is not all zero, with its offset. It reads only the file's
// data, not its holes, and two files that read the same have the same
// hash, however sparse each is.
func Hash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("memfile: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("memfile: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "memfile/1\n%d\n", st.Size())
	var off [8]byte
	err = eachPage(f, st.Size(), func(at int64, page []byte) error {
		binary.BigEndian.PutUint64(off[:], uint64(at))
		h.Write(off[:])
		h.Write(page)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("memfile: hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Allocated is the disk the file at path takes, in bytes: less than its
// size when it has holes.
func Allocated(path string) (int64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("memfile: %w", err)
	}
	return st.Blocks * 512, nil
}

var zeroPage [pageSize]byte

// eachPage calls fn, in order, with every page of f (of size bytes) in
// its data extents that is not all zero; the last page may be short.
func eachPage(f *os.File, size int64, fn func(off int64, page []byte) error) error {
	buf := make([]byte, chunk)
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // holes to the end
		}
		if err != nil {
			// A file system without SEEK_DATA: all of it is data.
			data, err = off, nil
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		for at := data &^ (pageSize - 1); at < hole; {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), hole-at)], at)
			if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
				return err
			}
			for p := 0; p < n; p += pageSize {
				page := buf[p:min(p+pageSize, n)]
				if bytes.Equal(page, zeroPage[:len(page)]) {
					continue
				}
				if err := fn(at+int64(p), page); err != nil {
					return err
				}
			}
			at += int64(n)
		}
		off = hole
	}
	return nil
}
