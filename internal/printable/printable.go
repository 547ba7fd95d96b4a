// Package printable makes text that came from a guest safe to show: on a
// terminal, in a log that a terminal will show, in XML. The guest is
// untrusted (it runs kernels under test), and its bytes must not set the
// terminal's title, move its cursor, change its colours or hide text.
//
// Escape sequences (CSI, OSC and other ESC sequences) are removed whole:
// they are how programs colour their output, and what a reader wants is
// the text. Every other control character is shown as \xNN, and invalid
// UTF-8 as \xNN per byte, so nothing the guest printed goes missing.
package printable

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Line returns s fit to print as one line: escape sequences stripped,
// control characters (newlines included) escaped, a trailing \r dropped.
func Line(s string) string { return clean(s, false) }

// Text returns s fit to print as lines: as Line, but newlines and tabs
// stay.
func Text(s string) string { return clean(s, true) }

func clean(s string, keepLines bool) string {
	if safe(s, keepLines) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == 0x1b:
			i += escapeLen(s[i:])
			continue
		case c == '\r' && (i+1 == len(s) || s[i+1] == '\n'):
			// A console line ending: the terminal's business, not text.
		case c == '\t' || (keepLines && c == '\n'):
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			escape(&b, c)
		case c < utf8.RuneSelf:
			b.WriteByte(c)
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && n == 1:
				escape(&b, c)
			case r >= 0x80 && r < 0xa0:
				// C1 controls: CSI (0x9b) and OSC (0x9d) reach
				// terminals that read them as escapes.
				b.WriteString(`\u`)
				b.WriteString(strconv.FormatInt(int64(r), 16))
			default:
				b.WriteString(s[i : i+n])
			}
			i += n
			continue
		}
		i++
	}
	return b.String()
}

func safe(s string, keepLines bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || c == 0x7f || (c < 0x20 && c != '\t' && !(keepLines && c == '\n')) {
			return false
		}
	}
	return true
}

func escape(b *strings.Builder, c byte) {
	const hex = "0123456789abcdef"
	b.WriteString(`\x`)
	b.WriteByte(hex[c>>4])
	b.WriteByte(hex[c&0xf])
}

// escapeLen is the length of the escape sequence at the start of s (which
// starts with ESC): CSI "ESC [ params final", OSC "ESC ] ... BEL or ESC \",
// string sequences (DCS, SOS, PM, APC) up to ESC \, and two-byte "ESC x".
// An unterminated sequence runs to the end of s: half of one is no text.
func escapeLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	switch s[1] {
	case '[':
		for i := 2; i < len(s); i++ {
			if s[i] >= 0x40 && s[i] <= 0x7e {
				return i + 1
			}
		}
		return len(s)
	case ']', 'P', 'X', '^', '_':
		for i := 2; i < len(s); i++ {
			if s[i] == 0x07 && s[1] == ']' {
				return i + 1
			}
			if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
		}
		return len(s)
	}
	return 2
}
