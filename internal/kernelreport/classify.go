package kernelreport

import "strings"

// header describes the first line of a report: its kind and how the report
// that it opens ends.
type header struct {
	kind Kind
	// oops marks an oops header ("Oops: ...", "invalid opcode: ...",
	// "general protection fault ..."). The kernel prints one after the
	// line that names the fault ("BUG: kernel NULL pointer dereference",
	// "kernel BUG at ...") and closes the whole with "---[ end trace".
	oops bool
	// rule: the report ends at a line of '=' (KASAN, KFENCE, KMSAN,
	// KCSAN and UBSAN frame their reports with them).
	rule bool
	// task: the report is one stack dump and ends at the "</TASK>" that
	// closes it, unless an oops header joined it.
	task bool
	// afterStack: a lockdep report whose own stack comes after a
	// "stack backtrace:" line; earlier "</TASK>" lines do not end it.
	afterStack bool
	// leak: a kmemleak record, which ends at the first line after its
	// backtrace that is not a frame.
	leak bool
	// single: the report is this one line.
	single bool
}

// lockdepWarnings are the headers lockdep (and RCU's lockdep checks) print
// after "WARNING: ". Other "WARNING: ..." lines (the kernel's own notices
// such as the deprecated "mand" mount option, or any program's output) are
// not reports.
var lockdepWarnings = []string{
	"possible circular locking dependency detected",
	"possible recursive locking detected",
	"inconsistent lock state",
	"possible irq lock inversion dependency detected",
	"HARDIRQ-safe -> HARDIRQ-unsafe lock order detected",
	"SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected",
	"suspicious RCU usage",
	"bad unlock balance detected!",
	"held lock freed!",
	"lock held when returning to user space!",
	"lock held at task exit time!",
	"Nested lock was not taken",
	"Invalid wait context",
}

// classify reports whether msg (a cleaned console line) starts a kernel
// report, and which. It is called for every console line, so the common
// case (a line that starts no report) must be decided from its first byte
// or a short prefix.
func classify(msg string) (header, bool) {
	if len(msg) < 4 {
		return header{}, false
	}
	switch msg[0] {
	case 'K':
		if strings.HasPrefix(msg, "Kernel panic - not syncing") {
			return header{kind: KindPanic}, true
		}
		if strings.HasPrefix(msg, "Kernel BUG at ") {
			return header{kind: KindBug}, true
		}
	case 'k':
		if strings.HasPrefix(msg, "kernel BUG at ") {
			return header{kind: KindBug}, true
		}
		if rest, ok := strings.CutPrefix(msg, "kmemleak: "); ok {
			if strings.HasPrefix(rest, "unreferenced object 0x") {
				return header{kind: KindKmemleak, leak: true}, true
			}
		}
	case 'u':
		if strings.HasPrefix(msg, "unreferenced object 0x") {
			return header{kind: KindKmemleak, leak: true}, true
		}
	case 'O':
		if strings.HasPrefix(msg, "Oops") && len(msg) > 4 && (msg[4] == ':' || msg[4] == ' ' || msg[4] == '#') {
			return header{kind: KindOops, oops: true}, true
		}
	case 'g':
		if strings.HasPrefix(msg, "general protection fault") {
			return header{kind: KindOops, oops: true}, true
		}
	case 'i':
		if strings.HasPrefix(msg, "invalid opcode: ") || strings.HasPrefix(msg, "int3: ") {
			return header{kind: KindOops, oops: true}, true
		}
	case 'd':
		if strings.HasPrefix(msg, "divide error: ") {
			return header{kind: KindOops, oops: true}, true
		}
	case 's':
		if strings.HasPrefix(msg, "stack segment: ") {
			return header{kind: KindOops, oops: true}, true
		}
	case 'I':
		if strings.HasPrefix(msg, "Internal error: ") {
			return header{kind: KindOops, oops: true}, true
		}
		if rest, ok := strings.CutPrefix(msg, "INFO: "); ok {
			return classifyInfo(rest)
		}
	case 'U':
		if strings.HasPrefix(msg, "UBSAN: ") {
			return header{kind: KindUBSAN, rule: true}, true
		}
		if strings.HasPrefix(msg, "Unable to handle kernel ") {
			return header{kind: KindOops}, true
		}
	case 'P':
		if strings.HasPrefix(msg, "PANIC: double fault") {
			return header{kind: KindOops, oops: true}, true
		}
	case 'B':
		if rest, ok := strings.CutPrefix(msg, "BUG: "); ok {
			return classifyBug(rest), true
		}
		if strings.HasPrefix(msg, "BUG ") && strings.Contains(msg, "ainted") && strings.Contains(msg, "): ") {
			// SLUB debugging: "BUG kmalloc-64 (Not tainted): Poison overwritten".
			return header{kind: KindBug, task: true}, true
		}
	case 'W':
		if rest, ok := strings.CutPrefix(msg, "WARNING: "); ok {
			return classifyWarning(rest)
		}
		if strings.HasPrefix(msg, "Watchdog detected hard LOCKUP") {
			return header{kind: KindSoftLockup, task: true}, true
		}
	case 'w':
		// "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [...]"
		if rest, ok := strings.CutPrefix(msg, "watchdog: "); ok {
			return classify(rest)
		}
	case 'N':
		if rest, ok := strings.CutPrefix(msg, "NMI watchdog: "); ok {
			return classify(rest)
		}
	case 'r':
		// "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"
		if rest, ok := strings.CutPrefix(msg, "rcu: "); ok && strings.HasPrefix(rest, "INFO: ") {
			return classify(rest)
		}
	}
	return header{}, false
}

