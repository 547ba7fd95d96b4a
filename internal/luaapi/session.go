package luaapi

import (
	"context"
	"errors"
	"fmt"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/provium/provium/internal/result"
)

// Session is a Lua state with the whole API that stays open across
// chunks: the state of an interactive prompt. Unlike Run, a chunk's error
// is the caller's to show, not a failure of a file, and the state lives
// on.
type Session struct {
	rt *script
	L  *lua.LState
	// deferred are the sub-tests a file run with RunFile declared, in
	// order; they run when the user calls them.
	deferred []string
}

// NewSession opens a session. opts.Path names the chunks in messages
// (a test file's path, or a name like "repl").
func NewSession(ctx context.Context, opts Options) *Session {
	rt, L := newScript(ctx, opts)
	s := &Session{rt: rt, L: L}
	return s
}

// Bind makes m the global name in the session, as a VM object. The
// session does not own m: Close leaves it running.
func (s *Session) Bind(name string, m Machine) {
	v := &vmObj{m: m}
	v.ud = s.L.NewUserData()
	v.ud.Value = v
	s.L.SetMetatable(v.ud, s.L.GetTypeMetatable(vmType))
	s.rt.use(v)
	s.L.SetGlobal(name, v.ud)
}

// RunFile runs a test file's top level in the session: its shared setup
// and helpers. Its sub-tests do not run; each becomes a function in the
// global table tests, by name, that runs it and returns its outcome.
// The names are returned in the file's order.
func (s *Session) RunFile(ctx context.Context, path string) ([]string, error) {
	tests := s.L.NewTable()
	s.L.SetGlobal("tests", tests)
	s.rt.declare = func(name string, fn *lua.LFunction) {
		s.deferred = append(s.deferred, name)
		tests.RawSetString(name, s.L.NewFunction(s.rt.guard("tests."+name, func(L *lua.LState) int {
			st := s.rt.subtest(L, name, fn, strings.TrimRight(L.Where(1), ": "))
			L.Push(lua.LString(outcome(st)))
			return 1
		})))
	}
	defer func() { s.rt.declare = nil }()
	err := s.with(ctx, func() error {
		fn, err := s.rt.loadChunk(s.L, path, s.rt.main)
		if err != nil {
			return errors.New(loadFailure(s.rt.main, err).Message)
		}
		return s.call(fn)
	})
	return s.deferred, err
}

// Ready makes sure the global vm is a running VM and returns its name:
// the one the session's code set, else the first VM it started, else a
// VM resumed from fixture (when not "") or booted from profile.
func (s *Session) Ready(ctx context.Context, fixture, profile string) (string, error) {
	if v := s.vmGlobal(); v != nil {
		return v.m.Name(), nil
	}
	if len(s.rt.vms) > 0 {
		s.L.SetGlobal("vm", s.rt.vms[0].ud)
		return s.rt.vms[0].m.Name(), nil
	}
	code := fmt.Sprintf("vm = provium.create(%q):boot()", profile)
	if fixture != "" {
		code = fmt.Sprintf("vm = provium.fixture(%q)", fixture)
	}
	err := s.with(ctx, func() error {
		fn, err := s.L.Load(strings.NewReader(code), evalChunk)
		if err != nil {
			return err
		}
		return s.call(fn)
	})
	if err != nil {
		// The message is the boot's, not that of a line the user typed.
		return "", errors.New(strings.TrimPrefix(err.Error(), evalChunk+":1: "))
	}
	if v := s.vmGlobal(); v != nil {
		return v.m.Name(), nil
	}
	return "", errors.New("no VM came up")
}

func (s *Session) vmGlobal() *vmObj {
	if ud, ok := s.L.GetGlobal("vm").(*lua.LUserData); ok {
		if v, ok := ud.Value.(*vmObj); ok {
			return v
		}
	}
	return nil
}

// outcome is a sub-test's result as the prompt shows it.
func outcome(st result.Subtest) string {
	switch st.Status {
	case result.Passed:
		return "ok"
	case result.Skipped:
		return "todo: " + st.Reason
	}
	if st.Failure != nil {
		return "FAIL: " + st.Failure.Message
	}
	return "FAIL"
}

