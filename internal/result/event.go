package result

import "time"

// EventKind names what an Event reports.
type EventKind string

// Event kinds, as --json prints them.
const (
	RunStarted   EventKind = "run_started"   // Message: the run directory
	RunFinished  EventKind = "run_finished"  // Status and Summary
	FileStarted  EventKind = "file_started"  //
	FileFinished EventKind = "file_finished" // Status, Message of a failure, Log
	SubtestEnded EventKind = "subtest"       // Name, Status: ok, FAIL or todo
	VMBooted     EventKind = "vm_booted"     // Name of the VM, boot Duration
	VMResumed    EventKind = "vm_resumed"    // Name of the VM, resume Duration
	VMShutdown   EventKind = "vm_shutdown"   // Name of the VM, its lifetime
	FixtureBuilt EventKind = "fixture_built" // Name of the fixture, build Duration
	KernelSeen   EventKind = "kernel_report" // Report, Name of the sub-test it failed ("" at file scope)
)

// Event is one thing that happened in a run.
type Event struct {
	Time     time.Time     `json:"time"`
	Kind     EventKind     `json:"event"`
	File     string        `json:"file,omitempty"`
	Run      int           `json:"run,omitempty"`    // which run of the file, with --repeat
	Name     string        `json:"name,omitempty"`   // sub-test, VM or fixture name
	Status   string        `json:"status,omitempty"` // ok, FAIL, todo
	Message  string        `json:"message,omitempty"`
	Location string        `json:"location,omitempty"` // file:line of a failure
	Log      string        `json:"log,omitempty"`      // file_finished: the kept log of a failed file
	Duration time.Duration `json:"-"`
	Seconds  float64       `json:"seconds,omitempty"` // Duration, filled in by the JSON writer
	Summary  *Summary      `json:"summary,omitempty"` // run_finished
	// Console is the console tail of a failure the guest was involved in.
	Console []string `json:"console,omitempty"`
	// Report is a kernel report (kernel_report events).
	Report *KernelReport `json:"report,omitempty"`
}
