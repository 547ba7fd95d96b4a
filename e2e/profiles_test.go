package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestProfileRootfs boots a provium.toml profile whose only image is a
// disk: the shim is the whole initramfs and the disk becomes a read-only /.
func TestProfileRootfs(t *testing.T) {
	env := NewEnv(t, nil)
	diskProfile(t, env, "disk", map[string]string{"etc/marker": "from the disk\n"}, `append = "loglevel=6"`)
	env.Write("tests/disk.lua", `
local vm = provium.create("disk"):boot({memory = "256M"})
test("the disk is the root", function()
  assert_eq("from the disk\n", vm:read_file("/etc/marker"))
  assert_contains(vm:exec("grep ' / ' /proc/mounts").stdout, "ro")
  -- /dev moved onto the disk's root with what is mounted below it
  assert_contains(vm:exec("grep ' /dev/pts ' /proc/mounts").stdout, "devpts")
  assert(not vm:exec("touch /etc/new").ok, "the root is read-only")
end)
test("the kernel got the profile's append", function()
  assert_contains(vm:read_file("/proc/cmdline"), "loglevel=6")
end)
vm:shutdown()
`)
	env.Run("test", "tests/").MustPass(t)
}

// diskProfile writes a profile called name to the project's provium.toml
// whose only image is an ext4 disk holding the busybox root plus files
// (path in the root -> content; a path under sbin/ or bin/ is made
// executable), and extra lines for the profile.
func diskProfile(t *testing.T, env *Env, name string, files map[string]string, extra ...string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	busyboxRoot, _ := filepath.Glob(filepath.Join(userCache(t), "initramfs", "busybox-*.cpio"))
	if len(busyboxRoot) == 0 {
		// Any run of the built-in profile makes it; make one.
		env.Write("warm.lua", `provium.create("minimal"):boot():kill()`)
		env.Run("test", "warm.lua").MustPass(t)
		os.Remove(filepath.Join(env.Dir, "warm.lua"))
		busyboxRoot, _ = filepath.Glob(filepath.Join(env.Cache, "initramfs", "busybox-*.cpio"))
	}
	if len(busyboxRoot) == 0 {
		t.Fatal("no busybox root archive to build the disk from")
	}
	in, err := os.Open(busyboxRoot[0])
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	unpack := exec.Command("busybox", "cpio", "-id")
	unpack.Dir, unpack.Stdin = root, in
	if out, err := unpack.CombinedOutput(); err != nil {
		t.Fatalf("unpack: %v\n%s", err, out)
	}
	for p, content := range files {
		mode := os.FileMode(0o644)
		if strings.HasPrefix(p, "sbin/") || strings.HasPrefix(p, "bin/") {
			mode = 0o755
		}
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(env.Dir, "images", name+".img")
	os.MkdirAll(filepath.Dir(img), 0o755)
	if err := os.Truncate(createFile(t, img), 64<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-d", root, img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	kernel := os.Getenv("PROVIUM_KERNEL")
	for _, e := range env.Extra {
		if k, ok := strings.CutPrefix(e, "PROVIUM_KERNEL="); ok {
			kernel = k
		}
	}
	toml := "[profile." + name + "]\nkernel = \"" + kernel + "\"\nrootfs = \"images/" + name + ".img\"\n"
	for _, l := range extra {
		toml += l + "\n"
	}
	prev, _ := os.ReadFile(filepath.Join(env.Dir, "provium.toml"))
	env.Write("provium.toml", string(prev)+toml)
}

func createFile(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path
}

// userCache is the cache provium setup filled.
func userCache(t *testing.T) string {
	if c := os.Getenv("PROVIUM_CACHE"); c != "" {
		return c
	}
	home, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(home, "provium")
}
