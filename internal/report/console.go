package report

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/provium/provium/internal/printable"
	"github.com/provium/provium/internal/result"
)

// Verbosity selects how much Console prints.
type Verbosity int

const (
	// Quiet prints only failed files and the summary.
	Quiet Verbosity = -1
	// Normal prints a line per file and the sub-tests of failed files.
	Normal Verbosity = 0
	// Verbose also prints the sub-tests of passing files, with durations,
	// and where the run's logs are (they are all kept).
	Verbose Verbosity = 1
)

// Console writes the human output of a run. On a terminal it also keeps a
// live status line at the bottom, which it clears before writing anything
// else so that the line never ends up in the scrollback, a pipe or a log.
// It is safe for concurrent use.
type Console struct {
	mu     sync.Mutex
	w      io.Writer
	v      Verbosity
	live   bool // w is a terminal: draw the status line
	width  func() int
	status string // the status line currently drawn
}

// NewConsole returns a Console writing to w.
func NewConsole(w io.Writer, v Verbosity) *Console {
	c := &Console{w: w, v: v, width: func() int { return 80 }}
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		c.live = true
		c.width = func() int { return termWidth(f) }
	}
	return c
}

// Live reports whether the console draws a status line.
func (c *Console) Live() bool { return c.live }

// Status replaces the live status line; it does nothing off a terminal.
func (c *Console) Status(line string) {
	if !c.live {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// A line as wide as the terminal would wrap, and "\r" would then
	// clear only its last row.
	if w := c.width() - 1; w > 0 && utf8.RuneCountInString(line) > w {
		line = string([]rune(line)[:w])
	}
	c.status = line
	fmt.Fprint(c.w, "\r\x1b[K"+line)
}

// clearStatusLocked erases the status line; the caller redraws it or not.
func (c *Console) clearStatusLocked() {
	if c.status != "" {
		fmt.Fprint(c.w, "\r\x1b[K")
	}
}

// Printf writes a line of its own (a note, a warning) above the status line.
func (c *Console) Printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearStatusLocked()
	fmt.Fprintf(c.w, format, args...)
	c.redrawLocked()
}

func (c *Console) redrawLocked() {
	if c.status != "" {
		fmt.Fprint(c.w, c.status)
	}
}

// File prints the block of a file that has finished.
func (c *Console) File(f *result.File) {
	if c.v == Quiet && !f.Failed() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearStatusLocked()
	WriteBlock(c.w, f, c.v)
	c.redrawLocked()
}

// Runs prints how often each file passed, for a run that repeated files.
func (c *Console) Runs(lines []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearStatusLocked()
	fmt.Fprintln(c.w, "Runs:")
	for _, l := range lines {
		fmt.Fprintln(c.w, "  "+printable.Line(l))
	}
	c.redrawLocked()
}

// Finish removes the status line and prints the end of the run: the logs of
// failed files, notes on files that did not run, and the summary line.
func (c *Console) Finish(s result.Summary, files []*result.File) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearStatusLocked()
	c.status = ""
	writeFailedLogs(c.w, files)
	switch {
	case s.Interrupted && s.NotRun > 0:
		fmt.Fprintf(c.w, "interrupted: %s did not finish\n", plural(s.NotRun, "file"))
	case s.Interrupted:
		fmt.Fprintln(c.w, "interrupted")
	case s.NotRun > 0:
		fmt.Fprintf(c.w, "stopped after the first failure: %s not run\n", plural(s.NotRun, "file"))
	}
	writeReportCounts(c.w, s.Reports)
	if c.v == Verbose && s.RunDir != "" {
		fmt.Fprintf(c.w, "Logs: %s\n", s.RunDir)
	}
	fmt.Fprintf(c.w, "\n%s\n", SummaryLine(s))
}

// SummaryLine is the last line of a run: "ok: N passed, M failed" or
// "FAIL: ...", with ", K skipped" when files were skipped.
func SummaryLine(s result.Summary) string {
	verdict := "ok"
	if !s.OK() {
		verdict = "FAIL"
	}
	line := fmt.Sprintf("%s: %d passed, %d failed", verdict, s.Passed, s.Failed)
	if s.Skipped > 0 {
		line += fmt.Sprintf(", %d skipped", s.Skipped)
	}
	if s.Runs > 0 {
		line += fmt.Sprintf(" (%d runs)", s.Runs)
	}
	return line
}

// writeReportCounts lists the run's kernel reports by title, most
// frequent first.
func writeReportCounts(w io.Writer, counts map[string]int) {
	if len(counts) == 0 {
		return
	}
	titles := make([]string, 0, len(counts))
	for t := range counts {
		titles = append(titles, t)
	}
	slices.SortFunc(titles, func(a, b string) int {
		if counts[a] != counts[b] {
			return counts[b] - counts[a]
		}
		return strings.Compare(a, b)
	})
	fmt.Fprintln(w, "Kernel reports:")
	for _, t := range titles {
		fmt.Fprintf(w, "  %4d× %s\n", counts[t], printable.Line(t))
	}
}

// writeFailedLogs lists the kept logs of failed files, names aligned.
func writeFailedLogs(w io.Writer, files []*result.File) {
	var failed []*result.File
	width := 0
	for _, f := range files {
		if f.Failed() && f.Log != "" {
			failed = append(failed, f)
			width = max(width, len(f.Path))
		}
	}
	if len(failed) == 0 {
		return
	}
	fmt.Fprintln(w, "Failed test logs:")
	for _, f := range failed {
		fmt.Fprintf(w, "  %-*s  → %s\n", width, f.Path, f.Log)
	}
}

