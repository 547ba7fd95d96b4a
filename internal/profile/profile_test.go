package profile

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/initramfs"
)

func write(t *testing.T, path, data string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// isolate points every lookup of the built-in profiles at empty places.
func isolate(t *testing.T) string {
	t.Helper()
	cache := t.TempDir()
	t.Setenv("PROVIUM_CACHE", cache)
	t.Setenv("PROVIUM_KERNEL", "")
	t.Setenv("PROVIUM_MODULES", "")
	t.Setenv("PROVIUM_BUSYBOX", "")
	boot, mods := hostBootDir, hostModulesDir
	hostBootDir, hostModulesDir = filepath.Join(cache, "no-boot"), filepath.Join(cache, "no-modules")
	t.Cleanup(func() { hostBootDir, hostModulesDir = boot, mods })
	return cache
}

func TestLoad(t *testing.T) {
	isolate(t)
	root := t.TempDir()
	write(t, filepath.Join(root, "provium.toml"), `
[profile.outer]
kernel = "k/bzImage"
initrd = "i.cpio"
`)
	write(t, filepath.Join(root, "proj", "provium.toml"), `
[profile.minimal]
kernel = "../kernel/out/bzImage"
initrd = "testdata/rootfs.cpio.gz"
rootfs = "/abs/disk.img"
append = "loglevel=7"

[profile.disk]
kernel = "/boot/vmlinuz"
rootfs = "disk.img"
init = "/lib/systemd/systemd"
`)
	deep := filepath.Join(root, "proj", "tests", "sub")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	proj := filepath.Join(root, "proj")

	for _, tc := range []struct {
		name  string
		start string
		path  string
		names []string
	}{
		{"in the directory", proj, filepath.Join(proj, "provium.toml"), []string{"default", "disk", "minimal"}},
		{"nearest parent wins", deep, filepath.Join(proj, "provium.toml"), []string{"default", "disk", "minimal"}},
		{"outer", root, filepath.Join(root, "provium.toml"), []string{"default", "minimal", "outer"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.start)
			if err != nil {
				t.Fatal(err)
			}
			if c.Path != tc.path || c.Dir != filepath.Dir(tc.path) {
				t.Errorf("Path, Dir = %s, %s; want %s", c.Path, c.Dir, tc.path)
			}
			if got := c.Names(); !reflect.DeepEqual(got, tc.names) {
				t.Errorf("Names = %q, want %q", got, tc.names)
			}
		})
	}

	c, err := Load(deep)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Profile{
		"minimal": {Name: "minimal", Kernel: filepath.Join(root, "kernel/out/bzImage"),
			Initrd: filepath.Join(proj, "testdata/rootfs.cpio.gz"), Rootfs: "/abs/disk.img",
			Init: "/sbin/init", Append: "loglevel=7"},
		"disk": {Name: "disk", Kernel: "/boot/vmlinuz", Rootfs: filepath.Join(proj, "disk.img"),
			Init: "/lib/systemd/systemd"},
	}
	for name, w := range want {
		if got := *c.profiles[name]; !reflect.DeepEqual(got, w) {
			t.Errorf("profile %s =\n%+v\nwant\n%+v", name, got, w)
		}
	}

	// A toml profile shadows the built-in of the same name and its
	// files are checked when asked for.
	_, err = c.Get("minimal")
	if err == nil || !strings.Contains(err.Error(), "profile minimal: kernel") {
		t.Errorf("Get(minimal) with a missing kernel: %v", err)
	}
	write(t, filepath.Join(root, "kernel/out/bzImage"), "k")
	write(t, filepath.Join(proj, "testdata/rootfs.cpio.gz"), "i")
	_, err = c.Get("minimal")
	if err == nil || !strings.Contains(err.Error(), "rootfs") {
		t.Errorf("Get(minimal) with a missing rootfs: %v", err)
	}
}

