package qemu

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// QEMU's end reads as a sentence whether it exited cleanly (a guest that
// powered off or panicked under -no-reboot), with a status, or by a signal.
func TestExitError(t *testing.T) {
	state := func(script string) *ExitError {
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.Run()
		return &ExitError{State: cmd.ProcessState}
	}
	for _, tc := range []struct {
		name   string
		exit   *ExitError
		stderr string
		want   string
		clean  bool
	}{
		{"clean", state("exit 0"), "", "QEMU exited with status 0 (the guest powered off, rebooted, panicked or reset)", true},
		{"failed with stderr", state("exit 1"), "qemu-system-x86_64: -kernel /x: could not open", "QEMU exited with status 1: qemu-system-x86_64: -kernel /x: could not open", false},
		{"killed", state("kill -9 $$"), "", "QEMU was killed (signal: killed)", false},
		{"not waited for", &ExitError{Err: errors.New("wait: no child")}, "", "QEMU exited (wait: no child)", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.exit.Stderr = tc.stderr
			if got := tc.exit.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
			if !errors.Is(tc.exit, ErrExited) || tc.exit.Clean() != tc.clean {
				t.Errorf("Is(ErrExited) = %v, Clean() = %v", errors.Is(tc.exit, ErrExited), tc.exit.Clean())
			}
			if strings.Contains(tc.exit.Error(), "<nil>") || strings.Count(tc.exit.Error(), "QEMU") != 1 {
				t.Errorf("%q does not read well", tc.exit.Error())
			}
		})
	}
}
