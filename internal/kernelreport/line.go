package kernelreport

import (
	"strings"
	"unicode/utf8"
)

// stampSearch bounds how far into a line without a leading timestamp the
// detector looks for one: a kernel line glued to the unterminated output of
// another program starts within the first few hundred bytes, and the bound
// keeps a long line from costing more than a glance.
const stampSearch = 512

// clean returns the message of a console line with what the console and
// printk put in front of it removed (carriage returns, a log level such as
// "<4>", the "[    1.234567]" timestamp and the "[  T123]" or "[    C0]"
// caller field), and whether the line carried a timestamp. A timestamp marks
// a line printed by the kernel; a line without one in a stream that has them
// comes from another program.
func clean(raw string) (msg string, stamped bool) {
	s := raw
	if len(s) > MaxLineBytes+stampSearch {
		s = s[:MaxLineBytes+stampSearch]
	}
	s = strings.Trim(s, "\r")
	s = dropLevel(s)
	if rest, ok := dropStamp(s); ok {
		s, stamped = dropLevel(rest), true
	} else if n := callerLen(s); n > 0 {
		// printk.time=0 with CONFIG_PRINTK_CALLER: the caller field alone.
		s, stamped = dropLevel(strings.TrimPrefix(s[n:], " ")), true
	} else if i := findStamp(s); i > 0 {
		// Another program wrote part of a line and the kernel's line
		// followed on the same console line.
		rest, _ := dropStamp(s[i:])
		s, stamped = dropLevel(rest), true
	}
	if len(s) > MaxLineBytes {
		s = s[:MaxLineBytes]
	}
	return s, stamped
}

// dropLevel removes a syslog priority such as "<4>" or "<12>".
func dropLevel(s string) string {
	if len(s) < 3 || s[0] != '<' {
		return s
	}
	i := 1
	for i < len(s) && i <= 3 && isDigit(s[i]) {
		i++
	}
	if i == 1 || i >= len(s) || s[i] != '>' {
		return s
	}
	return s[i+1:]
}

// dropStamp removes a leading "[  123.456789]" timestamp, the caller field
// that may follow it ("[  T123]", "[    C1]"), and the one space that
// separates them from the message; the message keeps any further
// indentation, which is how call-trace frames are recognised.
func dropStamp(s string) (string, bool) {
	n := stampLen(s)
	if n == 0 {
		return s, false
	}
	s = s[n:]
	if len(s) > 0 && s[0] == ' ' && callerLen(s[1:]) > 0 {
		s = s[1:]
	}
	if n := callerLen(s); n > 0 {
		s = s[n:]
	}
	if len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	return s, true
}

// stampLen returns the length of a "[ seconds.fraction]" timestamp at the
// start of s, or 0.
func stampLen(s string) int {
	if len(s) < 5 || s[0] != '[' {
		return 0
	}
	i := 1
	for i < len(s) && s[i] == ' ' {
		i++
	}
	d := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == d || i >= len(s) || s[i] != '.' {
		return 0
	}
	i++
	d = i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == d || i >= len(s) || s[i] != ']' {
		return 0
	}
	return i + 1
}

// callerLen returns the length of a printk caller field ("[  T123]" for a
// task, "[    C0]" for a CPU in interrupt context) at the start of s, or 0.
func callerLen(s string) int {
	if len(s) < 4 || s[0] != '[' {
		return 0
	}
	i := 1
	for i < len(s) && s[i] == ' ' {
		i++
	}
	if i >= len(s) || (s[i] != 'T' && s[i] != 'C') {
		return 0
	}
	i++
	d := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == d || i >= len(s) || s[i] != ']' {
		return 0
	}
	return i + 1
}

// findStamp returns the position of the first timestamp after the start of
// s, within stampSearch bytes, or -1.
func findStamp(s string) int {
	limit := min(len(s), stampSearch)
	for i := 1; i < limit; {
		j := strings.IndexByte(s[i:limit], '[')
		if j < 0 {
			return -1
		}
		i += j
		if stampLen(s[i:]) > 0 {
			return i
		}
		i++
	}
	return -1
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// sanitize makes a line of guest text safe to store and show: invalid UTF-8
// and control characters (a terminal escape sequence, a stray backspace)
// become U+FFFD, tabs stay.
func sanitize(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f || c >= utf8.RuneSelf {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if (r < 0x20 && r != '\t') || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
	}
	return b.String()
}

// store returns msg as a report keeps it: sanitized, and cut to
// MaxLineBytes at a character boundary (sanitizing may make a line longer).
func store(msg string) string {
	msg = sanitize(msg)
	if len(msg) > MaxLineBytes {
		msg = msg[:MaxLineBytes]
		for !utf8.ValidString(msg) {
			msg = msg[:len(msg)-1]
		}
	}
	return msg
}