func TestLoadNone(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != "" {
		// Only possible if a provium.toml sits above the temp directory.
		t.Skipf("found %s above %s", c.Path, dir)
	}
	if got := c.Names(); !reflect.DeepEqual(got, []string{"default", "minimal"}) {
		t.Errorf("Names = %q", got)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		toml string
		want []string
	}{
		{"missing kernel", "[profile.a]\ninitrd = \"i\"\n", []string{`profile "a"`, "kernel is required"}},
		{"neither initrd nor rootfs", "[profile.b]\nkernel = \"k\"\n", []string{`profile "b"`, "initrd or a rootfs"}},
		{"unknown profile key", "[profile.a]\nkernel = \"k\"\ninitrd = \"i\"\nkernal = \"x\"\n", []string{"unknown key", "profile.a.kernal"}},
		{"unknown table", "[profiles.a]\nkernel = \"k\"\n", []string{"unknown key", "profiles"}},
		{"wrong type", "[profile.a]\nkernel = 3\ninitrd = \"i\"\n", []string{"kernel"}},
		{"syntax", "[profile.a\n", []string{"provium.toml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := write(t, filepath.Join(dir, "provium.toml"), tc.toml)
			_, err := Load(dir)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v, want ErrInvalid", err)
			}
			for _, w := range append(tc.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestUnknownProfile(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "provium.toml"), "[profile.zeta]\nkernel = \"k\"\ninitrd = \"i\"\n[profile.alpha]\nkernel = \"k\"\ninitrd = \"i\"\n")
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get("x")
	if !errors.Is(err, ErrUnknownProfile) {
		t.Fatalf("error %v, want ErrUnknownProfile", err)
	}
	if want := `unknown profile "x" (known: alpha, default, minimal, zeta)`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestFindKernel(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     bool // set PROVIUM_KERNEL
		envMods bool // set PROVIUM_MODULES
		cache   []string
		host    bool
		want    string // relative to the test's directory
		mods    string
		err     error
	}{
		{name: "nothing", err: ErrNoKernel},
		{name: "host", host: true, want: "no-boot/vmlinuz-@", mods: "no-modules/@"},
		{name: "cache before host", cache: []string{"6.1.0-9"}, host: true,
			want: "kernel/boot/vmlinuz-6.1.0-9", mods: "kernel/lib/modules/6.1.0-9"},
		{name: "newest cached", cache: []string{"6.1.0-10-cloud", "6.1.0-9-cloud"},
			want: "kernel/boot/vmlinuz-6.1.0-10-cloud", mods: "kernel/lib/modules/6.1.0-10-cloud"},
		{name: "env before cache", env: true, cache: []string{"6.1.0-9"}, want: "env/bzImage"},
		{name: "env with modules", env: true, envMods: true, want: "env/bzImage", mods: "env/modules"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := isolate(t)
			rel := hostRelease(t)
			fix := func(p string) string {
				if p == "" {
					return ""
				}
				return filepath.Join(dir, strings.ReplaceAll(p, "@", rel))
			}
			if tc.env {
				t.Setenv("PROVIUM_KERNEL", write(t, fix("env/bzImage"), "k"))
			}
			if tc.envMods {
				os.MkdirAll(fix("env/modules"), 0o755)
				t.Setenv("PROVIUM_MODULES", fix("env/modules"))
			}
			for _, v := range tc.cache {
				write(t, filepath.Join(dir, "kernel/boot/vmlinuz-"+v), "k")
				os.MkdirAll(filepath.Join(dir, "kernel/lib/modules", v), 0o755)
			}
			if tc.host {
				write(t, fix("no-boot/vmlinuz-@"), "k")
				os.MkdirAll(fix("no-modules/@"), 0o755)
			}
			k, err := FindKernel()
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if k.Path != fix(tc.want) || k.ModulesDir != fix(tc.mods) {
				t.Errorf("FindKernel = %+v, want %s with modules %s", k, fix(tc.want), fix(tc.mods))
			}
		})
	}
}

func TestNoKernelMessage(t *testing.T) {
	isolate(t)
	c, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get("default")
	if !errors.Is(err, ErrNoKernel) || !strings.Contains(err.Error(), "provium setup") || !strings.Contains(err.Error(), "PROVIUM_KERNEL") {
		t.Errorf("error %v, want ErrNoKernel with the fix", err)
	}
	t.Setenv("PROVIUM_KERNEL", "/nonexistent/bzImage")
	if _, err := c.Get("default"); err == nil || !strings.Contains(err.Error(), "PROVIUM_KERNEL") {
		t.Errorf("missing PROVIUM_KERNEL file: %v", err)
	}
}

func TestBuiltin(t *testing.T) {
	cache := isolate(t)
	if err := initramfs.CheckStatic("/bin/busybox"); err != nil {
		t.Skipf("no static busybox: %v", err)
	}
	kernel := write(t, filepath.Join(t.TempDir(), "bzImage"), "k")
	t.Setenv("PROVIUM_KERNEL", kernel)
	c, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Get("default")
	if err != nil {
		t.Fatal(err)
	}
	if p.Kernel != kernel || !p.Builtin || p.Init != "/sbin/init" || p.Name != "default" {
		t.Errorf("default = %+v", p)
	}
	if filepath.Dir(p.Initrd) != filepath.Join(cache, "initramfs") {
		t.Errorf("initrd %s not in the cache", p.Initrd)
	}
	m, err := c.Get("minimal")
	if err != nil {
		t.Fatal(err)
	}
	if m.Initrd != p.Initrd || m.Name != "minimal" {
		t.Errorf("minimal = %+v, want the same root as default", m)
	}
}

func TestDynamicBusybox(t *testing.T) {
	isolate(t)
	t.Setenv("PROVIUM_KERNEL", write(t, filepath.Join(t.TempDir(), "bzImage"), "k"))
	t.Setenv("PROVIUM_BUSYBOX", "/bin/sh") // dynamically linked everywhere we run
	if err := initramfs.CheckStatic("/bin/sh"); err == nil {
		t.Skip("/bin/sh is static here")
	}
	c, _ := Load(t.TempDir())
	_, err := c.Get("default")
	if !errors.Is(err, initramfs.ErrNotStatic) || !strings.Contains(err.Error(), "busybox-static") {
		t.Errorf("error %v, want ErrNotStatic with the fix", err)
	}
}

func hostRelease(t *testing.T) string {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	return unix.ByteSliceToString(uts.Release[:])
}

func TestVersionLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		less bool
	}{
		{"6.1.0-9", "6.1.0-10", true},
		{"6.1.0-10", "6.1.0-9", false},
		{"5.10.0-1", "6.1.0-1", true},
		{"6.1.0-9-cloud-amd64", "6.1.0-9-amd64", false},
		{"6.1", "6.1", false},
	} {
		if got := versionLess(tc.a, tc.b); got != tc.less {
			t.Errorf("versionLess(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}