// WriteBlock writes the report of one file as the console shows it; the
// runner also appends it to the file's log. Everything of the guest's is
// made printable on the way: messages carry its output too.
func WriteBlock(w io.Writer, f *result.File, v Verbosity) {
	name := f.Path
	if f.Run > 0 {
		name += fmt.Sprintf(" (run %d)", f.Run)
	}
	fmt.Fprintf(w, "  %s ... %s\n", name, headline(f))
	if f.Status != result.Failed && v < Verbose {
		return
	}
	for _, st := range f.Subtests {
		writeSubtest(w, st, v)
	}
	if f.Failure != nil {
		writeMessage(w, "    FAIL: ", f.Failure.Message)
		writeFailureDetail(w, f.Failure)
	}
	if f.Failed() && f.Console != nil {
		writeConsole(w, f.Console.Console)
	}
	if f.Failed() && len(f.Prints) > 0 {
		fmt.Fprintf(w, "    --- print (last %d lines) ---\n", len(f.Prints))
		for _, l := range f.Prints {
			fmt.Fprintln(w, "    "+printable.Line(l))
		}
	}
}

// headline is what follows "path ... ": "ok (86 tests, 4.3s)", "FAIL (3.2s)".
func headline(r *result.File) string {
	d := seconds(r.Duration)
	switch r.Status {
	case result.Failed:
		return "FAIL (" + d + ")"
	case result.Skipped:
		if r.Reason != "" {
			return "todo: " + printable.Line(r.Reason) + " (" + d + ")"
		}
		return "todo (" + d + ")"
	}
	if len(r.Subtests) == 0 {
		return "ok (" + d + ")"
	}
	todo := 0
	for _, st := range r.Subtests {
		if st.Status == result.Skipped {
			todo++
		}
	}
	counts := plural(len(r.Subtests), "test")
	if todo > 0 {
		counts += fmt.Sprintf(", %d todo", todo)
	}
	return "ok (" + counts + ", " + d + ")"
}

func writeSubtest(w io.Writer, st result.Subtest, v Verbosity) {
	prefix := "    · " + printable.Line(st.Name) + " ... "
	switch st.Status {
	case result.Failed:
		msg := "failed"
		if st.Failure != nil {
			msg = st.Failure.Message
		}
		writeMessage(w, prefix+"FAIL: ", msg)
		if st.Failure != nil {
			writeFailureDetail(w, st.Failure)
		}
		return
	case result.Skipped:
		prefix += "todo"
		if st.Reason != "" {
			prefix += ": " + printable.Line(st.Reason)
		}
	default:
		prefix += "ok"
	}
	if v == Verbose {
		prefix += " (" + seconds(st.Duration) + ")"
	}
	fmt.Fprintln(w, prefix)
}

// writeMessage writes a possibly multi-line message after prefix, later
// lines indented under it.
func writeMessage(w io.Writer, prefix, msg string) {
	first, rest, _ := strings.Cut(strings.TrimRight(printable.Text(msg), "\n"), "\n")
	fmt.Fprintln(w, prefix+first)
	if rest != "" {
		writeIndented(w, "      ", rest)
	}
}

// WriteFailure writes a failure on its own, as the console report shows
// one: the message, then its traceback, kernel reports and console tail.
func WriteFailure(w io.Writer, f *result.Failure) {
	writeMessage(w, "error: ", f.Message)
	writeFailureDetail(w, f)
}

// writeFailureDetail writes the traceback, the kernel reports and the
// console tail of a failure.
func writeFailureDetail(w io.Writer, f *result.Failure) {
	if tb := strings.TrimRight(f.Traceback, "\n"); tb != "" {
		writeIndented(w, "      ", printable.Text(tb))
	}
	reports := f.AllReports()
	for _, r := range reports {
		writeReport(w, r)
	}
	if f.Guest != nil {
		writeConsole(w, f.Guest.Console)
	}
}

// writeReport writes the head of a kernel report the way the console
// report shows one; the log has it whole.
func writeReport(w io.Writer, r result.KernelReport) {
	head := "    --- kernel report on " + r.VM + ": " + r.Title
	if r.Expected {
		head += " (expected)"
	}
	if r.At != "" {
		head += " (at " + r.At + ")"
	}
	fmt.Fprintln(w, printable.Line(head+" ---"))
	if r.Expected {
		return
	}
	lines := r.Head(result.ReportLines)
	for _, l := range lines {
		fmt.Fprintln(w, "    "+printable.Line(l))
	}
	if n := strings.Count(strings.TrimRight(r.Text, "\n"), "\n") + 1; n > len(lines) {
		fmt.Fprintf(w, "    ... (%d more lines in the log)\n", n-len(lines))
	}
}

// writeConsole writes a console tail the way the console report shows one.
func writeConsole(w io.Writer, lines []string) {
	tail := result.Tail(lines)
	if len(tail) == 0 {
		return
	}
	fmt.Fprintln(w, "    "+result.TailHeader(len(tail)))
	for _, l := range tail {
		fmt.Fprintln(w, "    "+printable.Line(l))
	}
}

func writeIndented(w io.Writer, indent, text string) {
	for l := range strings.SplitSeq(text, "\n") {
		fmt.Fprintln(w, indent+l)
	}
}

// seconds formats a duration as the console shows it: "2.1s".
func seconds(d time.Duration) string {
	return fmt.Sprintf("%.1fs", d.Seconds())
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
