package luaapi

import (
	"context"
	"fmt"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/result"
)

// Kernel reports belong to the scope (sub-test, or the file outside any)
// during which they appeared: at the end of a scope, every running VM of
// the file is given a moment to print what it had (machine.DrainConsole),
// the reports since the last look are taken, and any that no expectation
// or ignore pattern covers fails the scope, even when every assertion
// held.

// guestCall is an agent call in progress or done in a scope: where a report
// that appeared at some time was, in the script.
type guestCall struct {
	at    time.Time
	where string // "tests/x.lua:12"
}

// maxCalls bounds the calls a scope remembers for reports to point at.
const maxCalls = 256

// mark notes that the script is about to call the guest, at the line of
// the sub-test (or the file's main chunk) that leads to the call: a sub-test
// runs on a Lua thread of its own, whose outermost frame is its function.
func (rt *script) mark(L *lua.LState) {
	sc := rt.scope
	frames := luaFrames(L)
	if len(frames) == 0 {
		return
	}
	f := frames[len(frames)-1]
	where := fmt.Sprintf("%s:%d", f.src, f.line)
	if len(sc.calls) >= maxCalls {
		copy(sc.calls, sc.calls[maxCalls/2:])
		sc.calls = sc.calls[:len(sc.calls)-maxCalls/2]
	}
	sc.calls = append(sc.calls, guestCall{at: time.Now(), where: where})
}

// whereAt is the script line that was calling the guest at time t.
func (sc *scope) whereAt(t time.Time) string {
	where := ""
	for _, c := range sc.calls {
		if c.at.After(t) {
			break
		}
		where = c.where
	}
	if where == "" && len(sc.calls) > 0 {
		where = sc.calls[0].where
	}
	return where
}

// expectKernel is the global expect_kernel(pattern): the current sub-test
// expects a kernel report whose title or text contains pattern (plain
// text, as vm:dmesg matches); it fails if none appears. A report it covers
// fails nothing.
func (rt *script) expectKernel(L *lua.LState) int {
	pattern := L.CheckString(1)
	if pattern == "" {
		L.ArgError(1, "an empty pattern would match every report")
	}
	rt.scope.expects = append(rt.scope.expects, &expectation{pattern: pattern})
	return 0
}

// kernelIgnore is provium.kernel_ignore(pattern): for the rest of the
// file, reports whose title or text contains pattern are noise.
func (rt *script) kernelIgnore(L *lua.LState) int {
	pattern := L.CheckString(1)
	if pattern == "" {
		L.ArgError(1, "an empty pattern would ignore every report")
	}
	rt.ignore = append(rt.ignore, pattern)
	return 0
}

type expectation struct {
	pattern string
	met     bool
}

func matches(r result.KernelReport, pattern string) bool {
	return strings.Contains(r.Title, pattern) || strings.Contains(r.Text, pattern)
}

// collect gives the current scope the kernel reports that appeared since
// the last look. With drain set it first lets every running VM print what
// it had and scans for leaks where the profile asks; without, it takes
// what is already there (a sub-test starting takes the file's reports).
func (rt *script) collect(drain bool) (reports []result.KernelReport, err error) {
	ctx := context.WithoutCancel(rt.ctx)
	for _, v := range rt.vms {
		running := v.m.State() == machine.StateRunning
		if drain && running {
			v.m.DrainConsole(ctx)
			if e := v.m.ScanLeaks(ctx); e != nil && err == nil {
				err = e
			}
		}
		for _, r := range v.m.KernelReports(v.reportsSeen) {
			v.reportsSeen++
			r.At = rt.scope.whereAt(r.Time)
			for _, p := range append(rt.ignore, v.m.KernelIgnore()...) {
				if matches(r, p) {
					r.Expected = true
				}
			}
			for _, e := range rt.scope.expects {
				if matches(r, e.pattern) {
					r.Expected, e.met = true, true
				}
			}
			reports = append(reports, r)
			if rt.opts.OnReport != nil {
				rt.opts.OnReport(r, rt.scope.name)
			}
			rt.logReport(r)
		}
	}
	return reports, err
}

// logReport keeps a report whole in the file's log.
func (rt *script) logReport(r result.KernelReport) {
	state := "kernel report"
	if r.Expected {
		state = "kernel report (expected)"
	}
	rt.logf("[%s] %s: %s (at %s)\n%s", r.VM, state, r.Title, r.At, strings.TrimRight(r.Text, "\n"))
}

// reportFailure is the failure kernel reports make of a scope that ended
// at where (its own failure f, if it had one, keeps its message), or nil
// when they fail nothing.
func (rt *script) reportFailure(f *result.Failure, where string, reports []result.KernelReport, err error) *result.Failure {
	var unexpected *result.KernelReport
	for i := range reports {
		if !reports[i].Expected {
			unexpected = &reports[i]
			break
		}
	}
	var missing []string
	for _, e := range rt.scope.expects {
		if !e.met {
			missing = append(missing, fmt.Sprintf("%q", e.pattern))
		}
	}
	if f == nil && unexpected == nil && len(missing) == 0 && err == nil {
		return nil // expected reports fail nothing; the log has them
	}
	if f != nil {
		f.Reports = append(f.Reports, reports...)
		return f
	}
	f = &result.Failure{Location: where, Reports: reports}
	switch {
	case unexpected != nil:
		at := unexpected.At
		if at == "" {
			at = where
		}
		f.Location = at
		f.Message = fmt.Sprintf("%s: kernel report on %s: %s", at, unexpected.VM, unexpected.Title)
		if n := countUnexpected(reports); n > 1 {
			f.Message += fmt.Sprintf(" (and %d more)", n-1)
		}
		f.Guest = rt.consoleOf(unexpected.VM)
	case err != nil:
		f.Message = fmt.Sprintf("%s: %v", where, err)
	default:
		f.Message = fmt.Sprintf("%s: expected a kernel report matching %s; none appeared", where, strings.Join(missing, ", "))
	}
	return f
}

func countUnexpected(reports []result.KernelReport) int {
	n := 0
	for _, r := range reports {
		if !r.Expected {
			n++
		}
	}
	return n
}

// consoleOf is the console of the named VM, for a failure that one of
// its kernel reports made.
func (rt *script) consoleOf(vm string) *result.GuestError {
	for _, v := range rt.vms {
		if v.m.Name() == vm {
			return &result.GuestError{VM: vm, Err: fmt.Errorf("kernel report"), Console: v.m.ConsoleTail(result.TailLines)}
		}
	}
	return nil
}

// kernelReports is vm:kernel_reports() -> {{kind=, title=, text=, time=}, ...}:
// every report the VM printed so far, oldest first. time is seconds since
// the epoch.
func (rt *script) kernelReports(L *lua.LState) int {
	v := checkVM(L, "kernel_reports")
	rt.use(v)
	if v.m.State() == machine.StateRunning {
		v.m.DrainConsole(rt.ctx)
	}
	list := L.NewTable()
	for _, r := range v.m.KernelReports(0) {
		list.Append(reportTable(L, r))
	}
	L.Push(list)
	return 1
}

// reportTable is one report as vm:kernel_reports gives it.
func reportTable(L *lua.LState, r result.KernelReport) *lua.LTable {
	t := L.CreateTable(0, 4)
	t.RawSetString("kind", lua.LString(r.Kind))
	t.RawSetString("title", lua.LString(r.Title))
	t.RawSetString("text", lua.LString(r.Text))
	t.RawSetString("time", lua.LNumber(float64(r.Time.UnixNano())/1e9))
	return t
}
