package luaapi

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
	Message   string   // the error, starting with "file.lua:12: "
	Location  string   // "tests/x.lua:12", the failing call in the test file
	Traceback string   // Lua traceback into the test file
	Console   []string // last console lines of the VM the failure involved, if any
	VM        string   // name of that VM, if any
}

// Subtest is one test(name, fn) call.
type Subtest struct {
	Name     string
	Status   Status
	Reason   string // todo reason
	Failure  *Failure
	Duration time.Duration
}

// Result is what running one Lua file produced.
type Result struct {
	Status   Status
	Failure  *Failure // an error outside test(): the file stopped there
	Reason   string   // todo() at file scope: its reason (Status is Skipped)
	Subtests []Subtest
	Duration time.Duration
	// Touched is false for a helper file that registered no test and
	// touched no VM.
	Touched bool
	// Loaded lists the files the script loaded with dofile, loadfile or
	// require, as absolute paths, in order (fixture cache keys use it).
	Loaded []string
	// Machines are the VMs the file created, in creation order. A fixture
	// build snapshots the last one.
	Machines []Machine
}