// Eval runs one chunk typed at the prompt. An expression's values are
// returned formatted as the assertions show values (strings quoted,
// binary escaped, tables expanded), one per element; a statement
// returns none. incomplete is true when src is only the start of a
// chunk (an unclosed "function", "do", string...): the caller reads on.
func (s *Session) Eval(ctx context.Context, src string) (values []string, incomplete bool, err error) {
	err = s.with(ctx, func() error {
		fn, lerr := s.L.Load(strings.NewReader("return "+src), evalChunk)
		if lerr != nil {
			if fn, lerr = s.L.Load(strings.NewReader(src), evalChunk); lerr != nil {
				if incomplete = atEOF(lerr); incomplete {
					return nil
				}
				return errors.New(loadError(lerr))
			}
		}
		out, err := s.results(fn)
		for _, v := range out {
			values = append(values, formatValue(s.L, v))
		}
		return err
	})
	return values, incomplete, err
}

// evalChunk names what the user types in messages.
const evalChunk = "repl"

// atEOF tells whether a compile error is the end of input arriving too
// soon, which more lines can fix.
func atEOF(err error) bool {
	msg := err.Error()
	var ae *lua.ApiError
	if errors.As(err, &ae) {
		msg = ae.Object.String()
	}
	return strings.Contains(msg, " at EOF") || strings.Contains(msg, "near '<eof>'") || strings.Contains(msg, "unterminated string")
}

// with runs f with ctx as the context of the session's calls: cancelling
// it stops what f runs, and the session stays usable.
func (s *Session) with(ctx context.Context, f func() error) error {
	prev := s.rt.ctx
	s.rt.ctx = ctx
	s.L.SetContext(ctx)
	defer func() {
		s.rt.ctx = prev
		s.L.SetContext(prev)
	}()
	var err error
	s.rt.protect(func() { err = f() })
	if failure := s.rt.res.Failure; failure != nil {
		// protect caught a Go panic: it is this chunk's error, and the
		// next chunk starts clean.
		s.rt.res.Failure = nil
		return errors.New(failure.Message)
	}
	return err
}

func (s *Session) call(fn *lua.LFunction) error {
	_, err := s.results(fn)
	return err
}

// results calls fn at file scope and returns its values, or its error
// as a message with the guest's side of it.
func (s *Session) results(fn *lua.LFunction) ([]lua.LValue, error) {
	c := &caught{}
	out, err := s.rt.pcall(s.L, fn, nil, s.rt.handler(s.L, c))
	if err == nil {
		return out, nil
	}
	if c.todo != nil {
		return nil, fmt.Errorf("todo: %s", c.todo.reason)
	}
	if s.rt.ctx.Err() != nil {
		if v := s.rt.scope.lastVM; v != nil {
			// The host gave up on the call; the guest may not have.
			return nil, fmt.Errorf("%w: %s may still be running the call, and its next call then waits for it", ErrInterrupted, v.m.Name())
		}
		return nil, ErrInterrupted
	}
	f := s.rt.failureOf(c, err)
	if typedOnly(f.Traceback) {
		// The line is on the screen: a traceback of it alone says
		// nothing more.
		f.Traceback = ""
	}
	return nil, &EvalError{Failure: f}
}

// typedOnly tells whether a traceback has no frame but the typed lines'.
func typedOnly(tb string) bool {
	for l := range strings.SplitSeq(tb, "\n") {
		if l = strings.TrimSpace(l); l != "" && l != "stack traceback:" && !strings.HasPrefix(l, evalChunk+":") {
			return false
		}
	}
	return true
}

// ErrInterrupted is the error of a chunk stopped by its context.
var ErrInterrupted = errors.New("interrupted")

// EvalError is a chunk's error, with what the guest showed when it came
// from a guest.
type EvalError struct {
	Failure *result.Failure
}

func (e *EvalError) Error() string { return e.Failure.Message }

// Close kills the VMs the session created and closes its state; VMs
// given with Bind stay as they are.
func (s *Session) Close() {
	s.rt.protect(s.rt.cleanup)
	s.L.Close()
}
