// Package luaapi is the Lua API of Provium test scripts: the provium
// module, VM and worker objects, assertions and sub-tests. It translates
// between Lua and the client and machine packages and holds no VM logic
// of its own.
//
// Lua 5.1 numbers are doubles: 64-bit values beyond 2^53 are exact only
// as strings, on the way in ("0xffffffffffffffff") and out (unpack of
// u64/i64 gives such values as decimal strings).
package luaapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/result"
)

// scope is a sub-test, or the file outside any sub-test: what a failure
// there is attributed to.
type scope struct {
	name    string      // sub-test name; "" at file scope
	lastVM  *vmObj      // the VM most recently used here
	calls   []guestCall // calls to the guest, for reports to point at
	expects []*expectation
	// pending are reports of this scope taken when a sub-test in it
	// began; they count at the scope's end.
	pending []result.KernelReport
}

// script is the state of one file's run.
type script struct {
	ctx       context.Context
	opts      Options
	res       *result.File
	main      string // chunk name of the test file
	scope     *scope
	vms       []*vmObj
	nets      []*netObj
	created   map[string]int // VMs created so far, by profile
	workers   []*workerObj
	loaded    map[string]bool
	skipped   bool // todo() at file scope
	stringLib *lua.LTable
	// lastRaised is the last error raised with a guest's console, so
	// that the failure it becomes keeps the console as data.
	lastRaised *raised
	ignore     []string // provium.kernel_ignore patterns
	// methods are the method tables of the userdata types, by type name.
	methods map[string]*lua.LTable
	// declare, when set, takes the file scope's sub-tests instead of
	// running them: a Session's RunFile.
	declare func(name string, fn *lua.LFunction)
}

// Run runs one Lua file and reports what happened. It never panics and
// never leaves a VM of a (non-fixture) file running. Cancelling ctx (a
// per-file timeout, Ctrl-C) stops the script, even in a busy loop.
func Run(ctx context.Context, opts Options) *result.File {
	start := time.Now()
	rt, L := newScript(ctx, opts)
	defer L.Close()
	if rt.res.Failure == nil { // the API is installed
		rt.protect(func() {
			rt.runFile(L)
			rt.endFile()
		})
	}
	rt.protect(rt.cleanup)
	rt.res.Status = rt.status()
	rt.res.Duration = time.Since(start)
	return rt.res
}

// newScript returns the state of a file's run and its Lua state, with
// the API installed.
func newScript(ctx context.Context, opts Options) (*script, *lua.LState) {
	rt := &script{
		ctx:     ctx,
		opts:    opts,
		res:     &result.File{},
		main:    opts.Path,
		scope:   &scope{},
		loaded:  map[string]bool{},
		created: map[string]int{},
		methods: map[string]*lua.LTable{},
	}
	L := lua.NewState(stateOptions)
	rt.protect(func() {
		rt.open(L)
		L.SetContext(ctx)
	})
	return rt, L
}

// protect turns a Go panic (a bug here, or in a Host or Machine) into a
// failure of this file instead of a crash of the whole run.
func (rt *script) protect(f func()) {
	defer func() {
		if r := recover(); r != nil {
			rt.logf("[provium] internal error: %v\n%s", r, debug.Stack())
			if rt.res.Failure == nil {
				rt.res.Failure = &result.Failure{
					Message:  fmt.Sprintf("%s: internal error: %v", rt.main, r),
					Location: rt.main,
				}
			}
		}
	}()
	f()
}

func (rt *script) logf(format string, args ...any) {
	if rt.opts.Log != nil {
		fmt.Fprintf(rt.opts.Log, format+"\n", args...)
	}
}

// use notes v as the VM the current scope works with: an assertion that
// fails later shows its console.
func (rt *script) use(v *vmObj) { rt.scope.lastVM = v }

// open loads the standard libraries a test needs and installs Provium's
// module and globals.
func (rt *script) open(L *lua.LState) {
	openStandard(L)
	rt.install(L)
}

// openStandard loads the parts of Lua's standard library a test has.
func openStandard(L *lua.LState) {
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
		{lua.OsLibName, lua.OpenOs},
		{lua.IoLibName, lua.OpenIo},
	} {
		L.Push(L.NewFunction(lib.fn))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
}

