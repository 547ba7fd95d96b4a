// Package report turns what a test run does into output: the console
// summary, JSON event lines and JUnit XML.
//
// Console writes the human output of SPEC §3: one block per file as it
// completes, a section listing the logs of failed files and a final line
// that counts files. JSON writes one Event per line instead, for tools.
// WriteJUnit writes the whole run as JUnit XML for CI systems, one testsuite
// per file and one testcase per sub-test, with the file path as classname so
// the reports of several shards merge without clashes.
package report

import "time"

// Event is one thing that happened in a run, as --json prints it.
type Event struct {
	Time     time.Time     `json:"time"`
	Kind     string        `json:"event"` // one of the Kind constants
	File     string        `json:"file,omitempty"`
	Name     string        `json:"name,omitempty"`   // sub-test, VM or fixture name
	Status   string        `json:"status,omitempty"` // ok, FAIL, todo
	Message  string        `json:"message,omitempty"`
	Location string        `json:"location,omitempty"` // file:line of a failure
	Log      string        `json:"log,omitempty"`      // file_finished: the kept log of a failed file
	Duration time.Duration `json:"-"`
	Seconds  float64       `json:"seconds,omitempty"` // Duration, filled in by JSON
	Summary  *Summary      `json:"summary,omitempty"` // run_finished
}

// Event kinds.
const (
	KindRunStarted   = "run_started"   // Message: the run directory
	KindRunFinished  = "run_finished"  // Status and Summary
	KindFileStarted  = "file_started"  //
	KindFileFinished = "file_finished" // Status, Message of a failure, Log
	KindSubtest      = "subtest"       // Name, Status: ok, FAIL or todo
	KindVMBooted     = "vm_booted"     // Name of the VM, boot Duration
	KindVMResumed    = "vm_resumed"    // Name of the VM, resume Duration
	KindVMShutdown   = "vm_shutdown"   // Name of the VM, its lifetime
	KindFixtureBuilt = "fixture_built" // Name of the fixture, build Duration
)
