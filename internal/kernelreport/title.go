package kernelreport

import (
	"strings"
	"unicode/utf8"
)

// title returns the title of a report whose header line is lines[hdr].
func title(kind Kind, lines []string, hdr int) string {
	t := rawTitle(kind, lines, hdr)
	t = strings.Join(strings.Fields(t), " ")
	if len(t) > MaxTitle {
		t = t[:MaxTitle]
		for len(t) > 0 && !utf8.ValidString(t) {
			t = t[:len(t)-1]
		}
	}
	return t
}

func rawTitle(kind Kind, lines []string, hdr int) string {
	first := strings.TrimSpace(lines[hdr])
	rest := lines[hdr:]
	for _, p := range []string{"watchdog: ", "NMI watchdog: ", "rcu: ", "kmemleak: "} {
		first = strings.TrimPrefix(first, p)
	}
	switch kind {
	case KindPanic:
		msg := strings.TrimSpace(strings.TrimPrefix(first, "Kernel panic - not syncing"))
		msg = strings.TrimSpace(strings.TrimPrefix(msg, ":"))
		if strings.HasPrefix(msg, "Attempted to kill init!") {
			// The exit code that follows depends on the signal.
			msg = "Attempted to kill init!"
		}
		return "kernel panic: " + stable(msg)
	case KindWarning:
		if strings.HasPrefix(first, "WARNING: kernel stack regs at ") {
			return "WARNING: kernel stack regs has bad value"
		}
		if strings.HasPrefix(first, "WARNING: kernel stack frame pointer at ") {
			return "WARNING: kernel stack frame pointer has bad value"
		}
		if fn := choose(ownFrame(first, " at "), ripFrame(rest), traceFrames(rest, nil)); fn != "" {
			return "WARNING in " + fn
		}
		return stable(first)
	case KindKASAN:
		return kasanTitle(first, rest)
	case KindKFENCE:
		desc, fn := splitIn(strings.TrimPrefix(first, "BUG: "))
		return withFunc(stable(desc), fn, traceFrames(rest, nil))
	case KindUBSAN:
		desc, where := splitIn(first)
		desc = stable(desc)
		if desc == "UBSAN: Undefined behaviour" {
			desc = "UBSAN: undefined-behaviour"
		}
		if fn := choose(ripFrame(rest), traceFrames(rest, ubsanSkip)); fn != "" {
			return desc + " in " + fn
		}
		if where != "" {
			// The source position "lib/foo.c:12:34" without its numbers.
			return desc + " in " + strings.TrimRight(strings.Split(where, ":")[0], " ")
		}
		return desc
	case KindLockdep:
		return lockdepTitle(first, rest)
	case KindHungTask:
		return withFunc("INFO: task hung", traceFrames(rest, hungSkip))
	case KindRCUStall:
		return withFunc("INFO: rcu detected stall", ripFrame(rest, stallSkip...), traceFrames(rest, stallSkip))
	case KindSoftLockup:
		desc := "BUG: soft lockup"
		if strings.HasPrefix(first, "Watchdog detected hard LOCKUP") {
			desc = "watchdog: hard lockup"
		}
		return withFunc(desc, ripFrame(rest, stallSkip...), traceFrames(rest, stallSkip))
	case KindKmemleak:
		return withFunc("memory leak", traceFrames(rest, leakSkip))
	case KindOops:
		return withFunc(oopsDesc(first), ripFrame(rest), traceFrames(rest, nil))
	}
	return bugTitle(first, rest)
}

