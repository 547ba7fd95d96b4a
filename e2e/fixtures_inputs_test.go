package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A fixture that boots with injected files and a disk is rebuilt when its
// script, an injected file or the disk image changes, and resumed as is
// otherwise: the test reads what the snapshot holds, so a stale resume
// fails it.
func TestFixtureBootInputsRebuild(t *testing.T) {
	disk := make([]byte, 1<<20)
	copy(disk, "disk v1\n")
	env, builds := fxEnv(t, map[string]string{
		"inject.txt": "inject v1\n",
		"disk.img":   string(disk),
		"tests/fixtures/prepared.lua": fxLog("prepared") + `local vm = provium.create("minimal")
vm:boot({files = {["/etc/injected"] = "inject.txt"}, disks = {{"disk.img", readonly = true}}})
vm:write_file("/tmp/marker", "v1")
assert(vm:exec("head -c 8 /dev/vda > /tmp/disk-head").ok)
`,
		"tests/check.lua": `local vm = provium.fixture("prepared")
local want = dofile("want.lua")
test("the snapshot is of the current inputs", function()
  assert_eq(want.marker, vm:read_file("/tmp/marker"))
  assert_eq(want.injected, vm:read_file("/etc/injected"))
  assert_eq(want.disk, vm:read_file("/tmp/disk-head"))
end)
`,
	})
	expect := func(marker, injected, disk string) {
		env.Write("want.lua", "return {marker = "+luaQuote(marker)+", injected = "+luaQuote(injected)+", disk = "+luaQuote(disk)+"}\n")
	}
	expect("v1", "inject v1\n", "disk v1\n")
	env.Run("test", "tests/").MustPass(t)
	fxWantBuilds(t, builds, "first run", map[string]int{"prepared": 1})
	env.Run("test", "tests/").MustPass(t)
	fxWantBuilds(t, builds, "nothing changed", map[string]int{"prepared": 1})

	script := filepath.Join(env.Dir, "tests/fixtures/prepared.lua")
	src, _ := os.ReadFile(script)
	env.Write("tests/fixtures/prepared.lua", strings.Replace(string(src), `"v1"`, `"v2"`, 1))
	expect("v2", "inject v1\n", "disk v1\n")
	env.Run("test", "tests/").MustPass(t)
	fxWantBuilds(t, builds, "script edited", map[string]int{"prepared": 2})

	env.Write("inject.txt", "inject v2\n")
	expect("v2", "inject v2\n", "disk v1\n")
	env.Run("test", "tests/").MustPass(t)
	fxWantBuilds(t, builds, "injected file edited", map[string]int{"prepared": 3})

	copy(disk, "disk v2\n")
	env.Write("disk.img", string(disk))
	expect("v2", "inject v2\n", "disk v2\n")
	env.Run("test", "tests/").MustPass(t)
	fxWantBuilds(t, builds, "disk image edited", map[string]int{"prepared": 4})

	// An injected file that is gone fails the build loudly.
	os.Remove(filepath.Join(env.Dir, "inject.txt"))
	r := env.Run("test", "tests/")
	r.MustFail(t, `fixture "prepared"`, "inject.txt")
}

// A cache restored read-only (as CI caches can be) is still resumed from.
func TestFixtureReadOnlyCache(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount the fixture cache read-only")
	}
	env, builds := fxEnv(t, map[string]string{
		"tests/fixtures/base.lua": fxLog("base") + `local vm = provium.create("minimal"):boot()
vm:write_file("/tmp/marker", "cached")
`,
		"tests/t.lua": `local vm = provium.fixture("base")
test("resumed", function() assert_eq("cached", vm:read_file("/tmp/marker")) end)
`,
	})
	env.Run("test", "tests/").MustPass(t)
	fixtures := filepath.Join(env.Cache, "fixtures")
	if out, err := exec.Command("mount", "--bind", "-o", "ro", fixtures, fixtures).CombinedOutput(); err != nil {
		t.Skipf("cannot bind-mount read-only: %v: %s", err, out)
	}
	// Remount read-only: a plain bind mount ignores ro on older kernels.
	exec.Command("mount", "-o", "remount,bind,ro", fixtures).Run()
	defer exec.Command("umount", fixtures).Run()
	if err := os.WriteFile(filepath.Join(fixtures, "probe"), nil, 0o644); err == nil {
		t.Fatal("the fixture cache is still writable")
	}
	env.Run("test", "tests/").MustPass(t)
	fxWantBuilds(t, builds, "read-only cache", map[string]int{"base": 1})
}

func luaQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
