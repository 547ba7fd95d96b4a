package e2e

import (
	"strings"
	"testing"
)

// TestKernelAPI runs the raw system call and ioctl API (syscalls.lua) and
// the command API — jobs, timeouts, exec options, json, dmesg, mount_vfs,
// wait_until (commands.lua) — each on a VM of its own, in one run.
func TestKernelAPI(t *testing.T) {
	e := NewEnv(t, readTestdataDir(t, "kernelapi"))
	r := e.Run("test", "tests/")
	r.MustPass(t)
	out := r.Stdout + r.Stderr
	// helpers.lua registers no test and touches no VM: it is not counted.
	if !strings.Contains(out, "ok: 2 passed, 0 failed") {
		t.Errorf("want 2 passing files")
	}
	for file, n := range map[string]string{"syscalls.lua": "14 tests", "commands.lua": "8 tests"} {
		if l := fileLine(t, out, file); !strings.Contains(l, "ok ("+n) {
			t.Errorf("%s: want ok with %s, got %q", file, n, l)
		}
	}
	noQEMULeft(t, e)
}
