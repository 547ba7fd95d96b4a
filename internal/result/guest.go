package result

import (
	"errors"
	"strconv"
	"strings"
)

// TailLines is how many console lines a failure shows.
const TailLines = 20

// GuestError is a failure the guest was part of: the VM died, the agent
// vanished or stopped answering, QEMU exited, a snapshot did not restore.
// It carries what the guest printed last as data, so that each output
// format renders it once and in its own way; its Error is the message
// alone, so wrapping it with context reads as a sentence.
type GuestError struct {
	VM      string   // the VM's name, e.g. "minimal#1"
	Err     error    // what went wrong
	Console []string // the VM's last console lines, oldest first, raw
}

func (e *GuestError) Error() string { return e.Err.Error() }

func (e *GuestError) Unwrap() error { return e.Err }

// Guest returns the GuestError in err's chain, or nil.
func Guest(err error) *GuestError {
	var ge *GuestError
	if errors.As(err, &ge) {
		return ge
	}
	return nil
}

// Tail returns the last TailLines of lines.
func Tail(lines []string) []string {
	return lines[max(0, len(lines)-TailLines):]
}

// TailHeader is the line that opens a console tail in every text format.
func TailHeader(n int) string {
	return "--- console (last " + strconv.Itoa(n) + " lines) ---"
}

// Text renders err for plain text (Lua error messages, logs, a command's
// stderr): its message, then the console tail of the guest it involves,
// if any. The text is not made safe for a terminal: whoever prints it to
// one does that.
func Text(err error) string {
	ge := Guest(err)
	if ge == nil || len(ge.Console) == 0 {
		return err.Error()
	}
	tail := Tail(ge.Console)
	var b strings.Builder
	b.WriteString(err.Error())
	b.WriteString("\n")
	b.WriteString(TailHeader(len(tail)))
	for _, l := range tail {
		b.WriteString("\n")
		b.WriteString(l)
	}
	return b.String()
}
