package result

import (
	"errors"
	"strconv"
	"strings"
	"time"
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
	// Reports are the kernel reports that explain the failure, if any
	// (the panic that ended the VM).
	Reports []KernelReport
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

// KernelReport is a report the guest kernel printed: an oops, a panic, a
// BUG or WARNING, a sanitizer's or lockdep's finding, a hung task, a stall,
// a leak.
type KernelReport struct {
	Kind  string    `json:"kind"`  // "warning", "kasan", "panic", ...
	Title string    `json:"title"` // one line, stable across runs: "WARNING in foo_ioctl"
	Text  string    `json:"text"`  // the whole report, without console prefixes
	VM    string    `json:"vm"`
	Time  time.Time `json:"time"` // when its first line was seen
	// At is the Lua line that was running when it appeared, if known.
	At string `json:"at,omitempty"`
	// Expected is set when expect_kernel or kernel_ignore covered it: it
	// fails nothing.
	Expected bool `json:"expected,omitempty"`
}

// ReportLines is how many lines of a report a failure shows; the log keeps
// every report whole.
const ReportLines = 30

// Head returns the first n lines of the report's text.
func (r KernelReport) Head(n int) []string {
	lines := strings.Split(strings.TrimRight(r.Text, "\n"), "\n")
	return lines[:min(n, len(lines))]
}
