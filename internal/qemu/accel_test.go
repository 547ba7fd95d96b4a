package qemu

import (
	"errors"
	"os"
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

// decideAccel with stand-ins for the host: KVM only when /dev/kvm opens
// and a guest ran on it; the answer remembered per QEMU build.
func TestDecideAccel(t *testing.T) {
	binary := filepath.Join(t.TempDir(), "qemu-system-x86_64")
	os.WriteFile(binary, []byte("#!/bin/sh\n"), 0o755)
	noKVM := func() error { return errors.New("ENOENT") }
	usable := func() error { return nil }
	for _, tc := range []struct {
		name   string
		kvm    func() error
		probe  error
		memo   string // remembered answer, "" for none; "KEY" stands for this binary's key
		want   string
		probed bool
	}{
		{"no /dev/kvm: tcg without a probe", noKVM, nil, "", "tcg", false},
		{"kvm that runs a guest", usable, nil, "", "kvm", true},
		{"kvm that cannot run a guest", usable, errors.New("guest hung"), "", "tcg", true},
		{"remembered kvm for this build", usable, errors.New("not asked"), "KEY\nkvm\n", "kvm", false},
		{"remembered tcg for this build", usable, nil, "KEY\ntcg\n", "tcg", false},
		{"an answer for another build is probed again", usable, nil, "/other 1:2:3\ntcg\n", "kvm", true},
		{"a garbled answer is probed again", usable, nil, "KEY\nmaybe\n", "kvm", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			memo := filepath.Join(t.TempDir(), "accel")
			if tc.memo != "" {
				m := tc.memo
				if len(m) >= 3 && m[:3] == "KEY" {
					m = accelKey(binary) + m[3:]
				}
				os.WriteFile(memo, []byte(m), 0o644)
			}
			probed := false
			got := decideAccel(accelDeps{
				kvmUsable: tc.kvm,
				probe:     func() error { probed = true; return tc.probe },
				memo:      memo,
				binary:    binary,
			})
			if got != tc.want || probed != tc.probed {
				t.Errorf("decideAccel = %s (probed %v), want %s (probed %v)", got, probed, tc.want, tc.probed)
			}
			if tc.probed && tc.kvm() == nil {
				// What was probed is remembered for next time.
				probed = false
				if again := decideAccel(accelDeps{kvmUsable: tc.kvm, probe: func() error { probed = true; return nil }, memo: memo, binary: binary}); again != tc.want || probed {
					t.Errorf("second decision = %s (probed %v), want the remembered %s", again, probed, tc.want)
				}
			}
		})
	}
}

// TestRememberTemplates remembers a yes for a QEMU build and asks again
// after a no, or for another build.
func TestRememberTemplates(t *testing.T) {
	memo := filepath.Join(t.TempDir(), "templates")
	probes := 0
	probe := func(err error) func() error {
		return func() error { probes++; return err }
	}
	no := errors.New("no x-ignore-shared")
	if err := rememberTemplates("build 1", memo, probe(no)); err != no || probes != 1 {
		t.Fatalf("first probe: %v after %d probes, want the probe's no", err, probes)
	}
	if err := rememberTemplates("build 1", memo, probe(nil)); err != nil || probes != 2 {
		t.Fatalf("after a no: %v after %d probes, want a new probe", err, probes)
	}
	if err := rememberTemplates("build 1", memo, probe(no)); err != nil || probes != 2 {
		t.Errorf("after a yes: %v after %d probes, want the remembered yes", err, probes)
	}
	if err := rememberTemplates("build 2", memo, probe(no)); err != no || probes != 3 {
		t.Errorf("another build: %v after %d probes, want a new probe", err, probes)
	}
	if err := rememberTemplates("", memo, probe(nil)); err != nil || probes != 4 {
		t.Errorf("an unknown build: %v after %d probes, want a probe", err, probes)
	}
	if err := rememberTemplates("", memo, probe(no)); err != no || probes != 5 {
		t.Errorf("an unknown build is never remembered: %v after %d probes", err, probes)
	}
}
