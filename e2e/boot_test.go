package e2e

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// brokenPVH is an ELF kernel whose PVH entry point is a ud2: with no IDT
// set up, the CPU triple-faults at once and QEMU, run with -no-reboot,
// exits cleanly without a line on the console. That is how a kernel whose
// PVH entry does not come up under this QEMU looks from outside.
func brokenPVH() []byte {
	le := binary.LittleEndian
	const ehsize, phentsize, load = 64, 56, 0x100000
	code := []byte{0x0f, 0x0b}
	var notes []byte
	notes = le.AppendUint32(notes, 4) // namesz
	notes = le.AppendUint32(notes, 8) // descsz
	notes = le.AppendUint32(notes, 18)
	notes = append(notes, "Xen\x00"...)
	notes = le.AppendUint64(notes, load) // XEN_ELFNOTE_PHYS32_ENTRY
	hdrs := ehsize + 2*phentsize
	b := []byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	for _, v := range []uint16{2, 62} { // ET_EXEC, EM_X86_64
		b = le.AppendUint16(b, v)
	}
	b = le.AppendUint32(b, 1)
	b = le.AppendUint64(b, load)
	b = le.AppendUint64(b, ehsize)
	b = le.AppendUint64(b, 0)
	b = le.AppendUint32(b, 0)
	for _, v := range []uint16{ehsize, phentsize, 2, 0, 0, 0} {
		b = le.AppendUint16(b, v)
	}
	ph := func(typ, flags uint32, off, addr, size uint64) {
		b = le.AppendUint32(b, typ)
		b = le.AppendUint32(b, flags)
		for _, v := range []uint64{off, addr, addr, size, size, 16} {
			b = le.AppendUint64(b, v)
		}
	}
	ph(1, 5, uint64(hdrs+len(notes)), load, uint64(len(code))) // PT_LOAD
	ph(4, 4, uint64(hdrs), 0, uint64(len(notes)))              // PT_NOTE
	b = append(b, notes...)
	return append(b, code...)
}

// A kernel whose PVH entry does not boot still boots: the first boot,
// which prints nothing before QEMU exits, is retried as a bzImage, the
// outcome is remembered, and later boots go straight to the bzImage.
func TestKernelWhosePVHEntryFails(t *testing.T) {
	env := NewEnv(t, map[string]string{
		"tests/boot.lua": `local vm = provium.create("minimal"):boot()
test("booted", function() assert(vm:exec("true").ok) end)
`,
	})
	var kernel string
	for _, kv := range env.Extra {
		if k, ok := strings.CutPrefix(kv, "PROVIUM_KERNEL="); ok {
			kernel = k
		}
	}
	if kernel == "" {
		t.Skip("PROVIUM_KERNEL is set by the caller; this test plants a broken PVH entry for the cached kernel")
	}
	// The extraction of this very bzImage, as the cache would hold it,
	// replaced by a kernel whose PVH entry faults.
	f, err := os.Open(kernel)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	io.Copy(h, f)
	f.Close()
	sum := hex.EncodeToString(h.Sum(nil))
	dir := filepath.Join(env.Cache, "vmlinux")
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, sum[:16]+".elf"), brokenPVH(), 0o644); err != nil {
		t.Fatal(err)
	}

	r := env.Run("test", "-v", "tests/")
	r.MustPass(t)
	log := latestLog(t, env, "tests_boot.lua.log")
	if !strings.Contains(log, "the kernel's PVH entry did not boot") || !strings.Contains(log, "booting it as a bzImage from now on") {
		t.Errorf("the log does not say why the kernel booted as a bzImage:\n%s", log)
	}
	status, err := os.ReadFile(filepath.Join(dir, sum[:16]+".pvh"))
	if err != nil || string(status) != "fails\n" {
		t.Errorf("remembered outcome %q, %v", status, err)
	}

	env.Run("test", "-v", "tests/").MustPass(t)
	if log := latestLog(t, env, "tests_boot.lua.log"); strings.Contains(log, "PVH entry did not boot") || !strings.Contains(log, "-kernel "+kernel) {
		t.Errorf("the second boot tried PVH again or did not boot the image:\n%s", log)
	}
}

// A profile can force a bzImage boot, and a boot_timeout too short for
// the kernel fails with an error that names the option.
func TestBootOptionsOfAProfile(t *testing.T) {
	env := NewEnv(t, map[string]string{
		"tests/slow.lua": `local vm = provium.create("minimal")
vm:boot({boot_timeout = 0.2})
`,
		"tests/limits.lua": `local vm = provium.create("minimal")
test("memory too small", function()
  local ok, err = pcall(vm.boot, vm, {memory = "64K"})
  assert(not ok)
  assert_contains(err, "below the 64 MiB")
  assert_eq("created", vm.state)
end)
test("more cpus than the host", function()
  local ok, err = pcall(vm.boot, vm, {cpus = 4096})
  assert(not ok)
  assert_contains(err, "cpus 4096 is more than the host's")
end)
`,
	})
	r := env.Run("test", "tests/")
	r.MustFail(t, "no agent after 200ms", "boot_timeout", "FAIL: 1 passed, 1 failed")
	if l := fileLine(t, r.Stdout, "limits.lua"); !strings.Contains(l, "ok (2 tests") {
		t.Errorf("limits.lua: %s", l)
	}
}

// latestLog is the log of a file in the newest run directory (run with
// -v, which keeps every log).
func latestLog(t *testing.T, env *Env, name string) string {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(env.Tmp, "provium-runs*", "run-*", name))
	if len(logs) == 0 {
		t.Fatalf("no log %s", name)
	}
	newest := logs[0]
	for _, l := range logs {
		if l > newest {
			newest = l
		}
	}
	b, _ := os.ReadFile(newest)
	return string(b)
}
