// Package kernelreport finds kernel reports in a guest's console stream: the
// oopses, panics, BUGs, WARNINGs, sanitizer reports (KASAN, KFENCE, UBSAN),
// lockdep splats, hung tasks, RCU stalls, soft lockups and kmemleak records
// a Linux kernel prints when something went wrong. Provium feeds every
// console line of every VM to a Detector and fails the test during which a
// report appeared, so a report missed is a test passed that should have
// failed: recognition errs on the side of reporting.
//
// A Detector takes lines as a serial console shows them: with or without
// printk timestamps ("[    1.234567]"), with or without the caller field
// ("[  T123]", "[    C0]"), with a log level ("<4>") or a trailing carriage
// return, and with other programs' lines in between. Once a report's first
// line carried a timestamp, a line without one is another program's and is
// left out of the report; it neither ends it nor starts another. A kernel
// line glued to the unterminated output of another program is found by its
// timestamp.
//
// A report ends at its end marker ("---[ end trace ...]---",
// "---[ end Kernel panic ...]---"), at the closing line of '=' of a
// sanitizer report, at the "</TASK>" that closes the one stack dump of a
// hung task, lockdep splat, soft lockup or plain BUG, after the backtrace of
// a kmemleak record, at the start of the next report, when it reaches
// MaxLines or MaxBytes, or when the caller calls Flush. Callers call Flush
// after a quiet period on the console (Open tells them whether one is worth
// waiting for) and when the VM stops.
//
// Each Report carries a one-line Title in the style of syzkaller ("WARNING
// in foo_ioctl", "KASAN: slab-use-after-free Read in foo_release", "INFO:
// task hung in foo_wait"), built so that the same bug gives the same title
// from run to run: addresses, offsets, PIDs and CPU numbers are left out,
// and the function named is the first one that is not part of the kernel's
// reporting machinery, of a locking primitive or, for leaks, of an
// allocator.
//
// The guest is untrusted: its console is text anyone with a shell in the VM
// can write. The detector keeps at most one report and a few preamble lines
// in memory, stores at most MaxLineBytes of a line, MaxLines lines and
// MaxBytes bytes of a report and MaxTitle bytes of a title, replaces control
// characters and invalid UTF-8 in what it stores, and looks at no more than
// the first MaxLineBytes (plus a few hundred for a prefix) of any line.
package kernelreport

import (
	"strings"
	"time"
)

// Kind is the class of a kernel report.
type Kind string

// Report kinds.
const (
	KindPanic      Kind = "panic"
	KindOops       Kind = "oops"
	KindBug        Kind = "bug"
	KindKASAN      Kind = "kasan"
	KindKFENCE     Kind = "kfence"
	KindUBSAN      Kind = "ubsan"
	KindWarning    Kind = "warning"
	KindLockdep    Kind = "lockdep"
	KindHungTask   Kind = "hung_task"
	KindRCUStall   Kind = "rcu_stall"
	KindSoftLockup Kind = "soft_lockup"
	KindKmemleak   Kind = "kmemleak"
)

// Bounds on what the detector keeps of guest text.
const (
	// MaxLines bounds the lines of one report. The longest real reports
	// (KASAN with allocation, free and page-owner stacks; lockdep with a
	// long dependency chain) stay well below it.
	MaxLines = 400
	// MaxBytes bounds the text of one report.
	MaxBytes = 128 << 10
	// MaxLineBytes bounds one stored line; printk itself never prints a
	// longer one.
	MaxLineBytes = 1024
	// MaxTitle bounds a report's title.
	MaxTitle = 200
)

// Report is one kernel report.
type Report struct {
	Kind Kind
	// Title is one line that names the bug, stable across runs.
	Title string
	// Text is the whole report, one console line per line, without the
	// timestamps, caller fields and log levels the console added.
	Text string
	// Time is the wall-clock time at which the report's first line was seen.
	Time time.Time
}

// Detector finds kernel reports in a stream of console lines and hands
// each one, once it has ended, to its emit function. It is not safe for
// concurrent use; each console stream has its own.
type Detector struct {
	emit func(Report)
	cur  *building
	pre  preamble
}

// building is the report a Detector is collecting.
type building struct {
	h       header
	lines   []string
	size    int
	hdr     int // index of the header line in lines (preamble lines come before)
	time    time.Time
	stamped bool
	oops    bool // an oops header is part of the report
	stack   bool // past "stack backtrace:" (lockdep) or "backtrace:" (kmemleak)
}

// preamble holds lines that open a report if a report header follows them:
// "------------[ cut here ]------------" (and the message WARN() prints
// after it) or the '=' line above a sanitizer or lockdep report.
type preamble struct {
	lines   []string
	time    time.Time
	stamped bool
	budget  int // further lines that may come before the header
	inCur   int // how many of lines are also the tail of the report being built
}

// cutHereBudget is how many lines may stand between "cut here" and the
// header: the message of WARN(cond, fmt, ...) comes first.
const cutHereBudget = 3

// oopsWindow is how far into a report an oops header still belongs to it:
// on arm64 the abort syndrome takes about 16 lines between "Unable to
// handle kernel ..." and "Internal error: Oops".
const oopsWindow = 24

// NewDetector returns a detector that calls emit with each report found.
func NewDetector(emit func(Report)) *Detector {
	return &Detector{emit: emit}
}

// Open reports whether a report has started and not yet ended.
func (d *Detector) Open() bool { return d.cur != nil }