// oopsDesc names an oops from its first line: "BUG: kernel NULL pointer
// dereference, address: 0000000000000000" names a "BUG: kernel NULL pointer
// dereference", "general protection fault, probably for non-canonical
// address 0x...: 0000 [#1] ..." a "general protection fault".
func oopsDesc(first string) string {
	if rest, ok := strings.CutPrefix(first, "Oops: "); ok {
		if h, ok := classify(rest); ok && h.oops {
			first = rest
		} else {
			return "Oops"
		}
	}
	switch {
	case strings.HasPrefix(first, "Oops"):
		return "Oops"
	case strings.HasPrefix(first, "stack segment"):
		return "stack segment fault"
	case strings.HasPrefix(first, "Unable to handle kernel "):
		first = "unable" + strings.TrimPrefix(first, "Unable")
	case strings.HasPrefix(first, "Internal error: "):
		return "Oops"
	case strings.HasPrefix(first, "PANIC: double fault"):
		return "PANIC: double fault"
	}
	// Cut the details: "..., address: ...", "...: 0000 [#1] ...",
	// "... for address ...", "... at virtual address ...".
	prefix, body := "", first
	if b, ok := strings.CutPrefix(first, "BUG: "); ok {
		prefix, body = "BUG: ", b
	}
	if i := strings.IndexAny(body, ",:"); i > 0 {
		body = body[:i]
	}
	for _, sep := range []string{" for address", " at "} {
		if i := strings.Index(body, sep); i > 0 {
			body = body[:i]
		}
	}
	return prefix + stable(body)
}

func kasanTitle(first string, rest []string) string {
	// "BUG: KASAN: slab-use-after-free in foo_release+0x2c/0x80" and, on
	// the next lines, "Read of size 8 at addr ... by task sh/1".
	desc, fn := splitIn(strings.TrimPrefix(first, "BUG: "))
	// Older kernels: "KASAN: use-after-free on address ffff88800...".
	if i := strings.Index(desc, " on address"); i > 0 {
		desc = desc[:i]
	}
	for i := 1; i < len(rest) && i <= 4; i++ {
		l := strings.TrimSpace(rest[i])
		if strings.HasPrefix(l, "Read of size") {
			desc += " Read"
			break
		}
		if strings.HasPrefix(l, "Write of size") {
			desc += " Write"
			break
		}
	}
	return withFunc(stable(desc), fn, traceFrames(rest, nil))
}

// lockdepTitle names a lockdep report after the function that took the
// lock in question: the "at: foo+0x../0x.." after "is trying to acquire
// lock:" (or after "takes:" for an inconsistent lock state).
func lockdepTitle(first string, rest []string) string {
	msg := first
	for _, p := range []string{"WARNING: ", "INFO: ", "BUG: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	type rule struct {
		prefix, title, hint string
	}
	rules := []rule{
		{"possible circular locking dependency detected", "possible deadlock", "is trying to acquire"},
		{"possible recursive locking detected", "possible deadlock", "is trying to acquire"},
		{"possible irq lock inversion dependency detected", "possible deadlock", "just changed the state of lock"},
		{"HARDIRQ-safe -> HARDIRQ-unsafe lock order detected", "possible deadlock", "is trying to acquire"},
		{"SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected", "possible deadlock", "is trying to acquire"},
		{"inconsistent lock state", "inconsistent lock state", "takes:"},
		{"bad unlock balance detected!", "WARNING: bad unlock balance", "is trying to release lock"},
		{"held lock freed!", "WARNING: held lock freed", "is freeing memory"},
		{"lock held when returning to user space!", "WARNING: lock held when returning to user space", "leaving the kernel with locks still held"},
		{"lock held at task exit time!", "WARNING: lock held at task exit time", "is exiting with locks still held"},
	}
	for _, r := range rules {
		if strings.HasPrefix(msg, r.prefix) {
			return withFunc(r.title, hintFrame(rest, r.hint), traceFrames(rest, nil))
		}
	}
	desc := stable(first)
	if strings.HasPrefix(first, "WARNING: suspicious RCU usage") || strings.HasPrefix(first, "INFO: suspicious RCU usage") {
		desc = strings.TrimSuffix(desc, ".")
		return withFunc(desc, traceFrames(rest, rcuSkip))
	}
	if strings.HasPrefix(first, "BUG: ") || strings.HasPrefix(first, "INFO: ") {
		// "BUG: sleeping function called from invalid context at
		// kernel/locking/mutex.c:580", "BUG: spinlock bad magic on CPU#0,
		// sh/1", "INFO: trying to register non-static key.": the bug is
		// in the first function of the call trace that is not a sleeping
		// or locking primitive itself.
		return withFunc(cutDetail(first), traceFrames(rest, sleepSkip))
	}
	return withFunc(desc, hintFrame(rest, "at: "), traceFrames(rest, nil))
}

