package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/provium/provium/internal/result"
)

// The files of a small run: one passing without sub-tests, one passing with
// sub-tests, one failing in a sub-test, one failing outside any sub-test,
// one skipped.
func sampleFiles() []*result.File {
	started := time.Date(2026, 11, 27, 6, 20, 0, 0, time.UTC)
	console := make([]string, 25)
	for i := range console {
		console[i] = fmt.Sprintf("[    %d.0] line %d", i, i)
	}
	return []*result.File{
		{Path: "tests/boot.lua", Started: started,
			Status: result.Passed, Duration: 2100 * time.Millisecond, Touched: true,
		},
		{Path: "tests/token.lua", Started: started,
			Status: result.Passed, Duration: 4300 * time.Millisecond, Touched: true,
			Subtests: []result.Subtest{
				{Name: "mint", Status: result.Passed, Duration: time.Second},
				{Name: "revoke", Status: result.Skipped, Reason: "needs 6.9"},
				{Name: "expire", Status: result.Passed, Duration: 2 * time.Second},
			},
		},
		{Path: "tests/access.lua", Started: started, Log: "/tmp/provium-runs/run-x/tests_access.lua.log",
			Status: result.Failed, Duration: 3200 * time.Millisecond, Touched: true,
			Subtests: []result.Subtest{
				{Name: "basic_allow", Status: result.Passed, Duration: time.Second},
				{Name: "deny_first", Status: result.Failed, Duration: 2 * time.Second, Failure: &result.Failure{
					Message:   "tests/access.lua:12: expected 0, got -13",
					Location:  "tests/access.lua:12",
					Traceback: "stack traceback:\n\ttests/access.lua:12: in function <tests/access.lua:10>",
				}},
			},
			Console: &result.GuestError{VM: "minimal#1", Err: errors.New("deny_first"), Console: console},
		},
		{Path: "tests/crash.lua", Started: started, Log: "/tmp/provium-runs/run-x/tests_crash.lua.log",
			Status: result.Failed, Duration: 500 * time.Millisecond, Touched: true,
			Failure: &result.Failure{Message: "timed out after 5m0s\nsecond line", Guest: &result.GuestError{
				VM: "minimal#2", Err: errors.New("timed out"), Console: []string{"boot\x1b[31m red", "ok\r", "bell\a"}}},
		},
		{Path: "tests/later.lua", Started: started,
			Status: result.Skipped, Reason: "needs a 6.9 kernel", Duration: 100 * time.Millisecond, Touched: true,
		},
	}
}

func render(v Verbosity, s result.Summary) string {
	var b bytes.Buffer
	c := NewConsole(&b, v)
	files := sampleFiles()
	for _, f := range files {
		c.File(f)
	}
	c.Finish(s, files)
	return b.String()
}

func TestConsoleNormal(t *testing.T) {
	got := render(Normal, result.Summary{Passed: 2, Failed: 2, Skipped: 1})
	want := `  tests/boot.lua ... ok (2.1s)
  tests/token.lua ... ok (3 tests, 1 todo, 4.3s)
  tests/access.lua ... FAIL (3.2s)
    · basic_allow ... ok
    · deny_first ... FAIL: tests/access.lua:12: expected 0, got -13
      stack traceback:
      	tests/access.lua:12: in function <tests/access.lua:10>
    --- console (last 20 lines) ---
` + consoleLines(5, 25) + `  tests/crash.lua ... FAIL (0.5s)
    FAIL: timed out after 5m0s
      second line
    --- console (last 3 lines) ---
    boot red
    ok
    bell\x07
  tests/later.lua ... todo: needs a 6.9 kernel (0.1s)
Failed test logs:
  tests/access.lua  → /tmp/provium-runs/run-x/tests_access.lua.log
  tests/crash.lua   → /tmp/provium-runs/run-x/tests_crash.lua.log

FAIL: 2 passed, 2 failed, 1 skipped
`
	if got != want {
		t.Errorf("console output:\n%s\nwant:\n%s", got, want)
	}
}

func consoleLines(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "    [    %d.0] line %d\n", i, i)
	}
	return b.String()
}

func TestConsoleQuiet(t *testing.T) {
	got := render(Quiet, result.Summary{Passed: 2, Failed: 2, Skipped: 1})
	for _, absent := range []string{"boot.lua ...", "token.lua ...", "later.lua ..."} {
		if strings.Contains(got, absent) {
			t.Errorf("quiet output shows a file that did not fail (%q):\n%s", absent, got)
		}
	}
	for _, present := range []string{"tests/access.lua ... FAIL", "· basic_allow ... ok", "Failed test logs:", "\nFAIL: 2 passed, 2 failed, 1 skipped\n"} {
		if !strings.Contains(got, present) {
			t.Errorf("quiet output lacks %q:\n%s", present, got)
		}
	}
}

