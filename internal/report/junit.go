package report

import (
	"cmp"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/provium/provium/internal/printable"
	"github.com/provium/provium/internal/result"
)

// The JUnit XML shapes, as the schema CI systems share (Jenkins' junit-10.xsd,
// which GitLab, GitHub actions and others read too) defines them. Only
// attributes that schema allows are written.
type (
	junitSuites struct {
		XMLName  xml.Name     `xml:"testsuites"`
		Name     string       `xml:"name,attr"`
		Tests    int          `xml:"tests,attr"`
		Failures int          `xml:"failures,attr"`
		Errors   int          `xml:"errors,attr"`
		Time     string       `xml:"time,attr"`
		Suites   []junitSuite `xml:"testsuite"`
	}
	junitSuite struct {
		Name      string      `xml:"name,attr"`
		Tests     int         `xml:"tests,attr"`
		Failures  int         `xml:"failures,attr"`
		Errors    int         `xml:"errors,attr"`
		Skipped   int         `xml:"skipped,attr"`
		Time      string      `xml:"time,attr"`
		Timestamp string      `xml:"timestamp,attr,omitempty"`
		Hostname  string      `xml:"hostname,attr,omitempty"`
		Cases     []junitCase `xml:"testcase"`
		SystemOut string      `xml:"system-out,omitempty"`
	}
	junitCase struct {
		Name      string        `xml:"name,attr"`
		Classname string        `xml:"classname,attr"`
		Time      string        `xml:"time,attr"`
		Failure   *junitFailure `xml:"failure,omitempty"`
		Skipped   *junitSkipped `xml:"skipped,omitempty"`
	}
	junitFailure struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Body    string `xml:",chardata"`
	}
	junitSkipped struct {
		Message string `xml:"message,attr,omitempty"`
	}
)

// WriteJUnit writes files as JUnit XML: a testsuite per file, named by its
// path, with a testcase per sub-test. A file without sub-tests is one
// testcase named after the file, and so is an error outside any sub-test.
// Every testcase's classname is the file path, so reports written by the
// shards of one suite merge without clashes. Suites are sorted by path.
func WriteJUnit(w io.Writer, files []*result.File) error {
	host, _ := os.Hostname()
	doc := junitSuites{Name: "provium"}
	var total time.Duration
	for _, f := range slices.SortedStableFunc(slices.Values(files), func(a, b *result.File) int {
		return cmp.Compare(a.Path, b.Path)
	}) {
		s := junitSuiteOf(f)
		s.Hostname = host
		doc.Tests += s.Tests
		doc.Failures += s.Failures
		total += f.Duration
		doc.Suites = append(doc.Suites, s)
	}
	doc.Time = junitTime(total)

	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	return nil
}

func junitSuiteOf(r *result.File) junitSuite {
	s := junitSuite{Name: r.Path, Time: junitTime(r.Duration)}
	if r.Run > 0 {
		s.Name += fmt.Sprintf(" (run %d)", r.Run)
	}
	if !r.Started.IsZero() {
		// The schema's timestamp has no zone; UTC keeps shards on
		// machines in different zones comparable.
		s.Timestamp = r.Started.UTC().Format("2006-01-02T15:04:05")
	}
	add := func(c junitCase) {
		s.Tests++
		if c.Failure != nil {
			s.Failures++
		}
		if c.Skipped != nil {
			s.Skipped++
		}
		s.Cases = append(s.Cases, c)
	}
	var subtime time.Duration
	for _, st := range r.Subtests {
		c := junitCase{Name: st.Name, Classname: s.Name, Time: junitTime(st.Duration)}
		switch st.Status {
		case result.Failed:
			c.Failure = junitFailureOf(st.Failure)
		case result.Skipped:
			c.Skipped = &junitSkipped{Message: st.Reason}
		}
		subtime += st.Duration
		add(c)
	}
	if c, ok := fileCase(r, s.Name, r.Duration-subtime); ok {
		add(c)
	}
	if r.Failed() && r.Console != nil {
		// Failures the guest had no part in, explained once for the
		// whole file, as the console report does.
		var b strings.Builder
		junitConsole(&b, r.Console.Console)
		s.SystemOut = b.String()
	}
	return s
}

// fileCase is the file's own testcase: the whole file when it has no
// sub-tests, else what happened outside them when that failed the file or
// skipped the rest of it. A file whose failures are all in its sub-tests
// needs none.
func fileCase(r *result.File, suite string, outside time.Duration) (junitCase, bool) {
	c := junitCase{Name: r.Path, Classname: suite, Time: junitTime(max(outside, 0))}
	switch {
	case r.Failure != nil:
		c.Failure = junitFailureOf(r.Failure)
	case r.Status == result.Failed && !slices.ContainsFunc(r.Subtests, subtestFailed):
		c.Failure = junitFailureOf(nil)
	case r.Status == result.Skipped:
		c.Skipped = &junitSkipped{Message: cmp.Or(r.Reason, "todo")}
	}
	return c, len(r.Subtests) == 0 || c.Failure != nil || c.Skipped != nil
}

func subtestFailed(st result.Subtest) bool { return st.Status == result.Failed }

// junitFailureOf carries the message in the attribute (its first line, as
// CI systems show it in one line) and the whole report in the body.
func junitFailureOf(f *result.Failure) *junitFailure {
	if f == nil {
		return &junitFailure{Message: "failed", Type: "failure"}
	}
	// Escaped as on the console: encoding/xml would otherwise replace
	// the guest's control bytes, which XML cannot hold.
	msg := printable.Text(f.Message)
	first, _, _ := strings.Cut(msg, "\n")
	var b strings.Builder
	b.WriteString(strings.TrimRight(msg, "\n"))
	if tb := strings.TrimRight(f.Traceback, "\n"); tb != "" {
		b.WriteString("\n\n" + tb)
	}
	reports := f.AllReports()
	for _, r := range reports {
		if r.Expected {
			continue
		}
		b.WriteString("\n\n--- kernel report on " + r.VM + ": " + printable.Line(r.Title) + " ---\n")
		b.WriteString(strings.TrimRight(printable.Text(r.Text), "\n"))
	}
	if f.Guest != nil && len(f.Guest.Console) > 0 {
		b.WriteString("\n\n")
		junitConsole(&b, f.Guest.Console)
	}
	b.WriteString("\n")
	return &junitFailure{Message: first, Type: "failure", Body: b.String()}
}

// junitConsole writes a console tail the way JUnit output shows one.
func junitConsole(b *strings.Builder, lines []string) {
	tail := result.Tail(lines)
	b.WriteString(result.TailHeader(len(tail)))
	for _, l := range tail {
		b.WriteString("\n")
		b.WriteString(printable.Line(l))
	}
}

func junitTime(d time.Duration) string {
	return fmt.Sprintf("%.3f", d.Seconds())
}