// bugTitle names a BUG that is none of the special kinds.
func bugTitle(first string, rest []string) string {
	switch {
	case strings.HasPrefix(first, "kernel BUG at "), strings.HasPrefix(first, "Kernel BUG at "):
		// "kernel BUG at mm/slub.c:123!" names the BUG() in the function
		// the RIP line points at.
		if fn := choose(ripFrame(rest), traceFrames(rest, nil)); fn != "" {
			return "kernel BUG in " + fn
		}
		return "kernel " + strings.TrimPrefix(strings.TrimPrefix(first, "kernel "), "Kernel ")
	case strings.HasPrefix(first, "BUG: KMSAN: "), strings.HasPrefix(first, "BUG: KCSAN: "):
		if desc, where, ok := strings.Cut(strings.TrimPrefix(first, "BUG: "), " in "); ok && strings.Contains(where, " / ") {
			// "KCSAN: data-race in foo+0x1a/0x40 / bar+0x2b/0x50" names both sides.
			return desc + " in " + stable(where)
		}
		desc, fn := splitIn(strings.TrimPrefix(first, "BUG: "))
		return withFunc(desc, firstWord(fn), traceFrames(rest, nil))
	case strings.HasPrefix(first, "BUG: workqueue lockup"):
		return "BUG: workqueue lockup"
	case strings.HasPrefix(first, "BUG: scheduling while atomic"):
		return withFunc("BUG: scheduling while atomic", traceFrames(rest, sleepSkip))
	case strings.HasPrefix(first, "BUG ") && strings.Contains(first, "ainted"):
		// "BUG kmalloc-64 (Not tainted): Poison overwritten"
		_, msg, _ := strings.Cut(first, "): ")
		return "BUG: " + stable(msg)
	}
	desc := cutDetail(first)
	if strings.Contains(desc, " in ") {
		return desc
	}
	return withFunc(desc, ripFrame(rest), traceFrames(rest, nil))
}

// cutDetail returns a BUG's first line without the details that vary: the
// part after a second colon ("BUG: scheduling while atomic: sh/1/0x00000002"),
// a source position, a CPU, numbers and addresses.
func cutDetail(first string) string {
	prefix, msg := "", first
	for _, p := range []string{"BUG: ", "INFO: ", "WARNING: "} {
		if m, ok := strings.CutPrefix(first, p); ok {
			prefix, msg = p, m
			break
		}
	}
	if i := strings.Index(msg, ": "); i > 0 {
		msg = msg[:i]
	}
	for _, sep := range []string{" at ", " on CPU", ", "} {
		if i := strings.Index(msg, sep); i > 0 {
			msg = msg[:i]
		}
	}
	return prefix + strings.TrimSuffix(stable(msg), ".")
}

// splitIn splits "KASAN: use-after-free in foo+0x1c/0x40" into its
// description and the function it names.
func splitIn(s string) (desc, fn string) {
	i := strings.Index(s, " in ")
	if i < 0 {
		return strings.TrimSpace(s), ""
	}
	desc, where := s[:i], strings.TrimSpace(s[i+4:])
	if f, _, ok := parseFrame(where); ok {
		return desc, f
	}
	return desc, where
}

func firstWord(s string) string {
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i]
	}
	return s
}

// withFunc returns desc + " in " + the first usable function among the
// candidates, or desc alone. A candidate is a function name (a single
// string) or a list of them, tried in order.
func withFunc(desc string, candidates ...any) string {
	if fn := choose(candidates...); fn != "" {
		return desc + " in " + fn
	}
	return desc
}

// choose returns the first usable function among the candidates (as for
// withFunc), or "".
func choose(candidates ...any) string {
	var names []string
	for _, c := range candidates {
		switch c := c.(type) {
		case string:
			names = append(names, c)
		case []string:
			names = append(names, c...)
		}
	}
	return pick(names...)
}

// pick returns the first candidate (a function name, possibly with a
// ".isra.0"-style suffix) that is not a reporting or helper function.
func pick(candidates ...string) string {
	for _, c := range candidates {
		if c == "" || !isIdent(c) {
			continue
		}
		if fn := baseName(c); !skipped(fn, nil) {
			return fn
		}
	}
	return ""
}

func isIdent(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '.' || c == '$' || isDigit(c) || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')) {
			return false
		}
	}
	return s != ""
}

