// Package initramfs writes the cpio (newc) archives Provium boots guests
// with: the shim (agent and transport modules) appended to a profile's own
// initramfs, archives of files injected at boot, and a minimal busybox root
// for the built-in profiles. It also caches generated archives by content.
//
// The Linux kernel unpacks concatenated archives in order, later entries
// overriding earlier ones, so an archive here never needs to know what the
// archive before it holds. Two consequences shape the entries written:
// paths are relative ("bin/ls", as the kernel expects), and a directory
// entry re-applies its mode to an existing directory, so directories are
// written with their conventional modes (/tmp 1777, /proc 0555, ...).
package initramfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/cavaliergopher/cpio"
)

// ErrNotStatic means a binary meant for the guest is dynamically linked;
// the guest has no C library to run it with.
var ErrNotStatic = errors.New("not a statically linked executable")

// dirModes are the permissions of directories that have a convention: a
// directory entry chmods an existing directory of the same name, so writing
// 0755 for /tmp would break a user initramfs.
var dirModes = map[string]cpio.FileMode{
	"tmp":     0o1777,
	"var/tmp": 0o1777,
	"root":    0o700,
	"proc":    0o555,
	"sys":     0o555,
}

func dirMode(name string) cpio.FileMode {
	if m, ok := dirModes[name]; ok {
		return m
	}
	return 0o755
}

// archive is a cpio writer that writes each directory once and creates
// parent directories on demand.
type archive struct {
	w    *cpio.Writer
	dirs map[string]bool
}

func newArchive(w io.Writer) *archive {
	return &archive{w: cpio.NewWriter(w), dirs: map[string]bool{}}
}

// clean turns a guest path into the relative form the kernel expects and
// refuses paths that do not name anything below the root.
func clean(name string) (string, error) {
	c := strings.TrimPrefix(path.Clean("/"+name), "/")
	if c == "" {
		return "", fmt.Errorf("invalid guest path %q", name)
	}
	return c, nil
}

func (a *archive) dir(name string) error {
	name, err := clean(name)
	if err != nil {
		return err
	}
	if a.dirs[name] {
		return nil
	}
	if err := a.parents(name); err != nil {
		return err
	}
	a.dirs[name] = true
	return a.w.WriteHeader(&cpio.Header{
		Name:  name,
		Mode:  cpio.TypeDir | dirMode(name),
		Links: 2,
	})
}

func (a *archive) parents(name string) error {
	if p := path.Dir(name); p != "." {
		return a.dir(p)
	}
	return nil
}

// file writes a regular file of the given size read from r.
func (a *archive) file(name string, mode os.FileMode, size int64, r io.Reader) error {
	name, err := clean(name)
	if err != nil {
		return err
	}
	if err := a.parents(name); err != nil {
		return err
	}
	err = a.w.WriteHeader(&cpio.Header{
		Name:  name,
		Mode:  cpio.TypeReg | cpioPerm(mode),
		Size:  size,
		Links: 1,
	})
	if err != nil {
		return err
	}
	n, err := io.CopyN(a.w, r, size)
	if err != nil {
		return fmt.Errorf("copy %s: %w (after %d of %d bytes; did it change while being read?)", name, err, n, size)
	}
	return nil
}

// hostFile streams the host file src to guest path name, keeping its mode.
func (a *archive) hostFile(name, src string, mode os.FileMode) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", src)
	}
	if mode == 0 {
		mode = st.Mode()
	}
	if err := a.file(name, mode, st.Size(), f); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	return nil
}

func (a *archive) symlink(name, target string) error {
	name, err := clean(name)
	if err != nil {
		return err
	}
	if err := a.parents(name); err != nil {
		return err
	}
	// newc stores a symlink's target as its data.
	err = a.w.WriteHeader(&cpio.Header{
		Name:  name,
		Mode:  cpio.TypeSymlink | 0o777,
		Size:  int64(len(target)),
		Links: 1,
	})
	if err != nil {
		return err
	}
	_, err = io.WriteString(a.w, target)
	return err
}

func (a *archive) close() error { return a.w.Close() }

func cpioPerm(m os.FileMode) cpio.FileMode {
	p := cpio.FileMode(m.Perm())
	if m&os.ModeSetuid != 0 {
		p |= cpio.ModeSetuid
	}
	if m&os.ModeSetgid != 0 {
		p |= cpio.ModeSetgid
	}
	if m&os.ModeSticky != 0 {
		p |= cpio.ModeSticky
	}
	return p
}