// Flush ends the report being collected, if any, and forgets any preamble.
func (d *Detector) Flush(now time.Time) {
	if d.cur != nil {
		d.finish()
	}
	d.pre = preamble{}
}

// Line feeds one complete console line, without its newline, seen at now.
func (d *Detector) Line(line string, now time.Time) {
	msg, stamped := clean(line)
	if d.cur != nil {
		if d.cur.stamped && !stamped {
			return
		}
		if d.cur.h.leak && d.cur.stack && !isFrame(msg) {
			d.finish()
		}
	}
	if d.cur == nil && len(d.pre.lines) > 0 && d.pre.stamped && !stamped {
		return
	}
	if h, ok := classify(msg); ok {
		if r := d.cur; r != nil && h.oops && !r.oops &&
			(r.h.kind == KindOops || r.h.kind == KindBug) && len(r.lines)-r.hdr <= oopsWindow {
			// "Oops: 0002 [#1] ..." after "BUG: kernel NULL pointer
			// dereference", "invalid opcode" after "kernel BUG at".
			r.oops = true
			d.pre = preamble{}
			if !d.add(msg) {
				d.begin(h, msg, stamped, now)
			}
			return
		}
		d.begin(h, msg, stamped, now)
		return
	}
	inCur := false
	// A line that does not fit a full report is a line of its own.
	if r := d.cur; r != nil && d.add(msg) {
		if d.cur == nil || r.ends(msg) {
			// The report reached a bound (add ended it) or its last line.
			if d.cur != nil {
				d.finish()
			}
			d.pre = preamble{}
			return
		}
		inCur = true
	}
	d.notePreamble(msg, stamped, now, inCur)
}

// notePreamble keeps track of lines that may open the next report.
func (d *Detector) notePreamble(msg string, stamped bool, now time.Time, inCur bool) {
	in := 0
	if inCur {
		in = 1
	}
	switch {
	case isCutHere(msg):
		d.pre = preamble{lines: []string{store(msg)}, time: now, stamped: stamped, budget: cutHereBudget, inCur: in}
	case isRule(msg):
		d.pre = preamble{lines: []string{msg}, time: now, stamped: stamped, inCur: in}
	case len(d.pre.lines) > 0 && d.pre.budget > 0:
		d.pre.lines = append(d.pre.lines, store(msg))
		d.pre.budget--
		if inCur && d.pre.inCur > 0 {
			d.pre.inCur++
		}
	default:
		d.pre = preamble{}
	}
}

// begin ends the report being built, if any, and starts one at header line
// msg, opened by the pending preamble if there is one.
func (d *Detector) begin(h header, msg string, stamped bool, now time.Time) {
	pre := d.pre
	d.pre = preamble{}
	if r := d.cur; r != nil {
		if pre.inCur > 0 && pre.inCur <= len(r.lines)-r.hdr-1 {
			// The preamble belongs to the new report, not to the tail
			// of the old one.
			for _, l := range r.lines[len(r.lines)-pre.inCur:] {
				r.size -= len(l) + 1
			}
			r.lines = r.lines[:len(r.lines)-pre.inCur]
		}
		d.finish()
	}
	r := &building{h: h, time: now, stamped: stamped, oops: h.oops}
	if len(pre.lines) > 0 && pre.stamped == stamped {
		r.time = pre.time
		for _, l := range pre.lines {
			r.lines = append(r.lines, l)
			r.size += len(l) + 1
		}
	}
	r.hdr = len(r.lines)
	d.cur = r
	d.add(msg)
	if d.cur != nil && h.single {
		d.finish()
	}
}

// add appends msg to the report being built and ends the report when it is
// full. If msg does not fit, add ends the report without it and returns
// false.
func (d *Detector) add(msg string) bool {
	r := d.cur
	msg = store(msg)
	if r.size+len(msg)+1 > MaxBytes {
		d.finish()
		return false
	}
	r.lines = append(r.lines, msg)
	r.size += len(msg) + 1
	if r.h.afterStack && strings.HasPrefix(strings.TrimSpace(msg), "stack backtrace:") {
		r.stack = true
	}
	if r.h.leak && strings.HasPrefix(strings.TrimSpace(trimKmemleak(msg)), "backtrace") {
		r.stack = true
	}
	if len(r.lines) >= MaxLines || r.size >= MaxBytes {
		d.finish()
	}
	return true
}

// ends reports whether msg, just added, is the report's last line.
func (r *building) ends(msg string) bool {
	switch {
	case isEndMarker(msg):
		return true
	case r.h.rule && isRule(msg) && len(r.lines)-1 > r.hdr:
		return true
	case r.h.task && !r.oops && isTaskEnd(msg):
		return !r.h.afterStack || r.stack
	}
	return false
}

// finish emits the report being built.
func (d *Detector) finish() {
	r := d.cur
	d.cur = nil
	d.pre.inCur = 0
	d.emit(Report{
		Kind:  r.h.kind,
		Title: title(r.h.kind, r.lines, r.hdr),
		Text:  strings.Join(r.lines, "\n"),
		Time:  r.time,
	})
}

// Parse returns the reports in a whole console log, as a Detector fed its
// lines and flushed at the end would emit them. Report times are zero.
func Parse(text string) []Report {
	var reports []Report
	d := NewDetector(func(r Report) { reports = append(reports, r) })
	for line := range strings.SplitSeq(text, "\n") {
		d.Line(line, time.Time{})
	}
	d.Flush(time.Time{})
	return reports
}