// install adds Provium's module, globals and object types to a state
// with the standard library open.
func (rt *script) install(L *lua.LState) {
	rt.stringLib = L.GetGlobal("string").(*lua.LTable)
	rt.wrapperMetatable(L)
	rt.vmMetatable(L)
	rt.workerMetatable(L)
	rt.networkMetatable(L)
	L.NewTypeMetatable(todoType).RawSetString("__tostring", L.NewFunction(rt.guard("__tostring", func(L *lua.LState) int {
		t, _ := L.CheckUserData(1).Value.(*todoSignal)
		if t == nil {
			L.ArgError(1, "todo value expected")
		}
		L.Push(lua.LString("todo: " + t.reason))
		return 1
	})))

	mod := rt.module(L)
	L.SetGlobal("provium", mod)
	pkg := L.GetGlobal("package").(*lua.LTable)
	pkg.RawGetString("preload").(*lua.LTable).RawSetString("provium", L.NewFunction(func(L *lua.LState) int {
		L.Push(mod)
		return 1
	}))
	// The Lua file searcher is replaced so that required files are
	// recorded in Result.Loaded; the preload searcher stays first.
	pkg.RawGetString("loaders").(*lua.LTable).RawSetInt(2, L.NewFunction(rt.guard("require", rt.requireLoader)))

	for name, fn := range map[string]lua.LGFunction{
		"assert":          luaAssert,
		"assert_eq":       luaAssertEq,
		"assert_contains": luaAssertContains,
		"test":            rt.test,
		"todo":            rt.todo,
		"expect_kernel":   rt.expectKernel,
		"wait_until":      rt.globalWaitUntil,
		"dofile":          rt.dofile,
		"loadfile":        rt.loadfile,
		"print":           rt.print,
		"pcall":           rt.luaPcall,
		"xpcall":          rt.luaXpcall,
	} {
		L.SetGlobal(name, L.NewFunction(rt.guard(name, fn)))
	}
	// os.exit would end every file of the run, not just this one.
	L.GetGlobal("os").(*lua.LTable).RawSetString("exit", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("os.exit is not available in a test: use error() to fail or todo() to skip")
		return 0
	}))
}

// runFile runs the test file itself.
func (rt *script) runFile(L *lua.LState) {
	fn, err := rt.loadChunk(L, rt.opts.Path, rt.main)
	if err != nil {
		rt.res.Failure = loadFailure(rt.main, err)
		rt.logf("[file] FAIL: %s", rt.res.Failure.Message)
		return
	}
	c := &caught{}
	if _, err := rt.pcall(L, fn, nil, rt.handler(L, c)); err != nil {
		if c.todo != nil {
			rt.skipped = true
			rt.res.Touched = true
			rt.res.Reason = c.todo.reason
			rt.logf("[file] todo: %s", c.todo.reason)
			return
		}
		rt.res.Failure = rt.failureOf(c, err)
		rt.logf("[file] FAIL: %s\n%s", rt.res.Failure.Message, rt.res.Failure.Traceback)
	}
}

// endFile gives the file scope the kernel reports that appeared outside any
// sub-test: one that nothing covers fails the file.
func (rt *script) endFile() {
	if rt.ctx.Err() != nil || rt.skipped {
		return
	}
	reports, err := rt.collect(true)
	reports = append(rt.scope.pending, reports...)
	if f := rt.reportFailure(rt.res.Failure, rt.main, reports, err); f != nil && rt.res.Failure == nil {
		rt.res.Failure = f
		rt.logf("[file] FAIL: %s", f.Message)
	}
}

// loadFailure reports a file that could not be read or compiled.
func loadFailure(name string, err error) *result.Failure {
	msg := loadError(err)
	loc := name
	if m := hasPosition().FindString(msg); m != "" {
		loc = strings.TrimSuffix(m, ":")
	} else {
		msg = name + ": " + msg
	}
	return &result.Failure{Message: msg, Location: loc}
}

