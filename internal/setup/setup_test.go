package setup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fake is a host where commands are recorded and simulated.
type fake struct {
	cmds     []string
	failOn   string
	haveQEMU bool
	depends  string
}

func (f *fake) run(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	line := strings.Join(append([]string{name}, args...), " ")
	f.cmds = append(f.cmds, line)
	if f.failOn != "" && strings.Contains(line, f.failOn) {
		return nil, fmt.Errorf("%s: exit status 100", line)
	}
	switch {
	case name == "apt-cache":
		return []byte(f.depends), nil
	case name == "apt-get" && args[0] == "download":
		return nil, os.WriteFile(filepath.Join(dir, args[1]+"_1_amd64.deb"), []byte("deb"), 0o644)
	case name == "dpkg-deb":
		dest := args[2]
		for _, p := range []string{"boot/vmlinuz-6.1.0-56-cloud-amd64", "lib/modules/6.1.0-56-cloud-amd64/modules.order"} {
			os.MkdirAll(filepath.Join(dest, filepath.Dir(p)), 0o755)
			os.WriteFile(filepath.Join(dest, p), nil, 0o644)
		}
	case strings.Contains(line, "install"):
		f.haveQEMU = true
	}
	return nil, nil
}

func (f *fake) lookPath(name string) (string, error) {
	switch name {
	case "apt-get", "sudo":
		return "/usr/bin/" + name, nil
	case "qemu-system-x86_64":
		if f.haveQEMU {
			return "/usr/bin/" + name, nil
		}
	}
	return "", exec.ErrNotFound
}

const depends = "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-56-cloud-amd64\n"

func newHost(t *testing.T, f *fake, busybox string) (*host, *bytes.Buffer) {
	dir := t.TempDir()
	var out bytes.Buffer
	lists := filepath.Join(dir, "lists")
	os.MkdirAll(lists, 0o755)
	return &host{
		out: &out, run: f.run, lookPath: f.lookPath, root: true,
		busybox: busybox, qemu: "qemu-system-x86_64",
		kernels: filepath.Join(dir, "cache", "kernel"), lists: lists,
	}, &out
}

// staticELF writes a file that passes initramfs.CheckStatic.
func staticELF(t *testing.T) string {
	hdr := make([]byte, 64)
	copy(hdr, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1})
	hdr[16], hdr[18], hdr[20] = 2, 62, 1 // ET_EXEC, x86-64, version 1
	hdr[52], hdr[54], hdr[58] = 64, 56, 64
	p := filepath.Join(t.TempDir(), "busybox")
	os.WriteFile(p, hdr, 0o755)
	return p
}

func TestSetupFromScratch(t *testing.T) {
	t.Setenv("PROVIUM_BUSYBOX", "")
	f := &fake{depends: depends}
	h, out := newHost(t, f, filepath.Join(t.TempDir(), "no-busybox"))
	if err := h.setup(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := []string{
		"apt-get update",
		"apt-get install -y --no-install-recommends qemu-system-x86 busybox-static",
		"apt-cache depends linux-image-cloud-amd64",
		"apt-get download linux-image-6.1.0-56-cloud-amd64",
	}
	if got := f.cmds[:len(want)]; !reflect.DeepEqual(got, want) {
		t.Errorf("commands =\n%q\nwant\n%q", got, want)
	}
	if last := f.cmds[len(f.cmds)-1]; !strings.HasPrefix(last, "dpkg-deb -x ") {
		t.Errorf("last command %q, want dpkg-deb -x", last)
	}
	if _, err := os.Stat(filepath.Join(h.kernels, "boot/vmlinuz-6.1.0-56-cloud-amd64")); err != nil {
		t.Error(err)
	}
	ents, _ := os.ReadDir(filepath.Dir(h.kernels))
	if len(ents) != 1 {
		t.Errorf("cache holds %d entries; temporary directories left behind?", len(ents))
	}
	t.Logf("output:\n%s", out)
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.HasPrefix(line, "setup: ") {
			t.Errorf("unexpected output line %q", line)
		}
	}
}

