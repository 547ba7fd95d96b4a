package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire"
)

// maxFile bounds a file read so that it fits in one reply.
const maxFile = wire.MaxMessage - 4096

// The file operations open on the identity's thread, so the kernel checks
// access against that identity's credentials.

func (id *identity) readFile(r request) (*wire.Message, error) {
	m := r.msg
	var req wire.Path
	if err := m.Decode(&req); err != nil {
		return nil, err
	}
	data, err := readFile(req.Path)
	if err != nil {
		return nil, fmt.Errorf("read_file %s: %w", req.Path, err)
	}
	return wire.Reply(m.ID, nil, data)
}

// readFile reads a whole file of up to maxFile bytes. Files in /proc and
// /sys report size 0, so it reads to the end rather than trusting Stat.
//
// Past readFreely bytes it also stops at half the guest's available
// memory: the reply needs the data once more on its way out, and a file
// with no end (/dev/zero) must fail with an error, not have the kernel's
// OOM killer end the agent.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Size the buffer from Stat when it knows: growing a 20 MiB buffer by
	// doubling copies and faults in twice the memory, which is slow in an
	// emulated guest. The read still goes to EOF, whatever Stat said.
	var buf bytes.Buffer
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > 0 && st.Size() <= maxFile {
		buf.Grow(int(st.Size()) + bytes.MinRead)
	}
	n, err := buf.ReadFrom(io.LimitReader(f, readFreely+1))
	if err != nil {
		return nil, err
	}
	limit := int64(maxFile)
	if n > readFreely {
		if avail, err := memAvailable(); err == nil {
			limit = max(min(limit, avail/2), readFreely)
		}
		if _, err := buf.ReadFrom(io.LimitReader(f, limit+1-n)); err != nil {
			return nil, err
		}
	}
	data := buf.Bytes()
	if int64(len(data)) > limit {
		why := ""
		if limit < maxFile {
			why = ", half of the guest's available memory"
		}
		return nil, fmt.Errorf("larger than %d bytes%s: %w", limit, why, unix.EFBIG)
	}
	return data, nil
}

// readFreely is how much readFile reads before it looks at the guest's
// memory.
const readFreely = 16 << 20

// memAvailable returns MemAvailable from /proc/meminfo, in bytes; a
// variable so tests can pretend a small guest.
var memAvailable = func() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo: MemAvailable %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("/proc/meminfo has no MemAvailable")
}

func (id *identity) writeFile(r request) (*wire.Message, error) {
	m := r.msg
	var req wire.WriteFile
	if err := m.Decode(&req); err != nil {
		return nil, err
	}
	if err := writeFile(req.Path, m.Blob(0), req.Mode); err != nil {
		return nil, fmt.Errorf("write_file %s: %w", req.Path, err)
	}
	return wire.Reply(m.ID, nil)
}

// writeFile creates or truncates path and writes data. A mode given by the
// host is applied exactly, umask and special bits included; with mode 0 the
// file is created 0644 (less the umask) and an existing file keeps its mode.
func writeFile(path string, data []byte, mode uint32) error {
	if mode&^0o7777 != 0 {
		return fmt.Errorf("mode %#o has bits outside 07777: %w", mode, unix.EINVAL)
	}
	perm := mode
	if perm == 0 {
		perm = 0o644
	}
	// unix.Open rather than os.OpenFile: os.FileMode has no place for the
	// raw setuid/setgid/sticky bits a test may ask for.
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, perm)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	if mode != 0 {
		if err := unix.Fchmod(fd, mode); err != nil {
			f.Close()
			return &os.PathError{Op: "chmod", Path: path, Err: err}
		}
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Actions of syslog(2) that x/sys/unix does not name.
const syslogActionSizeBuffer = 10

func (id *identity) dmesg(r request) (*wire.Message, error) {
	data, err := kernelLog()
	if err != nil {
		return nil, fmt.Errorf("dmesg: %w", err)
	}
	return wire.Reply(r.msg.ID, nil, data)
}

// kernelLog returns the whole kernel ring buffer.
func kernelLog() ([]byte, error) {
	size, err := unix.Klogctl(syslogActionSizeBuffer, nil)
	if err != nil {
		return nil, fmt.Errorf("syslog size: %w", err)
	}
	if size <= 0 || size > maxFile {
		return nil, fmt.Errorf("syslog buffer of %d bytes: %w", size, unix.EINVAL)
	}
	buf := make([]byte, size)
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil {
		return nil, fmt.Errorf("syslog read: %w", err)
	}
	return buf[:n], nil
}

// vfsMount is a file system at its usual place.
type vfsMount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

// mount mounts it, making its mount point first. EBUSY, the same file
// system already there, is what was asked.
func (mt vfsMount) mount() error {
	if err := os.MkdirAll(mt.target, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(mt.source, mt.target, mt.fstype, mt.flags, mt.data); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount %s on %s: %w", mt.fstype, mt.target, err)
	}
	return nil
}

// vfsMounts are the file systems OpMountVFS makes available.
var vfsMounts = []vfsMount{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"securityfs", "/sys/kernel/security", "securityfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, ""},
}

// mountVFS mounts those of vfsMounts the kernel has: a kernel built
// without securityfs still gets the others.
func (id *identity) mountVFS(r request) (*wire.Message, error) {
	for _, mt := range vfsMounts {
		// Reread the table each time: /proc may have just been mounted.
		if mounted(mt.target, mt.fstype) || !kernelHas(mt.fstype) {
			continue
		}
		if err := mt.mount(); err != nil {
			return nil, fmt.Errorf("mount_vfs: %w", err)
		}
	}
	return wire.Reply(r.msg.ID, nil)
}

// kernelHas reports whether the kernel knows the file system type, from
// /proc/filesystems. Without /proc it says yes, and the mount decides.
func kernelHas(fstype string) bool {
	f, err := os.Open("/proc/filesystems")
	if err != nil {
		return true
	}
	defer f.Close()
	return inFilesystems(f, fstype)
}

// inFilesystems looks for fstype in a list in the format of
// /proc/filesystems: an optional "nodev", then the name, a line each.
func inFilesystems(r io.Reader, fstype string) bool {
	s := bufio.NewScanner(r)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) > 0 && f[len(f)-1] == fstype {
			return true
		}
	}
	return false
}

// mounted reports whether a file system of type fstype is mounted on
// target, according to /proc/self/mounts. Without /proc it says no, and
// the mount itself decides.
func mounted(target, fstype string) bool {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return false
	}
	defer f.Close()
	return inMountTable(f, target, fstype)
}

// inMountTable looks for target with type fstype in a table in the format of
// /proc/self/mounts.
func inMountTable(r io.Reader, target, fstype string) bool {
	s := bufio.NewScanner(r)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) >= 3 && unescapeMount(f[1]) == target && f[2] == fstype {
			return true
		}
	}
	return false
}

// unescapeMount undoes the octal escapes (\040 for space, ...) of mount
// table fields.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