// syntaxError matches gopher-lua's "x.lua line:3(column:5) near 'end':
// syntax error".
var syntaxError = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?s)^(.*) line:(\d+)\(column:(\d+)\) (.*?):\s+(.*?)\s*$`)
})

// loadError is the message of a failed load, with syntax errors in the
// "file:line: message" form of every other error.
func loadError(err error) string {
	msg := err.Error()
	var ae *lua.ApiError
	if errors.As(err, &ae) {
		msg = ae.Object.String()
	}
	return syntaxError().ReplaceAllString(msg, "$1:$2: $5 $4 (column $3)")
}

func (rt *script) status() result.Status {
	if rt.res.Failure != nil {
		return result.Failed
	}
	for _, st := range rt.res.Subtests {
		if st.Status == result.Failed {
			return result.Failed
		}
	}
	if rt.skipped {
		return result.Skipped
	}
	return result.Passed
}

// cleanup ends what a test file left behind: workers not killed are
// closed and VMs still up are killed. A fixture script's VMs stay as they
// are: the caller snapshots one and quiesces the agent itself.
func (rt *script) cleanup() {
	if rt.opts.Fixture {
		return
	}
	// Cleanup must happen even when the file was stopped; it only needs a
	// bound of its own.
	ctx := context.WithoutCancel(rt.ctx)
	// Workers are closed first so the guest and the call trace see them
	// end; a stopped file skips that, the kill below ends them anyway.
	for _, w := range rt.workers {
		if w.a.Closed() || w.parent.m.State() != machine.StateRunning || rt.ctx.Err() != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := w.a.Close(cctx); err != nil {
			rt.logf("[provium] closing %s: %v", w.label, err)
		}
		cancel()
	}
	for _, v := range rt.vms {
		if st := v.m.State(); st == machine.StateRunning || st == machine.StateCreated {
			if err := v.m.Kill(); err != nil {
				rt.logf("[provium] killing %s: %v", v.m.Name(), err)
			}
		}
	}
}

// test is the global test(name, fn): fn runs at once as a sub-test; an
// error inside fails it alone and the file goes on. A test inside a test
// is a sub-test named "outer/inner".
func (rt *script) test(L *lua.LState) int {
	name := L.CheckString(1)
	fn := L.CheckFunction(2)
	where := strings.TrimRight(L.Where(1), ": ")
	if rt.declare != nil && rt.scope.name == "" {
		rt.declare(name, fn)
		return 0
	}
	rt.subtest(L, name, fn, where)
	if rt.ctx.Err() != nil {
		// A stopped file stops here, not at its next instruction: the
		// sub-test may have been the last statement.
		L.RaiseError("%s", rt.stopped())
	}
	return 0
}

// subtest runs fn as the sub-test name, declared at where, and records
// its result.
func (rt *script) subtest(L *lua.LState, name string, fn *lua.LFunction, where string) result.Subtest {
	rt.res.Touched = true
	if rt.scope.name != "" {
		name = rt.scope.name + "/" + name
	}
	prev := rt.scope
	// What appeared before this sub-test is the enclosing scope's.
	if early, _ := rt.collect(false); len(early) > 0 {
		prev.pending = append(prev.pending, early...)
	}
	rt.scope = &scope{name: name}
	start := time.Now()
	c := &caught{outer: luaFrames(L)}
	_, err := rt.pcall(L, fn, nil, rt.handler(L, c))
	var reports []result.KernelReport
	var rerr error
	if rt.ctx.Err() == nil {
		reports, rerr = rt.collect(true)
	}
	reports = append(rt.scope.pending, reports...)
	inner := rt.scope
	rt.scope = prev

	st := result.Subtest{Name: name, Duration: time.Since(start)}
	switch {
	case err == nil:
		st.Status = result.Passed
		rt.logf("[test] %s: ok (%.2fs)", name, st.Duration.Seconds())
	case c.todo != nil:
		st.Status, st.Reason = result.Skipped, c.todo.reason
		rt.logf("[test] %s: todo: %s", name, c.todo.reason)
	default:
		st.Status, st.Failure = result.Failed, rt.failureOf(c, err)
		rt.logf("[test] %s: FAIL: %s\n%s", name, st.Failure.Message, st.Failure.Traceback)
	}
	if st.Status != result.Skipped {
		rt.scope = inner
		if f := rt.reportFailure(st.Failure, where, reports, rerr); f != nil && st.Failure == nil {
			st.Status, st.Failure = result.Failed, f
			rt.logf("[test] %s: FAIL: %s", name, f.Message)
		}
		rt.scope = prev
	}
	rt.res.Subtests = append(rt.res.Subtests, st)
	if rt.opts.OnSubtest != nil {
		rt.opts.OnSubtest(st)
	}
	if st.Status == result.Failed && rt.opts.OnFailure != nil && rt.ctx.Err() == nil {
		rt.opts.OnFailure(st)
	}
	return st
}

const todoType = "provium.todo"

// todoSignal is the error value todo() raises: the sub-test (or the file)
// that catches it is marked todo rather than failed.
type todoSignal struct {
	reason string
}

// todo is the global todo(reason?).
func (rt *script) todo(L *lua.LState) int {
	ud := L.NewUserData()
	ud.Value = &todoSignal{reason: L.OptString(1, "")}
	L.SetMetatable(ud, L.GetTypeMetatable(todoType))
	L.Error(ud, 0)
	return 0
}

// caught is what the error handler of a protected call saw.
type caught struct {
	outer   []frame // the caller's frames, when the call runs on a thread
	failure *result.Failure
	todo    *todoSignal
}

// handler returns the message handler of a protected call: it runs where
// the error was raised, with the Lua stack still there, so it can record
// the failing line and the traceback.
func (rt *script) handler(L *lua.LState, c *caught) *lua.LFunction {
	return L.NewFunction(rt.guard("error handler", func(L *lua.LState) int {
		obj := L.Get(1)
		if ud, ok := obj.(*lua.LUserData); ok {
			if t, ok := ud.Value.(*todoSignal); ok {
				c.todo = t
				L.Push(obj)
				return 1
			}
		}
		c.failure = rt.newFailure(L, obj, c.outer)
		L.Push(obj)
		return 1
	}))
}

// failureOf is the failure a protected call ended with; the handler's
// record when it ran, else what gopher-lua returned.
func (rt *script) failureOf(c *caught, err error) *result.Failure {
	if c.failure != nil {
		return c.failure
	}
	msg := err.Error()
	var ae *lua.ApiError
	if errors.As(err, &ae) {
		msg = ae.Object.String()
	}
	if !hasPosition().MatchString(msg) {
		msg = rt.main + ": " + msg
	}
	return &result.Failure{Message: msg, Location: rt.main}
}

// hasPosition matches a message that starts with "file:line:".
var hasPosition = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\S+?:\d+:`) })

