package doctor

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	for _, tc := range []struct {
		name    string
		results []Result
		ok      bool
		lines   []string
	}{
		{"all ok", []Result{{Name: "qemu", OK: true, Detail: "/usr/bin/qemu", Fix: "never shown"}}, true,
			[]string{"qemu:              ok: /usr/bin/qemu"}},
		{"missing required", []Result{
			{Name: "qemu", OK: true},
			{Name: "kernel", Detail: "none", Fix: "run: provium setup"},
		}, false, []string{"qemu:              ok", "kernel:            missing: none — run: provium setup"}},
		{"missing optional", []Result{{Name: "kvm", Optional: true, Detail: "no", Fix: "enable it"}}, true,
			[]string{"kvm:               missing (optional): no — enable it"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var checks []Check
			for _, r := range tc.results {
				checks = append(checks, func() Result { return r })
			}
			var out bytes.Buffer
			if ok := report(&out, checks); ok != tc.ok {
				t.Errorf("ok = %v, want %v", ok, tc.ok)
			}
			if got := strings.Split(strings.TrimSpace(out.String()), "\n"); strings.Join(got, "\n") != strings.Join(tc.lines, "\n") {
				t.Errorf("output:\n%s\nwant:\n%s", out.String(), strings.Join(tc.lines, "\n"))
			}
		})
	}
}

func TestKernelChecks(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PROVIUM_CACHE", dir)
	kernel := filepath.Join(dir, "bzImage")
	os.WriteFile(kernel, []byte("k"), 0o644)
	t.Setenv("PROVIUM_KERNEL", kernel)

	t.Setenv("PROVIUM_MODULES", "")
	if r := checkKernel(); !r.OK || !strings.Contains(r.Detail, kernel) || !strings.Contains(r.Detail, "PROVIUM_KERNEL") {
		t.Errorf("kernel: %+v", r)
	}
	if r := checkModules(); !r.OK || !strings.Contains(r.Detail, "built in") {
		t.Errorf("modules, no tree: %+v", r)
	}
	t.Setenv("PROVIUM_MODULES", dir) // a tree without the modules
	if r := checkModules(); r.OK || !strings.Contains(r.Detail, "virtio_pci") || r.Fix == "" {
		t.Errorf("modules, empty tree: %+v", r)
	}

	t.Setenv("PROVIUM_KERNEL", filepath.Join(dir, "missing"))
	if r := checkKernel(); r.OK || r.Fix == "" {
		t.Errorf("missing kernel: %+v", r)
	}
}

func TestBusyboxCheck(t *testing.T) {
	t.Setenv("PROVIUM_BUSYBOX", "/bin/sh") // dynamic everywhere we run
	if r := checkBusybox(); r.OK || !strings.Contains(r.Fix, "busybox-static") {
		t.Errorf("dynamic busybox: %+v", r)
	}
	t.Setenv("PROVIUM_BUSYBOX", "/nonexistent")
	if r := checkBusybox(); r.OK || r.Detail != "not found" {
		t.Errorf("missing busybox: %+v", r)
	}
}

// TestRunHere runs every check on this host, for the log.
func TestRunHere(t *testing.T) {
	var out bytes.Buffer
	ok := Run(&out)
	t.Logf("ok=%v\n%s", ok, out.String())
	if n := strings.Count(out.String(), "\n"); n != len(Checks) {
		t.Errorf("%d lines for %d checks", n, len(Checks))
	}
}
