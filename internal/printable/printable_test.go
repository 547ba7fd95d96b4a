package printable

import "testing"

func TestLine(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain text is unchanged", "hello, world", "hello, world"},
		{"utf-8 is unchanged", "größer → 5", "größer → 5"},
		{"colour codes are stripped", "\x1b[1;31mred\x1b[0m text", "red text"},
		{"a title change is stripped", "a\x1b]0;pwned\x07b", "ab"},
		{"a title change ended by ST is stripped", "a\x1b]2;x\x1b\\b", "ab"},
		{"a DCS string is stripped", "a\x1bPqdata\x1b\\b", "ab"},
		{"two-byte escapes are stripped", "a\x1bcb", "ab"},
		{"an unterminated CSI runs to the end", "a\x1b[12", "a"},
		{"a lone escape at the end goes", "a\x1b", "a"},
		{"backspace is escaped", "ab\bc", `ab\x08c`},
		{"bell is escaped", "ding\a", `ding\x07`},
		{"newline is escaped in a line", "a\nb", `a\x0ab`},
		{"a trailing CR is dropped", "line\r", "line"},
		{"a CR inside a line is escaped", "over\rwrite", `over\x0dwrite`},
		{"DEL is escaped", "a\x7fb", `a\x7fb`},
		{"invalid utf-8 is escaped per byte", "a\xff\xfeb", `a\xff\xfeb`},
		{"C1 CSI is escaped", "a\u009b31mb", `a\u9b31mb`},
		{"tabs stay", "a\tb", "a\tb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Line(tc.in); got != tc.want {
				t.Errorf("Line(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestTextKeepsNewlines(t *testing.T) {
	if got, want := Text("one\r\ntwo\x1b[0m\n\x01"), "one\ntwo\n\\x01"; got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
}

func FuzzLine(f *testing.F) {
	for _, s := range []string{"", "x", "\x1b[31mx", "\x1b]0;t\x07", "\xff", "a\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Line(s)
		for i := 0; i < len(out); i++ {
			if c := out[i]; c == 0x1b || (c < 0x20 && c != '\t') || c == 0x7f {
				t.Fatalf("Line(%q) = %q holds control byte %#x", s, out, c)
			}
		}
		if Line(out) != out {
			t.Fatalf("Line is not idempotent on %q: %q then %q", s, out, Line(out))
		}
	})
}