type frame struct {
	src  string
	line int
	fn   string // "main chunk" or "function <src:line>"
}

// luaFrames lists the Lua frames of the stack, innermost first; Go
// frames (the bindings) are left out.
func luaFrames(L *lua.LState) []frame {
	var out []frame
	for level := 0; level < 200; level++ {
		dbg, ok := L.GetStack(level)
		if !ok {
			break
		}
		if _, err := L.GetInfo("Sl", dbg, lua.LNil); err != nil {
			continue
		}
		if dbg.What != "G" && dbg.CurrentLine > 0 {
			fn := "main chunk"
			if dbg.LineDefined > 0 {
				fn = fmt.Sprintf("function <%s:%d>", dbg.Source, dbg.LineDefined)
			}
			out = append(out, frame{dbg.Source, dbg.CurrentLine, fn})
		}
		if dbg.What == "main" {
			break // the bottom of this thread
		}
	}
	return out
}

// newFailure describes an error raised in the script. outer are frames
// below the ones on L's stack (the caller of a sub-test running on its
// own thread).
func (rt *script) newFailure(L *lua.LState, obj lua.LValue, outer []frame) *result.Failure {
	frames := append(luaFrames(L), outer...)
	loc := rt.main
	for _, f := range frames {
		if f.src == rt.main {
			loc = fmt.Sprintf("%s:%d", f.src, f.line)
			break
		}
	}
	if loc == rt.main && len(frames) > 0 {
		loc = fmt.Sprintf("%s:%d", frames[0].src, frames[0].line)
	}
	msg, guest := rt.guestOf(errorText(L, obj))
	switch {
	case rt.ctx.Err() != nil && !strings.Contains(msg, "test file stopped"):
		msg = loc + ": " + rt.stopped()
		guest = nil
	case !hasPosition().MatchString(msg):
		msg = loc + ": " + msg
	case !strings.HasPrefix(msg, loc+":") && strings.HasPrefix(loc, rt.main+":"):
		// Raised in a helper file: lead with the line of the test that
		// called it, keep the helper's own position after it.
		msg = loc + ": " + msg
	}
	var tb strings.Builder
	tb.WriteString("stack traceback:")
	for _, f := range frames {
		fmt.Fprintf(&tb, "\n\t%s:%d: in %s", f.src, f.line, f.fn)
	}
	f := &result.Failure{Message: msg, Location: loc, Traceback: tb.String(), Guest: guest}
	if guest == nil {
		if v := rt.scope.lastVM; v != nil {
			// Not the guest's doing, but its side may still explain
			// it: the file's report shows it once.
			rt.res.Console = &result.GuestError{VM: v.m.Name(), Err: errors.New(msg), Console: v.m.ConsoleTail(result.TailLines)}
		}
	}
	return f
}