// baseName drops the suffix the compiler gives a clone of a function
// (".isra.0", ".constprop.0", ".part.0", ".cold", ".llvm.123"), which
// changes from build to build.
func baseName(fn string) string {
	if i := strings.IndexByte(fn, '.'); i > 0 {
		return fn[:i]
	}
	return fn
}

// ownFrame returns the function a header line names after sep:
// "WARNING: CPU: 0 PID: 1 at kernel/foo.c:12 foo+0x1c/0x40" names foo.
func ownFrame(line, sep string) string {
	i := strings.Index(line, sep)
	if i < 0 {
		return ""
	}
	for s := line[i+len(sep):]; s != ""; {
		if fn, _, ok := parseFrame(s); ok {
			return fn
		}
		j := strings.IndexByte(s, ' ')
		if j < 0 {
			break
		}
		s = s[j+1:]
	}
	return ""
}

// hintFrame returns the function of the first "at: foo+0x.." (or the first
// frame) on or after the first line that contains hint.
func hintFrame(lines []string, hint string) string {
	for i, l := range lines {
		if !strings.Contains(l, hint) {
			continue
		}
		for j := i; j < len(lines) && j < i+6; j++ {
			s := lines[j]
			if k := strings.Index(s, "at: "); k >= 0 {
				s = strings.TrimLeft(s[k+4:], " ")
				if strings.HasPrefix(s, "[<") {
					if e := strings.Index(s, ">]"); e > 0 {
						s = strings.TrimLeft(s[e+2:], " ")
					}
				}
				if fn, _, ok := parseFrame(s); ok {
					return fn
				}
			}
			if j > i {
				if fn, reliable, ok := traceFrame(s); ok && reliable {
					return fn
				}
			}
		}
		return ""
	}
	return ""
}

// ripFrame returns the function of the first kernel "RIP: 0010:foo+0x1c/0x40"
// (x86) or "pc : foo+0x1c/0x40" (arm64) line that is not skipped.
func ripFrame(lines []string, skip ...string) string {
	for _, l := range lines {
		s := strings.TrimLeft(l, " \t")
		var ok bool
		if s, ok = strings.CutPrefix(s, "RIP: "); ok {
			if i := strings.IndexByte(s, ':'); i >= 0 && i <= 4 {
				s = s[i+1:]
			}
		} else if s, ok = strings.CutPrefix(s, "pc : "); !ok {
			continue
		}
		fn, _, ok := parseFrame(s)
		if !ok {
			continue
		}
		if f := baseName(fn); !skipped(f, skip) {
			return f
		}
	}
	return ""
}

// traceFrames returns the reliable frames (those not marked "?") of the
// first call trace in lines, without those matching skip.
func traceFrames(lines []string, skip []string) []string {
	var out []string
	in := false
	for _, l := range lines {
		s := strings.TrimSpace(trimKmemleak(l))
		if !in {
			if strings.HasPrefix(s, "Call Trace:") || strings.HasPrefix(s, "Call trace:") ||
				strings.HasPrefix(s, "backtrace:") || strings.HasPrefix(s, "backtrace (") {
				in = true
			}
			continue
		}
		switch {
		case s == "</TASK>":
			return out
		case strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") && len(s) < 12:
			// <TASK>, <IRQ>, </IRQ>, <NMI>, </NMI>, <SOFTIRQ>, </SOFTIRQ>
			continue
		case strings.HasPrefix(s, "RIP: "):
			if fn := ripFrame([]string{s}); fn != "" && !skipped(fn, skip) {
				out = append(out, fn)
			}
			continue
		}
		fn, reliable, ok := traceFrame(s)
		if !ok {
			if isRegisterLine(s) {
				continue
			}
			return out
		}
		if fn = baseName(fn); reliable && !skipped(fn, skip) {
			out = append(out, fn)
		}
	}
	return out
}

