package initramfs

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// busyboxFix is how to get a usable busybox, for error messages.
const busyboxFix = "install a static one (apt-get install busybox-static) or set PROVIUM_BUSYBOX to a static busybox"

// CheckStatic returns nil if path is an ELF executable without a program
// interpreter, that is, one that runs without a C library.
func CheckStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: %w (it needs a dynamic loader)", path, ErrNotStatic)
		}
	}
	return nil
}

// rootDirs are the directories of the busybox root.
var rootDirs = []string{
	"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/etc", "/root", "/tmp",
	"/proc", "/sys", "/dev", "/var", "/run",
}

// skipApplets are left out of the busybox root: with no /sbin/init the
// agent stays PID 1 in the built-in profiles.
var skipApplets = map[string]bool{"init": true, "linuxrc": true}

const (
	etcPasswd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	etcGroup  = "root:x:0:\nnogroup:x:65534:\n"
)

// WriteBusyboxRoot writes a minimal root file system: the static busybox
// at /bin/busybox, a symlink to it for each applet (except init and
// linuxrc), the usual directories, and /etc/passwd and /etc/group with root
// and nobody.
func WriteBusyboxRoot(w io.Writer, busybox string) error {
	if err := CheckStatic(busybox); err != nil {
		return fmt.Errorf("busybox: %w; %s", err, busyboxFix)
	}
	applets, err := listApplets(busybox)
	if err != nil {
		return err
	}
	return writeRoot(w, busybox, applets)
}

// writeRoot writes the busybox root given the applet list.
func writeRoot(w io.Writer, busybox string, applets []string) error {
	a := newArchive(w)
	for _, d := range rootDirs {
		if err := a.dir(d); err != nil {
			return err
		}
	}
	if err := a.hostFile("/bin/busybox", busybox, 0o755); err != nil {
		return fmt.Errorf("busybox: %w", err)
	}
	for _, app := range applets {
		if app == "bin/busybox" {
			continue
		}
		if err := a.symlink(app, "/bin/busybox"); err != nil {
			return err
		}
	}
	for _, f := range []struct{ name, data string }{{"/etc/group", etcGroup}, {"/etc/passwd", etcPasswd}} {
		if err := a.file(f.name, 0o644, int64(len(f.data)), strings.NewReader(f.data)); err != nil {
			return err
		}
	}
	return a.close()
}

// listApplets asks busybox for its applets as installation paths
// ("bin/ls", "usr/sbin/arping").
func listApplets(busybox string) ([]string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(busybox, "--list-full")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("busybox: %s --list-full: %v %s", busybox, err, strings.TrimSpace(stderr.String()))
	}
	var applets []string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.Trim(strings.TrimSpace(line), "/")
		if line == "" {
			continue
		}
		base := line[strings.LastIndexByte(line, '/')+1:]
		if skipApplets[base] {
			continue
		}
		applets = append(applets, line)
	}
	if len(applets) == 0 {
		return nil, fmt.Errorf("busybox: %s --list-full listed no applets", busybox)
	}
	return applets, nil
}