// errorText is the message of any error value: error({}) and error(nil)
// are legal Lua and must still produce a readable failure.
func errorText(L *lua.LState, obj lua.LValue) string {
	if s, ok := stringOf(obj); ok {
		return s
	}
	if obj == lua.LNil {
		return "error raised with a nil value"
	}
	if L.GetMetaField(obj, "__tostring") != lua.LNil {
		return L.ToStringMeta(obj).String()
	}
	return "error raised with a " + obj.Type().String() + " value: " + formatValue(L, obj)
}

// resolve makes a script-relative path absolute against the start
// directory: the classic suites name helpers from the project root.
func (rt *script) resolve(p string) string {
	if filepath.IsAbs(p) || rt.opts.StartDir == "" {
		return p
	}
	return filepath.Join(rt.opts.StartDir, p)
}

// loadChunk compiles the file at path under the chunk name that messages
// will show.
func (rt *script) loadChunk(L *lua.LState, path, name string) (*lua.LFunction, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("cannot open %s (%v)", name, err)
	}
	if bytes.HasPrefix(data, []byte("#")) {
		// A "#!" line; keep its newline so line numbers stay right.
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i:]
		} else {
			data = nil
		}
	}
	return L.Load(bytes.NewReader(data), name)
}

// loadTracked loads a helper file and records it in Result.Loaded.
func (rt *script) loadTracked(L *lua.LState, p string) (*lua.LFunction, error) {
	full := rt.resolve(p)
	fn, err := rt.loadChunk(L, full, p)
	if _, serr := os.Stat(full); serr == nil {
		if abs, aerr := filepath.Abs(full); aerr == nil && !rt.loaded[abs] {
			rt.loaded[abs] = true
			rt.res.Loaded = append(rt.res.Loaded, abs)
		}
	}
	return fn, err
}

// dofile is the global dofile(path), relative to the start directory.
func (rt *script) dofile(L *lua.LState) int {
	p := L.CheckString(1)
	fn, err := rt.loadTracked(L, p)
	if err != nil {
		L.RaiseError("dofile: %s", loadError(err))
	}
	top := L.GetTop()
	L.Push(fn)
	L.Call(0, lua.MultRet)
	return L.GetTop() - top
}

// loadfile is the global loadfile(path): the chunk, or nil and a message.
func (rt *script) loadfile(L *lua.LState) int {
	p := L.CheckString(1)
	fn, err := rt.loadTracked(L, p)
	if err != nil {
		L.Push(lua.LNil)
		L.Push(lua.LString(loadError(err)))
		return 2
	}
	L.Push(fn)
	return 1
}

// requireLoader is require's searcher for Lua files on package.path.
// Relative entries resolve against the start directory, as dofile does.
func (rt *script) requireLoader(L *lua.LState) int {
	name := L.CheckString(1)
	path, ok := L.GetField(L.GetGlobal("package"), "path").(lua.LString)
	if !ok {
		L.RaiseError("package.path must be a string")
	}
	var tried strings.Builder
	for _, pattern := range strings.Split(string(path), ";") {
		if pattern == "" {
			continue
		}
		cand := strings.ReplaceAll(pattern, "?", strings.ReplaceAll(name, ".", string(filepath.Separator)))
		if st, err := os.Stat(rt.resolve(cand)); err != nil || st.IsDir() {
			fmt.Fprintf(&tried, "\n\tno file '%s'", cand)
			continue
		}
		fn, err := rt.loadTracked(L, cand)
		if err != nil {
			L.RaiseError("error loading module '%s' from file '%s':\n\t%s", name, cand, loadError(err))
		}
		L.Push(fn)
		return 1
	}
	L.Push(lua.LString(tried.String()))
	return 1
}

// print writes to the file's log, and to whoever listens (-v, the
// REPL) rather than straight to the terminal, where parallel files would
// interleave. The last lines are kept for the report of a failing file.
func (rt *script) print(L *lua.LState) int {
	parts := make([]string, L.GetTop())
	for i := range parts {
		parts[i] = L.ToStringMeta(L.Get(i + 1)).String()
	}
	text := strings.Join(parts, "\t")
	if rt.opts.Log != nil {
		fmt.Fprintf(rt.opts.Log, "[print] %s\n", text)
	} else if rt.opts.Print == nil {
		fmt.Fprintln(os.Stdout, text)
	}
	for line := range strings.SplitSeq(text, "\n") {
		rt.res.Prints = append(rt.res.Prints, line)
		if rt.opts.Print != nil {
			rt.opts.Print(line)
		}
	}
	if p := rt.res.Prints; len(p) > result.MaxPrints {
		rt.res.Prints = p[:copy(p, p[len(p)-result.MaxPrints:])]
	}
	return 0
}
