package e2e

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var crashmod struct {
	once sync.Once
	ko   string
	err  string
}

// crashModule builds the test kernel module (testdata/crashmod) against
// the headers of the guest kernel, once per run of the tests.
func crashModule(t *testing.T, env *Env) string {
	t.Helper()
	var kernel string
	for _, kv := range env.Extra {
		if k, ok := strings.CutPrefix(kv, "PROVIUM_KERNEL="); ok {
			kernel = k
		}
	}
	ver := strings.TrimPrefix(filepath.Base(kernel), "vmlinuz-")
	crashmod.once.Do(func() {
		build := filepath.Join("/usr/lib/modules", ver, "build")
		if _, err := os.Stat(filepath.Join(build, "Makefile")); err != nil {
			crashmod.err = "no headers of the guest kernel " + ver + " (" + err.Error() + "): scripts/setup --tests installs linux-headers-" + ver
			return
		}
		dir, err := os.MkdirTemp("", "provium-crashmod-")
		if err != nil {
			crashmod.err = err.Error()
			return
		}
		for _, f := range []string{"crashmod.c", "Kbuild", "Makefile"} {
			b, err := os.ReadFile(filepath.Join("testdata", "crashmod", f))
			if err != nil {
				crashmod.err = err.Error()
				return
			}
			os.WriteFile(filepath.Join(dir, f), b, 0o644)
		}
		out, err := exec.Command("make", "-C", build, "M="+dir, "modules").CombinedOutput()
		if err != nil {
			crashmod.err = "build the test module: " + err.Error() + "\n" + string(out)
			return
		}
		crashmod.ko = filepath.Join(dir, "provium_crash.ko")
	})
	if crashmod.err != "" {
		t.Fatal(crashmod.err)
	}
	return crashmod.ko
}

// loadCrashmod is the Lua that boots a VM with the module and loads it
// with finit_module.
const loadCrashmod = `local vm = provium.create("minimal"):boot({memory = "256M", files = {["/provium_crash.ko"] = KO}})
vm:mount_vfs()
local fd = vm:syscall_buf(257, 1, "/provium_crash.ko\0", -100, 0, 0, 0) -- openat
assert(fd >= 0, "open the module: " .. fd)
assert_eq(0, vm:syscall_bufs(313, {[1] = "\0"}, fd, 0, 0)) -- finit_module
local function trigger(what) return vm:exec("echo " .. what .. " > /proc/provium_crash") end
`

