// Package result is what a test run produces: the outcome of each file and
// sub-test, the failures with what the guest showed when it was involved,
// and the events of a run as they happen. The Lua bindings fill it in; the
// runner and the reporters read it. It knows nothing of Lua, QEMU or VMs,
// so a reporter that imports it pulls in neither.
package result

import "time"

// Status is how a file or a sub-test ended.
type Status int

const (
	Passed Status = iota
	Failed
	Skipped // todo(): a sub-test marked todo, or a file skipped at file scope
)

func (s Status) String() string {
	switch s {
	case Passed:
		return "ok"
	case Failed:
		return "FAIL"
	default:
		return "todo"
	}
}

// Failure describes why a file or a sub-test failed.
type Failure struct {
	Message   string // the error, starting with "file.lua:12: "; never a console tail
	Location  string // "tests/x.lua:12", the failing call in the test file
	Traceback string // Lua traceback into the test file
	// Guest is what the guest showed, when the failure came from it (the
	// VM died, the agent vanished, a call timed out, a kernel report).
	Guest *GuestError
	// Reports are the kernel reports that failed it (or that an
	// expectation covered), in the order they appeared.
	Reports []KernelReport
}

// AllReports is the failure's kernel reports and those of its guest
// error, each once.
func (f *Failure) AllReports() []KernelReport {
	out := append([]KernelReport(nil), f.Reports...)
	if f.Guest == nil {
		return out
	}
	for _, g := range f.Guest.Reports {
		seen := false
		for _, r := range out {
			if r.Title == g.Title && r.Time.Equal(g.Time) && r.VM == g.VM {
				seen = true
			}
		}
		if !seen {
			out = append(out, g)
		}
	}
	return out
}

// Subtest is one test(name, fn) call.
type Subtest struct {
	Name     string
	Status   Status
	Reason   string // todo reason
	Failure  *Failure
	Duration time.Duration
}

// File is one test file's run.
type File struct {
	Path    string    // as shown to the user, relative to where provium started
	Run     int       // which run of the file, with --repeat (from 1); 0 otherwise
	Started time.Time // when the runner started it
	Log     string    // the kept log, if any (a failed file's)

	Status   Status
	Failure  *Failure // an error outside test(): the file stopped there
	Reason   string   // todo() at file scope: its reason (Status is Skipped)
	Subtests []Subtest
	Duration time.Duration
	// Console is the console of the VM a failing file used last, shown
	// once per file for failures the guest had no part in (an assertion
	// that did not hold): the guest's side of the story, without
	// repeating it under every failed sub-test.
	Console *GuestError
	// Touched is false for a helper file that registered no test and
	// touched no VM.
	Touched bool
	// Loaded lists the files the script loaded with dofile, loadfile or
	// require, as absolute paths, in order (fixture cache keys use it).
	Loaded []string
	// Prints are the last MaxPrints lines the file's print() wrote, for
	// the report of a failing file.
	Prints []string
}

// MaxPrints bounds File.Prints.
const MaxPrints = 50

// Failed reports whether the file counts as a failure.
func (f *File) Failed() bool { return f.Status == Failed }

// Failures returns every failure of the file: its sub-tests' in order,
// then the file's own.
func (f *File) Failures() []*Failure {
	var out []*Failure
	for _, st := range f.Subtests {
		if st.Failure != nil {
			out = append(out, st.Failure)
		}
	}
	if f.Failure != nil {
		out = append(out, f.Failure)
	}
	return out
}

// Summary counts the files of a run.
type Summary struct {
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"` // todo() at file scope
	// NotRun counts files that never finished: not started after a
	// --fail-fast failure, or cancelled or not started by an interrupt.
	NotRun int `json:"not_run"`
	// Runs counts the runs of files, when files ran more than once.
	Runs        int           `json:"runs,omitempty"`
	Interrupted bool          `json:"interrupted"`
	Duration    time.Duration `json:"-"`
	RunDir      string        `json:"run_dir,omitempty"`
	// Reports counts the kernel reports of the run that failed something,
	// by title.
	Reports map[string]int `json:"kernel_reports,omitempty"`
}

// OK reports whether the run passed: no failure and not interrupted.
func (s Summary) OK() bool { return s.Failed == 0 && !s.Interrupted }

// AddReports counts the kernel reports of a finished file that failed it.
func (s *Summary) AddReports(f *File) {
	for _, fl := range f.Failures() {
		for _, r := range fl.Reports {
			if r.Expected {
				continue
			}
			if s.Reports == nil {
				s.Reports = map[string]int{}
			}
			s.Reports[r.Title]++
		}
	}
}

// Add counts one finished file.
func (s *Summary) Add(f *File) {
	switch f.Status {
	case Passed:
		s.Passed++
	case Failed:
		s.Failed++
	default:
		s.Skipped++
	}
}