func classifyBug(rest string) header {
	switch {
	case strings.HasPrefix(rest, "KASAN: "):
		return header{kind: KindKASAN, rule: true}
	case strings.HasPrefix(rest, "KFENCE: "):
		return header{kind: KindKFENCE, rule: true}
	case strings.HasPrefix(rest, "KMSAN: "), strings.HasPrefix(rest, "KCSAN: "):
		return header{kind: KindBug, rule: true}
	case strings.HasPrefix(rest, "soft lockup"):
		return header{kind: KindSoftLockup, task: true}
	case strings.HasPrefix(rest, "kernel NULL pointer dereference"),
		strings.HasPrefix(rest, "unable to handle"),
		strings.HasPrefix(rest, "Unable to handle"):
		// An oops header follows.
		return header{kind: KindOops}
	case strings.HasPrefix(rest, "workqueue lockup"):
		// Dumps every busy pool and worker: no single stack ends it.
		return header{kind: KindBug}
	case strings.HasPrefix(rest, "sleeping function called from invalid context"),
		strings.Contains(rest, "lock"),
		strings.HasPrefix(rest, "Invalid wait context"),
		strings.HasPrefix(rest, "MAX_LOCK"):
		// Printed with lockdep's list of held locks, by the same debug
		// options.
		return header{kind: KindLockdep, task: true}
	}
	return header{kind: KindBug, task: true}
}

func classifyWarning(rest string) (header, bool) {
	// "WARNING: CPU: 0 PID: 1 at kernel/foo.c:12 foo+0x1c/0x40" (2.6.31 to 6.x),
	// "WARNING: at kernel/foo.c:12 foo+0x1c/0x40()" (older),
	// "WARNING: kernel/foo.c:12 at foo+0x1c/0x40, CPU#0: sh/1" (newest).
	if strings.HasPrefix(rest, "CPU: ") || strings.HasPrefix(rest, "at ") {
		return header{kind: KindWarning}, true
	}
	if sp := strings.IndexByte(rest, ' '); sp > 0 && strings.HasPrefix(rest[sp:], " at ") &&
		strings.IndexByte(rest[:sp], ':') > 0 {
		return header{kind: KindWarning}, true
	}
	for _, w := range lockdepWarnings {
		if strings.HasPrefix(rest, w) {
			return header{kind: KindLockdep, task: true, afterStack: true}, true
		}
	}
	if strings.HasPrefix(rest, "kernel stack regs at ") || strings.HasPrefix(rest, "kernel stack frame pointer at ") {
		// The unwinder found a corrupt stack; it says so in one line.
		return header{kind: KindWarning, single: true}, true
	}
	return header{}, false
}

func classifyInfo(rest string) (header, bool) {
	switch {
	case strings.HasPrefix(rest, "task "):
		// "INFO: task sh:1 blocked for more than 120 seconds." The task
		// name is the guest's to choose and may itself break the line, so
		// the prefix alone decides; the hung-task detector's follow-up
		// lines ("INFO: task sh:1 is blocked on a mutex ...") do not open
		// a report of their own.
		if strings.Contains(rest, " is blocked on ") || strings.Contains(rest, " blocked on a ") {
			return header{}, false
		}
		return header{kind: KindHungTask, task: true}, true
	case strings.HasPrefix(rest, "rcu_") && strings.Contains(rest, "stall"):
		return header{kind: KindRCUStall}, true
	case strings.HasPrefix(rest, "trying to register non-static key"):
		return header{kind: KindLockdep, task: true}, true
	}
	for _, w := range lockdepWarnings {
		// Kernels before 4.10 printed lockdep headers as "INFO: ...".
		if strings.HasPrefix(rest, w) {
			return header{kind: KindLockdep, task: true, afterStack: true}, true
		}
	}
	return header{}, false
}

// isRule reports whether msg is a line of '=' such as KASAN, KFENCE, UBSAN
// and lockdep print around their reports.
func isRule(msg string) bool {
	if len(msg) < 20 {
		return false
	}
	for i := 0; i < len(msg); i++ {
		if msg[i] != '=' {
			return false
		}
	}
	return true
}

// isCutHere reports whether msg is the line WARN() and BUG() print before
// the report proper, possibly after a message of the caller's.
func isCutHere(msg string) bool {
	return strings.HasPrefix(msg, "------------[ cut here ]------------")
}

// isEndMarker reports whether msg closes an oops, a WARNING or a panic.
func isEndMarker(msg string) bool {
	return strings.HasPrefix(msg, "---[ end trace") || strings.HasPrefix(msg, "---[ end Kernel panic")
}

// isTaskEnd reports whether msg closes the task part of a stack dump, which
// on 6.x kernels comes last (after any <NMI> and <IRQ> parts).
func isTaskEnd(msg string) bool {
	return strings.TrimSpace(msg) == "</TASK>"
}