// Real kernel reports, provoked by a test module on Debian's kernel, fail
// the sub-test during which they appeared even when its assertions hold;
// expect_kernel turns an expected one into a pass and a missing one into
// a failure; kernel_ignore makes noise of one; reports reach the JSON
// events and the JUnit file.
func TestKernelReportsFromATestModule(t *testing.T) {
	env := NewEnv(t, nil)
	ko := crashModule(t, env)
	env.Write("tests/module.lua", "KO = "+luaQuote(ko)+"\n"+loadCrashmod+`
test("warn", function() trigger("warn"); assert_eq(1, 1) end)
test("clean", function() assert(vm:exec("true").ok) end)
test("expected warn", function() expect_kernel("provium_crash_warn"); trigger("warn") end)
test("expected, never seen", function() expect_kernel("KASAN"); assert(vm:exec("true").ok) end)
test("sleep while atomic", function() trigger("atomic_sleep") end)
provium.kernel_ignore("scheduling while atomic")
test("ignored noise", function() trigger("atomic_sleep") end)
test("bug", function() trigger("bug") end)
test("null", function() trigger("null") end)
`)
	junit := filepath.Join(t.TempDir(), "junit.xml")
	r := env.Run("test", "--junit", junit, "tests/")
	r.MustFail(t)
	block := fxFileBlock(r.Stdout, "tests/module.lua")
	for _, want := range []string{
		"· warn ... FAIL: tests/module.lua:9: kernel report on minimal#1: WARNING in provium_crash_warn",
		"--- kernel report on minimal#1: WARNING in provium_crash_warn (at tests/module.lua:9) ---",
		"WARNING: CPU: 0 PID:",
		"Call Trace:",
		"· clean ... ok",
		"· expected warn ... ok",
		`· expected, never seen ... FAIL: tests/module.lua:12: expected a kernel report matching "KASAN"; none appeared`,
		"· sleep while atomic ... FAIL: tests/module.lua:13: kernel report on minimal#1: BUG: scheduling while atomic in provium_crash_atomic_sleep",
		"· ignored noise ... ok",
		"· bug ... FAIL: tests/module.lua:16: kernel report on minimal#1: kernel BUG in provium_crash_bug",
		"· null ... FAIL: tests/module.lua:17: kernel report on minimal#1: BUG: kernel NULL pointer dereference in provium_crash_null",
		"Kernel reports:",
	} {
		if !strings.Contains(block+r.Stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, block)
		}
	}

	// The same run as JSON: an event per report, naming its sub-test.
	r = env.Run("test", "--json", "tests/")
	seen := map[string]string{}
	for _, l := range strings.Split(r.Stdout, "\n") {
		var ev struct {
			Event  string `json:"event"`
			Name   string `json:"name"`
			Report *struct {
				Title, Text, VM string
				Expected        bool
			} `json:"report"`
		}
		if json.Unmarshal([]byte(l), &ev) == nil && ev.Event == "kernel_report" && ev.Report != nil {
			seen[ev.Name] = ev.Report.Title
			if ev.Report.Text == "" || ev.Report.VM == "" {
				t.Errorf("event without text or VM: %s", l)
			}
		}
	}
	if seen["warn"] != "WARNING in provium_crash_warn" || seen["bug"] != "kernel BUG in provium_crash_bug" {
		t.Errorf("kernel_report events by sub-test: %v", seen)
	}

	var doc struct {
		Suites []struct {
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
					Body    string `xml:",chardata"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	b, _ := os.ReadFile(junit)
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range doc.Suites[0].Cases {
		if c.Name == "warn" && c.Failure != nil && strings.Contains(c.Failure.Message, "WARNING in provium_crash_warn") &&
			strings.Contains(c.Failure.Body, "provium_crash_warn+0x") {
			found = true
		}
	}
	if !found {
		t.Errorf("JUnit has no failure of warn with the report:\n%s", b)
	}
}

// A kernel panic ends the VM and fails the call in flight at once, with
// the panic's title.
func TestKernelPanicFailsThePendingCall(t *testing.T) {
	env := NewEnv(t, nil)
	ko := crashModule(t, env)
	env.Write("tests/panic.lua", "KO = "+luaQuote(ko)+"\n"+loadCrashmod+`
test("panic", function() trigger("panic") end)
`)
	r := env.Run("test", "--json", "tests/")
	var panicAt, failedAt time.Time
	for _, l := range strings.Split(r.Stdout, "\n") {
		var ev struct {
			Event   string    `json:"event"`
			Name    string    `json:"name"`
			Status  string    `json:"status"`
			Message string    `json:"message"`
			Time    time.Time `json:"time"`
			Report  *struct {
				Kind  string
				Title string
				Time  time.Time
			} `json:"report"`
		}
		if json.Unmarshal([]byte(l), &ev) != nil {
			continue
		}
		if ev.Event == "kernel_report" && ev.Report.Kind == "panic" {
			panicAt = ev.Report.Time
		}
		if ev.Event == "subtest" && ev.Name == "panic" {
			failedAt = ev.Time
			if ev.Status != "FAIL" || !strings.Contains(ev.Message, "kernel panic: provium_crash: requested panic") {
				t.Errorf("the sub-test %s with %q", ev.Status, ev.Message)
			}
		}
	}
	if panicAt.IsZero() || failedAt.IsZero() {
		t.Fatalf("no panic report or no sub-test event:\n%s", r.Stdout)
	}
	if d := failedAt.Sub(panicAt); d > 3*time.Second {
		t.Errorf("the sub-test failed %v after the panic line", d)
	}
	t.Logf("failed %v after the panic line", failedAt.Sub(panicAt))
}

// A profile whose kernel command line keeps warnings off the console
// (quiet) still has its reports found: through the kernel log, which the
// agent reads. A profile that names its modules' directory gets their
// frames decoded to file:line.
func TestKernelReportsOfAQuietKernel(t *testing.T) {
	env := NewEnv(t, nil)
	ko := crashModule(t, env)
	env.Write("warm.lua", `provium.create("minimal"):boot():kill()`)
	env.Run("test", "warm.lua").MustPass(t)
	os.Remove(filepath.Join(env.Dir, "warm.lua"))
	root, _ := filepath.Glob(filepath.Join(env.Cache, "initramfs", "busybox-*.cpio"))
	var kernel string
	for _, kv := range env.Extra {
		if k, ok := strings.CutPrefix(kv, "PROVIUM_KERNEL="); ok {
			kernel = k
		}
	}
	if len(root) == 0 {
		t.Fatal("no busybox root archive")
	}
	env.Write("provium.toml", "[profile.quiet]\nkernel = "+luaQuote(kernel)+"\ninitrd = "+luaQuote(root[0])+"\nappend = \"quiet\"\n"+
		"[profile.symbols]\nkernel = "+luaQuote(kernel)+"\ninitrd = "+luaQuote(root[0])+"\nmodules = "+luaQuote(filepath.Dir(ko))+"\n"+
		"[profile.leaks]\nkernel = "+luaQuote(kernel)+"\ninitrd = "+luaQuote(root[0])+"\nkmemleak = true\n")
	env.Write("tests/leaks.lua", `local vm = provium.create("leaks"):boot()
test("scanned", function() assert(vm:exec("true").ok) end)
`)
	env.Write("tests/symbols.lua", "KO = "+luaQuote(ko)+"\n"+strings.Replace(loadCrashmod, `provium.create("minimal")`, `provium.create("symbols")`, 1)+`
test("warn", function()
  expect_kernel("provium_crash_warn")
  trigger("warn")
  local text = vm:kernel_reports()[1].text
  -- The module's frames decoded from its DWARF, like decode_stacktrace.sh.
  assert_contains(text, "provium_crash_warn+0x5/0x10 [provium_crash] (")
  assert_contains(text, "/crashmod.c:39)")
  assert_contains(text, "provium_crash_write+0x")
end)
`)
	env.Write("tests/quiet.lua", "KO = "+luaQuote(ko)+"\n"+strings.Replace(loadCrashmod, `provium.create("minimal")`, `provium.create("quiet")`, 1)+`
test("warn", function() trigger("warn") end)
`)
	r := env.Run("test", "tests/")
	r.MustFail(t, "· warn ... FAIL: tests/quiet.lua:9: kernel report on quiet#", ": WARNING in provium_crash_warn",
		"tests/symbols.lua ... ok",
		// Debian's kernel has no kmemleak: asking for scans says so.
		"· scanned ... FAIL: tests/leaks.lua:2: leaks#", "kmemleak = true, but the guest kernel has no kmemleak (CONFIG_DEBUG_KMEMLEAK)")
	if strings.Contains(fxFileBlock(r.Stdout, "tests/quiet.lua"), "WARNING: CPU: 0 PID") && strings.Contains(r.Stdout, "--- console") &&
		strings.Contains(r.Stdout[strings.Index(r.Stdout, "--- console"):], "WARNING: CPU") {
		t.Errorf("the warning reached the console: this test does not test the kernel log path")
	}
}
