package kernelreport

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzDetector feeds arbitrary console text to a Detector and checks the
// bounds every report keeps, whatever the guest prints.
func FuzzDetector(f *testing.F) {
	for _, name := range []string{"warning.log", "kasan_uaf.log", "kmemleak.log", "lockdep_circular.log"} {
		f.Add([]byte(readSample(f, name)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(r Report) {
			if r.Kind == "" || r.Title == "" {
				t.Fatalf("report without kind or title: %+v", r)
			}
			if len(r.Title) > MaxTitle || strings.ContainsAny(r.Title, "\n\r") || !utf8.ValidString(r.Title) {
				t.Fatalf("bad title %q", r.Title)
			}
			if len(r.Text) > MaxBytes || !utf8.ValidString(r.Text) {
				t.Fatalf("text of %d bytes (valid UTF-8: %v)", len(r.Text), utf8.ValidString(r.Text))
			}
			n := 0
			for l := range strings.SplitSeq(r.Text, "\n") {
				n++
				if len(l) > MaxLineBytes {
					t.Fatalf("line of %d bytes", len(l))
				}
			}
			if n > MaxLines {
				t.Fatalf("report of %d lines", n)
			}
		}
		d := NewDetector(check)
		now := time.Unix(0, 0)
		for line := range strings.SplitSeq(string(data), "\n") {
			d.Line(line, now)
		}
		d.Flush(now)
		if d.Open() {
			t.Fatal("open after Flush")
		}
		for _, r := range Parse(string(data)) {
			check(r)
		}
	})
}