func TestSetupIdempotent(t *testing.T) {
	f := &fake{depends: depends, haveQEMU: true}
	bb := staticELF(t)
	t.Setenv("PROVIUM_BUSYBOX", bb)
	h, out := newHost(t, f, bb)
	os.MkdirAll(filepath.Join(h.kernels, "boot"), 0o755)
	os.WriteFile(filepath.Join(h.kernels, "boot", "vmlinuz-6.1.0-1-cloud-amd64"), nil, 0o644)
	if err := h.setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.cmds) != 0 {
		t.Errorf("ran %q with everything present", f.cmds)
	}
	if n := strings.Count(out.String(), ": ok"); n != 3 {
		t.Errorf("want three ok lines:\n%s", out)
	}
}

func TestSetupFreshListsSkipUpdate(t *testing.T) {
	f := &fake{depends: depends, haveQEMU: true}
	bb := staticELF(t)
	t.Setenv("PROVIUM_BUSYBOX", bb)
	h, _ := newHost(t, f, bb)
	os.WriteFile(filepath.Join(h.lists, "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4"), nil, 0o644)
	if err := h.setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.cmds[0] != "apt-cache depends linux-image-cloud-amd64" {
		t.Errorf("commands %q: fresh lists must not be updated", f.cmds)
	}
	old := time.Now().Add(-48 * time.Hour)
	os.Chtimes(filepath.Join(h.lists, "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4"), old, old)
	if fresh(h.lists, 24*time.Hour) {
		t.Error("two-day-old lists count as fresh")
	}
}

func TestSetupErrors(t *testing.T) {
	bb := staticELF(t)
	t.Setenv("PROVIUM_BUSYBOX", bb)
	for _, tc := range []struct {
		name    string
		f       *fake
		root    bool
		noApt   bool
		want    error
		wantMsg string
	}{
		{name: "no apt", f: &fake{}, noApt: true, want: ErrUnsupported},
		{name: "no kernel package", f: &fake{haveQEMU: true, depends: "linux-image-cloud-amd64\n"}, root: true, want: ErrNoKernelPackage},
		{name: "download fails", f: &fake{haveQEMU: true, depends: depends, failOn: "download"}, root: true, wantMsg: "exit status 100"},
		{name: "extract fails", f: &fake{haveQEMU: true, depends: depends, failOn: "dpkg-deb"}, root: true, wantMsg: "dpkg-deb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newHost(t, tc.f, bb)
			h.root = tc.root
			if tc.noApt {
				h.lookPath = func(string) (string, error) { return "", exec.ErrNotFound }
			}
			err := h.setup(context.Background())
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %v, want %v %q", err, tc.want, tc.wantMsg)
			}
			if k, _ := filepath.Glob(filepath.Join(h.kernels, "boot", "*")); len(k) > 0 {
				t.Errorf("a failed setup left a kernel: %q", k)
			}
		})
	}
}

func TestSudo(t *testing.T) {
	t.Setenv("PROVIUM_BUSYBOX", "")
	f := &fake{depends: depends}
	h, _ := newHost(t, f, filepath.Join(t.TempDir(), "none"))
	h.root = false
	if err := h.setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.cmds[0] != "sudo apt-get update" || !strings.HasPrefix(f.cmds[1], "sudo apt-get install") {
		t.Errorf("commands %q: package changes must go through sudo", f.cmds)
	}
	for _, c := range f.cmds[2:] {
		if strings.HasPrefix(c, "sudo") {
			t.Errorf("%q: the kernel download needs no root", c)
		}
	}
}

func TestParseDepends(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{depends, "linux-image-6.1.0-56-cloud-amd64"},
		{"linux-image-cloud-amd64\n  Depends: <linux-image-6.1.0-9-cloud-amd64>\n", "linux-image-6.1.0-9-cloud-amd64"},
		{"linux-image-cloud-amd64\n  Depends: initramfs-tools\n  Depends: linux-image-6.1.0-56-cloud-amd64\n", "linux-image-6.1.0-56-cloud-amd64"},
		{"", ""},
	} {
		if got := parseDepends([]byte(tc.in)); got != tc.want {
			t.Errorf("parseDepends(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
