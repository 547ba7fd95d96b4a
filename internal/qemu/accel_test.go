package qemu

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestAccelEnv(t *testing.T) {
	for _, v := range []string{"kvm", "tcg"} {
		t.Setenv("PROVIUM_ACCEL", v)
		if got := Accel(); got != v {
			t.Errorf("PROVIUM_ACCEL=%s: Accel() = %s", v, got)
		}
	}
}

func TestDetectAccelCache(t *testing.T) {
	if KVMUsable() != nil {
		t.Skip("/dev/kvm not usable: detection never gets to the cache")
	}
	cache := t.TempDir()
	t.Setenv("PROVIUM_CACHE", cache)
	bin, err := exec.LookPath(DefaultBinary)
	if err != nil {
		t.Skip(err)
	}
	key := accelKey(bin)
	// A cached answer for this binary is used as is (no probe).
	os.WriteFile(filepath.Join(cache, "accel"), []byte(key+"\nkvm\n"), 0o644)
	if got := detectAccel(bin); got != "kvm" {
		t.Errorf("cached kvm: detectAccel = %s", got)
	}
	os.WriteFile(filepath.Join(cache, "accel"), []byte(key+"\ntcg\n"), 0o644)
	if got := detectAccel(bin); got != "tcg" {
		t.Errorf("cached tcg: detectAccel = %s", got)
	}
}

// TestDetectAccel checks detection against a direct probe. On a host
// whose /dev/kvm exists but cannot run guests (nested virtualization that
// QEMU trips on), both must say tcg.
func TestDetectAccel(t *testing.T) {
	if _, err := exec.LookPath(DefaultBinary); err != nil {
		t.Skip(err)
	}
	t.Setenv("PROVIUM_CACHE", t.TempDir())
	want := "tcg"
	if KVMUsable() == nil {
		err := ProbeKVM(context.Background(), DefaultBinary)
		t.Logf("ProbeKVM: %v", err)
		if err == nil {
			want = "kvm"
		}
	}
	if got := detectAccel(DefaultBinary); got != want {
		t.Errorf("detectAccel = %s, want %s", got, want)
	}
	if b, err := os.ReadFile(filepath.Join(os.Getenv("PROVIUM_CACHE"), "accel")); KVMUsable() == nil && err != nil {
		t.Errorf("no cached answer: %v", err)
	} else {
		t.Logf("cached: %q", b)
	}
}
