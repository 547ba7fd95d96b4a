package report

import (
	"time"

	"github.com/provium/provium/internal/luaapi"
)

// File is one test file that ran to the end.
type File struct {
	Path    string         // as shown to the user, relative to where provium started
	Result  *luaapi.Result // never nil
	Started time.Time
	Log     string // the kept log, if any (a failed file's)
}

// Failed reports whether the file counts as a failure.
func (f File) Failed() bool { return f.Result.Status == luaapi.Failed }

// Summary counts the files of a run.
type Summary struct {
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"` // todo() at file scope
	// NotRun counts files that never finished: not started after a
	// --fail-fast failure, or cancelled or not started by an interrupt.
	NotRun      int           `json:"not_run"`
	Interrupted bool          `json:"interrupted"`
	Duration    time.Duration `json:"-"`
	RunDir      string        `json:"run_dir,omitempty"`
}

// OK reports whether the run passed: no failure and not interrupted.
func (s Summary) OK() bool { return s.Failed == 0 && !s.Interrupted }

// Add counts one finished file.
func (s *Summary) Add(f File) {
	switch f.Result.Status {
	case luaapi.Passed:
		s.Passed++
	case luaapi.Failed:
		s.Failed++
	default:
		s.Skipped++
	}
}