// isRegisterLine reports whether s belongs to the register dump that 6.x
// kernels print inside a call trace at an exception or interrupt frame.
func isRegisterLine(s string) bool {
	for _, p := range []string{"Code: ", "RSP: ", "RAX: ", "RDX: ", "RBP: ", "R10: ", "R13: ", "FS: ", "CS: ", "CR2: ", "DR0: ", "DR3: ", "PKRU: "} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// trimKmemleak removes the "kmemleak: " prefix kmemleak puts on each line
// it prints to the console itself.
func trimKmemleak(s string) string {
	if t, ok := strings.CutPrefix(s, "kmemleak: "); ok {
		return t
	}
	return s
}

// isFrame reports whether msg is a call-trace frame line, as the lines of
// a kmemleak backtrace are.
func isFrame(msg string) bool {
	_, _, ok := traceFrame(trimKmemleak(msg))
	return ok
}

// traceFrame parses a call-trace line: optional indentation, an optional
// "[<ffffffff81234567>]" address, an optional "? " that marks a frame the
// unwinder is unsure of, then "foo+0x1c/0x40", optionally followed by a
// module name in brackets or other notes.
func traceFrame(line string) (fn string, reliable, ok bool) {
	s := strings.TrimLeft(line, " \t")
	if strings.HasPrefix(s, "[<") {
		i := strings.Index(s, ">]")
		if i < 0 {
			return "", false, false
		}
		s = strings.TrimLeft(s[i+2:], " ")
	}
	reliable = true
	if t, ok := strings.CutPrefix(s, "? "); ok {
		s, reliable = t, false
	}
	fn, _, ok = parseFrame(s)
	return fn, reliable, ok
}

// parseFrame parses "foo+0x1c/0x40" at the start of s and returns foo and
// the rest of s.
func parseFrame(s string) (fn, rest string, ok bool) {
	plus := strings.Index(s, "+0x")
	if plus <= 0 || !isIdent(s[:plus]) {
		return "", "", false
	}
	i := plus + 3
	j := i
	for j < len(s) && isHex(s[j]) {
		j++
	}
	if j == i || !strings.HasPrefix(s[j:], "/0x") {
		return "", "", false
	}
	k := j + 3
	e := k
	for e < len(s) && isHex(s[e]) {
		e++
	}
	if e == k {
		return "", "", false
	}
	return s[:plus], s[e:], true
}

func isHex(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// stable removes from s what varies from run to run of the same bug: code
// offsets ("foo+0x1c/0x40" becomes "foo"), addresses ("[<ffffffff8123>]",
// "0xffff888003a0c000", "ffff888003a0c000") and numbers standing alone
// (PIDs, CPU numbers, sizes).
func stable(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c == '[' && strings.HasPrefix(s[i:], "[<") {
			if e := strings.Index(s[i:], ">]"); e > 0 {
				i += e + 2
				continue
			}
		}
		if isWord(c) && (i == 0 || !isWord(s[i-1])) {
			j := i
			for j < len(s) && isWord(s[j]) {
				j++
			}
			w := s[i:j]
			if fn, rest, ok := parseFrame(s[i:]); ok {
				b.WriteString(fn)
				i = len(s) - len(rest)
				continue
			}
			if isNumber(w) {
				// "[00000000]" and "(1)" go with their brackets.
				if out := b.String(); out != "" && j < len(s) &&
					(out[len(out)-1] == '[' && s[j] == ']' || out[len(out)-1] == '(' && s[j] == ')') {
					t := out[:len(out)-1]
					b.Reset()
					b.WriteString(t)
					j++
				}
				i = j
				continue
			}
			b.WriteString(w)
			i = j
			continue
		}
		b.WriteByte(c)
		i++
	}
	t := strings.Join(strings.Fields(b.String()), " ")
	return strings.TrimRight(t, " :,;=-([")
}

func isWord(c byte) bool {
	return c == '_' || isDigit(c) || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// isNumber reports whether w is a number that varies between runs: a
// decimal number, a 0x-prefixed hexadecimal one, or an unprefixed
// hexadecimal address of at least 8 digits.
func isNumber(w string) bool {
	if w == "" {
		return false
	}
	if strings.HasPrefix(w, "0x") && len(w) > 2 {
		for i := 2; i < len(w); i++ {
			if !isHex(w[i]) {
				return false
			}
		}
		return true
	}
	digits, hex := true, true
	for i := 0; i < len(w); i++ {
		if !isDigit(w[i]) {
			digits = false
		}
		if !isHex(w[i]) {
			hex = false
		}
	}
	if digits {
		return true
	}
	if hex && len(w) >= 8 {
		for i := 0; i < len(w); i++ {
			if isDigit(w[i]) {
				return true
			}
		}
	}
	return false
}