func TestConsoleVerbose(t *testing.T) {
	got := render(Verbose, result.Summary{Passed: 2, Failed: 2, Skipped: 1, RunDir: "/tmp/provium-runs/run-x"})
	for _, present := range []string{
		"  tests/token.lua ... ok (3 tests, 1 todo, 4.3s)\n    · mint ... ok (1.0s)\n    · revoke ... todo: needs 6.9 (0.0s)\n    · expire ... ok (2.0s)\n",
		"    · basic_allow ... ok (1.0s)\n",
		"Logs: /tmp/provium-runs/run-x\n\nFAIL: 2 passed, 2 failed, 1 skipped\n",
	} {
		if !strings.Contains(got, present) {
			t.Errorf("verbose output lacks %q:\n%s", present, got)
		}
	}
}

func TestSummaryLine(t *testing.T) {
	tests := []struct {
		s    result.Summary
		want string
	}{
		{result.Summary{Passed: 3}, "ok: 3 passed, 0 failed"},
		{result.Summary{Passed: 2, Failed: 1}, "FAIL: 2 passed, 1 failed"},
		{result.Summary{Passed: 2, Skipped: 1}, "ok: 2 passed, 0 failed, 1 skipped"},
		{result.Summary{Passed: 2, Interrupted: true}, "FAIL: 2 passed, 0 failed"},
		{result.Summary{}, "ok: 0 passed, 0 failed"},
	}
	for _, tt := range tests {
		if got := SummaryLine(tt.s); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.s, got, tt.want)
		}
	}
}

func TestFinishNotes(t *testing.T) {
	tests := []struct {
		s    result.Summary
		want string
	}{
		{result.Summary{Passed: 1, Failed: 1, NotRun: 3}, "stopped after the first failure: 3 files not run\n\nFAIL: 1 passed, 1 failed\n"},
		{result.Summary{Passed: 1, NotRun: 1, Interrupted: true}, "interrupted: 1 file did not finish\n\nFAIL: 1 passed, 0 failed\n"},
		{result.Summary{Passed: 1, Interrupted: true}, "interrupted\n\nFAIL: 1 passed, 0 failed\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		NewConsole(&b, Normal).Finish(tt.s, nil)
		if b.String() != tt.want {
			t.Errorf("%+v:\n%q\nwant\n%q", tt.s, b.String(), tt.want)
		}
	}
}

func TestStatusLineOnlyOnTerminal(t *testing.T) {
	var b bytes.Buffer
	c := NewConsole(&b, Normal)
	c.Status("1/3 done")
	c.File(sampleFiles()[0])
	if strings.Contains(b.String(), "done") || strings.Contains(b.String(), "\x1b") {
		t.Errorf("status line written to a non-terminal: %q", b.String())
	}

	b.Reset()
	c = NewConsole(&b, Normal)
	c.live = true // as on a terminal
	c.Status("1/3 done")
	c.File(sampleFiles()[0])
	c.Status("2/3 done")
	c.Finish(result.Summary{Passed: 1}, nil)
	want := "\r\x1b[K1/3 done" +
		"\r\x1b[K  tests/boot.lua ... ok (2.1s)\n1/3 done" +
		"\r\x1b[K2/3 done" +
		"\r\x1b[K\nok: 1 passed, 0 failed\n"
	if b.String() != want {
		t.Errorf("terminal output:\n%q\nwant\n%q", b.String(), want)
	}
}

func TestStatusLineFitsTerminal(t *testing.T) {
	var b bytes.Buffer
	c := NewConsole(&b, Normal)
	c.live = true
	c.width = func() int { return 10 }
	c.Status("0123456789abc")
	if got := b.String(); got != "\r\x1b[K012345678" {
		t.Errorf("status = %q, want it cut to the width minus one", got)
	}
}

// schema-shaped: the elements and attributes of Jenkins' junit-10.xsd.
type xTestsuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     float64      `xml:"time,attr"`
	Suites   []xTestsuite `xml:"testsuite"`
	AnyAttr  []xml.Attr   `xml:",any,attr"`
}

type xTestsuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      float64     `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	Hostname  string      `xml:"hostname,attr"`
	Cases     []xTestcase `xml:"testcase"`
	SystemOut string      `xml:"system-out"`
	AnyAttr   []xml.Attr  `xml:",any,attr"`
}

type xTestcase struct {
	Name      string  `xml:"name,attr"`
	Classname string  `xml:"classname,attr"`
	Time      float64 `xml:"time,attr"`
	Failure   []struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Body    string `xml:",chardata"`
	} `xml:"failure"`
	Skipped []struct {
		Message string `xml:"message,attr"`
	} `xml:"skipped"`
	AnyAttr []xml.Attr `xml:",any,attr"`
}

func TestJUnit(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJUnit(&b, sampleFiles()); err != nil {
		t.Fatal(err)
	}
	var doc xTestsuites
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("JUnit output does not parse: %v\n%s", err, b.String())
	}
	if len(doc.AnyAttr) > 0 {
		t.Errorf("testsuites has attributes the schema lacks: %v", doc.AnyAttr)
	}
	if doc.Tests != 8 || doc.Failures != 2 || doc.Errors != 0 {
		t.Errorf("testsuites counts tests=%d failures=%d errors=%d, want 8, 2, 0", doc.Tests, doc.Failures, doc.Errors)
	}
	if doc.Time != 10.2 {
		t.Errorf("testsuites time = %v, want 10.2", doc.Time)
	}

	type counts struct{ tests, failures, skipped int }
	want := map[string]counts{
		"tests/access.lua": {2, 1, 0}, // two sub-tests
		"tests/boot.lua":   {1, 0, 0}, // no sub-tests: the file is the testcase
		"tests/crash.lua":  {1, 1, 0}, // failure outside sub-tests
		"tests/later.lua":  {1, 0, 1}, // skipped file
		"tests/token.lua":  {3, 0, 1}, // one todo
	}
	var names []string
	for _, s := range doc.Suites {
		names = append(names, s.Name)
		if len(s.AnyAttr) > 0 {
			t.Errorf("testsuite %s has attributes the schema lacks: %v", s.Name, s.AnyAttr)
		}
		w, ok := want[s.Name]
		if !ok {
			t.Errorf("unexpected testsuite %q", s.Name)
			continue
		}
		if s.Tests != w.tests || s.Failures != w.failures || s.Skipped != w.skipped || len(s.Cases) != w.tests {
			t.Errorf("%s: tests=%d failures=%d skipped=%d cases=%d, want %+v", s.Name, s.Tests, s.Failures, s.Skipped, len(s.Cases), w)
		}
		if s.Timestamp != "2026-11-27T06:20:00" {
			t.Errorf("%s: timestamp %q", s.Name, s.Timestamp)
		}
		for _, c := range s.Cases {
			if c.Classname != s.Name {
				t.Errorf("%s: testcase %q has classname %q, want the file path", s.Name, c.Name, c.Classname)
			}
			if len(c.AnyAttr) > 0 {
				t.Errorf("testcase %s has attributes the schema lacks: %v", c.Name, c.AnyAttr)
			}
		}
	}
	if got := strings.Join(names, " "); got != "tests/access.lua tests/boot.lua tests/crash.lua tests/later.lua tests/token.lua" {
		t.Errorf("suites not sorted by path: %s", got)
	}

	access := doc.Suites[0]
	deny := access.Cases[1]
	if deny.Name != "deny_first" || len(deny.Failure) != 1 {
		t.Fatalf("deny_first testcase = %+v", deny)
	}
	f := deny.Failure[0]
	if f.Message != "tests/access.lua:12: expected 0, got -13" || f.Type == "" {
		t.Errorf("failure attributes = %q, %q", f.Message, f.Type)
	}
	for _, part := range []string{"stack traceback:", "tests/access.lua:12: in function"} {
		if !strings.Contains(f.Body, part) {
			t.Errorf("failure body lacks %q:\n%s", part, f.Body)
		}
	}
	// An assertion is not the guest's doing: its console is the file's,
	// shown once in the suite's output.
	if strings.Contains(f.Body, "--- console") {
		t.Errorf("assertion failure carries a console tail:\n%s", f.Body)
	}
	for _, part := range []string{"--- console (last 20 lines) ---", "line 24", "line 5\n"} {
		if !strings.Contains(access.SystemOut, part) {
			t.Errorf("suite output lacks %q:\n%s", part, access.SystemOut)
		}
	}
	if strings.Contains(access.SystemOut, "line 4\n") {
		t.Errorf("suite output has more than 20 console lines:\n%s", access.SystemOut)
	}

	if later := doc.Suites[3].Cases[0]; len(later.Skipped) != 1 || later.Skipped[0].Message != "needs a 6.9 kernel" {
		t.Errorf("skipped file testcase = %+v, want the todo reason", later)
	}

	crash := doc.Suites[2].Cases[0]
	if crash.Name != "tests/crash.lua" || len(crash.Failure) != 1 || crash.Failure[0].Message != "timed out after 5m0s" {
		t.Errorf("file-level failure testcase = %+v", crash)
	}
	// The guest's escape sequence cannot be held by XML; it must not
	// break the document (it parsed above) and the rest of the line
	// survives.
	if !strings.Contains(crash.Failure[0].Body, "boot red\nok\nbell\\x07") {
		t.Errorf("console line lost: %q", crash.Failure[0].Body)
	}
}

func TestJUnitFileFailureBesideSubtests(t *testing.T) {
	files := []*result.File{{Path: "a.lua",
		Status:   result.Failed,
		Subtests: []result.Subtest{{Name: "one", Status: result.Passed}},
		Failure:  &result.Failure{Message: "a.lua:9: boom"},
	}}
	var b bytes.Buffer
	if err := WriteJUnit(&b, files); err != nil {
		t.Fatal(err)
	}
	var doc xTestsuites
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	cases := doc.Suites[0].Cases
	if len(cases) != 2 || cases[1].Name != "a.lua" || len(cases[1].Failure) != 1 {
		t.Errorf("cases = %+v, want the sub-test and a failed file testcase", cases)
	}
}

func TestJSONLines(t *testing.T) {
	var b bytes.Buffer
	j := NewJSON(&b)
	at := time.Date(2026, 11, 27, 6, 20, 0, 0, time.UTC)
	j.now = func() time.Time { return at }
	j.Emit(result.Event{Kind: result.FileStarted, File: "tests/a.lua"})
	j.Emit(result.Event{Kind: result.SubtestEnded, File: "tests/a.lua", Name: "x<y>", Status: "FAIL", Message: "a.lua:3: no", Duration: 1500 * time.Millisecond})
	j.Emit(result.Event{Kind: result.RunFinished, Status: "FAIL", Summary: &result.Summary{Passed: 1, Failed: 1}})
	if err := j.Err(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines, got %q", b.String())
	}
	if !strings.Contains(lines[1], `"name":"x<y>"`) {
		t.Errorf("HTML-escaped or missing name: %s", lines[1])
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i, err, l)
		}
		if m["time"] != "2026-11-27T06:20:00Z" {
			t.Errorf("line %d time = %v", i, m["time"])
		}
	}
	var ev result.Event
	json.Unmarshal([]byte(lines[1]), &ev)
	if ev.Kind != result.SubtestEnded || ev.Seconds != 1.5 || ev.Status != "FAIL" {
		t.Errorf("subtest event = %+v", ev)
	}
	json.Unmarshal([]byte(lines[2]), &ev)
	if ev.Summary == nil || ev.Summary.Failed != 1 {
		t.Errorf("run_finished summary = %+v", ev.Summary)
	}
}

// A guest's stderr reaches messages (vm:json puts it there): it must not
// drive the terminal that shows the report.
func TestGuestBytesInMessagesArePrintable(t *testing.T) {
	f := &result.File{Path: "t.lua", Status: result.Failed, Subtests: []result.Subtest{{
		Name: "json", Status: result.Failed, Failure: &result.Failure{
			Message:   "t.lua:3: vm:json on minimal#1: \"cat x\" exited with code 1: \x1b]0;pwned\x07\x1b[31mred\x1b[0m\x08",
			Traceback: "stack traceback:\n\tt.lua:3: in \x1b[2Jmain chunk",
		}}}}
	var b bytes.Buffer
	WriteBlock(&b, f, Normal)
	out := b.String()
	if strings.ContainsAny(out, "\x1b\x07\x08") {
		t.Errorf("control bytes reach the terminal: %q", out)
	}
	if !strings.Contains(out, `exited with code 1: red\x08`) {
		t.Errorf("the text around the escapes is lost: %q", out)
	}
	var x bytes.Buffer
	if err := WriteJUnit(&x, []*result.File{f}); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(x.String(), "\x1b\x07\x08") {
		t.Errorf("control bytes reach the JUnit file: %q", x.String())
	}
}

// A console tail that explains failures the guest had no part in is shown
// once for the file, not under every failed sub-test.
func TestFileConsoleShownOnce(t *testing.T) {
	fail := func(name string) result.Subtest {
		return result.Subtest{Name: name, Status: result.Failed, Failure: &result.Failure{Message: "t.lua:1: expected 1, got 2"}}
	}
	f := &result.File{Path: "t.lua", Status: result.Failed,
		Subtests: []result.Subtest{fail("a"), fail("b"), fail("c")},
		Console:  &result.GuestError{VM: "minimal#1", Err: errors.New("x"), Console: []string{"booted", "ready"}},
	}
	var b bytes.Buffer
	WriteBlock(&b, f, Normal)
	if n := strings.Count(b.String(), "--- console (last 2 lines) ---"); n != 1 {
		t.Errorf("console tail shown %d times, want once:\n%s", n, b.String())
	}
	// A guest failure shows its own tail where it happened.
	f.Subtests[1].Failure.Guest = &result.GuestError{VM: "minimal#1", Err: errors.New("gone"), Console: []string{"Oops"}}
	b.Reset()
	WriteBlock(&b, f, Normal)
	if !strings.Contains(b.String(), "--- console (last 1 lines) ---\n    Oops") {
		t.Errorf("guest failure without its tail:\n%s", b.String())
	}
}
