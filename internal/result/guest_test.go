package result

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestTextRendersTheTailOnce(t *testing.T) {
	lines := make([]string, 30)
	for i := range lines {
		lines[i] = fmt.Sprintf("line %d", i)
	}
	ge := &GuestError{VM: "minimal#1", Err: errors.New("agent connection lost"), Console: lines}
	err := fmt.Errorf("vm:exec on minimal#1: %w", ge)
	if got := err.Error(); got != "vm:exec on minimal#1: agent connection lost" {
		t.Errorf("Error() = %q: the message alone, without the console", got)
	}
	text := Text(err)
	if !strings.HasPrefix(text, "vm:exec on minimal#1: agent connection lost\n--- console (last 20 lines) ---\nline 10\n") ||
		!strings.HasSuffix(text, "\nline 29") || strings.Count(text, "--- console") != 1 {
		t.Errorf("Text = %q", text)
	}
	if Guest(err) != ge {
		t.Errorf("Guest did not find the GuestError in the chain")
	}
	if got := Text(errors.New("plain")); got != "plain" {
		t.Errorf("Text of an error without a guest = %q", got)
	}
	if got := Text(&GuestError{VM: "x", Err: errors.New("quiet")}); got != "quiet" {
		t.Errorf("Text of a guest error with an empty console = %q", got)
	}
}
