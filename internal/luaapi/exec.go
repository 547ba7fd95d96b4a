package luaapi

import (
	"fmt"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/provium/provium/internal/client"
)

// strWrapper is the Lua object for a command's stdout or stderr: the raw
// bytes in .value plus helpers that read naturally in assertions. It is a
// userdata rather than a table so that tostring, # and .. see the value.
type strWrapper struct {
	s string
}

const wrapperType = "provium.string"

// wrapperMethod implements one helper on the wrapped string; args are the
// call's arguments without the receiver.
type wrapperMethod struct {
	nargs int // arguments after the receiver, to tell w:f(x) from w.f(x)
	fn    func(L *lua.LState, s string, args []lua.LValue) lua.LValue
}

var wrapperMethods = map[string]wrapperMethod{
	"contains": {1, func(L *lua.LState, s string, a []lua.LValue) lua.LValue {
		return lua.LBool(strings.Contains(s, argString(L, a, 0, "contains")))
	}},
	"starts_with": {1, func(L *lua.LState, s string, a []lua.LValue) lua.LValue {
		return lua.LBool(strings.HasPrefix(s, argString(L, a, 0, "starts_with")))
	}},
	"ends_with": {1, func(L *lua.LState, s string, a []lua.LValue) lua.LValue {
		return lua.LBool(strings.HasSuffix(s, argString(L, a, 0, "ends_with")))
	}},
	"trim": {0, func(L *lua.LState, s string, _ []lua.LValue) lua.LValue {
		return lua.LString(strings.TrimSpace(s))
	}},
	"lines": {0, func(L *lua.LState, s string, _ []lua.LValue) lua.LValue {
		t := L.NewTable()
		if s == "" {
			return t
		}
		for _, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
			t.Append(lua.LString(l))
		}
		return t
	}},
}

// argString reads helper argument i; the helpers are called without a
// stack frame of their own for the receiver, so errors name them here.
func argString(L *lua.LState, a []lua.LValue, i int, name string) string {
	if i < len(a) {
		if s, ok := stringOf(a[i]); ok {
			return s
		}
		L.RaiseError("bad argument #%d to '%s' (string expected, got %s)", i+1, name, a[i].Type())
	}
	L.RaiseError("bad argument #%d to '%s' (string expected, got no value)", i+1, name)
	return ""
}

// stringOf returns the text of a string, a wrapper or a number.
func stringOf(v lua.LValue) (string, bool) {
	switch x := v.(type) {
	case lua.LString:
		return string(x), true
	case lua.LNumber:
		return x.String(), true
	case *lua.LUserData:
		if w, ok := x.Value.(*strWrapper); ok {
			return w.s, true
		}
	}
	return "", false
}

// checkBytes reads binary data at argument n: a string or a wrapper.
// Numbers are refused: as data they are almost always a mistake.
func checkBytes(L *lua.LState, n int) string {
	v := L.Get(n)
	if _, isNum := v.(lua.LNumber); !isNum {
		if s, ok := stringOf(v); ok {
			return s
		}
	}
	L.ArgError(n, "string expected, got "+v.Type().String())
	return ""
}

// checkText reads text at argument n: a string, a wrapper or a number.
func checkText(L *lua.LState, n int) string {
	v := L.Get(n)
	if s, ok := stringOf(v); ok {
		return s
	}
	L.ArgError(n, "string expected, got "+v.Type().String())
	return ""
}

// wrapperMetatable builds the wrapper's behaviour, once per state.
func (rt *script) wrapperMetatable(L *lua.LState) {
	mt := L.NewTypeMetatable(wrapperType)
	self := func(L *lua.LState) *strWrapper {
		if ud, ok := L.Get(1).(*lua.LUserData); ok {
			if w, ok := ud.Value.(*strWrapper); ok {
				return w
			}
		}
		L.ArgError(1, "string wrapper expected")
		return nil
	}
	L.SetFuncs(mt, rt.guardAll(map[string]lua.LGFunction{
		"__index": func(L *lua.LState) int {
			ud := L.CheckUserData(1)
			w := self(L)
			key := L.CheckString(2)
			if key == "value" {
				L.Push(lua.LString(w.s))
				return 1
			}
			if m, ok := wrapperMethods[key]; ok {
				L.Push(L.NewFunction(rt.guard(key, boundMethod(ud, w, m))))
				return 1
			}
			// Everything else of the string library works too, so
			// r.stdout:match(...) and r.stdout:sub(...) read as on a
			// string.
			if f, ok := rt.stringLib.RawGetString(key).(*lua.LFunction); ok {
				L.Push(L.NewFunction(boundStringFunc(ud, w, f)))
				return 1
			}
			L.Push(lua.LNil)
			return 1
		},
		"__tostring": func(L *lua.LState) int {
			L.Push(lua.LString(self(L).s))
			return 1
		},
		"__len": func(L *lua.LState) int {
			L.Push(lua.LNumber(len(self(L).s)))
			return 1
		},
		"__concat": func(L *lua.LState) int {
			a, aok := stringOf(L.Get(1))
			b, bok := stringOf(L.Get(2))
			if !aok || !bok {
				bad := L.Get(1)
				if aok {
					bad = L.Get(2)
				}
				L.RaiseError("attempt to concatenate a %s value", bad.Type())
			}
			L.Push(lua.LString(a + b))
			return 1
		},
		// Lua 5.1 calls __eq only between two userdata; comparing with a
		// plain string needs .value (or assert_eq, which unwraps).
		"__eq": func(L *lua.LState) int {
			a, _ := stringOf(L.Get(1))
			b, _ := stringOf(L.Get(2))
			L.Push(lua.LBool(a == b))
			return 1
		},
	}))
}

// boundMethod makes helper m callable both as w.m(x) and w:m(x): with the
// colon, the receiver comes first and there is one argument too many.
func boundMethod(ud *lua.LUserData, w *strWrapper, m wrapperMethod) lua.LGFunction {
	return func(L *lua.LState) int {
		args := make([]lua.LValue, 0, L.GetTop())
		for i := 1; i <= L.GetTop(); i++ {
			args = append(args, L.Get(i))
		}
		if len(args) > m.nargs && args[0] == ud {
			args = args[1:]
		}
		L.Push(m.fn(L, w.s, args))
		return 1
	}
}

// boundStringFunc calls string.<f> with the wrapped value as its first
// argument, whether called with a dot or a colon.
func boundStringFunc(ud *lua.LUserData, w *strWrapper, f *lua.LFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		top := L.GetTop()
		first := 1
		if top >= 1 && L.Get(1) == ud {
			first = 2
		}
		L.Push(f)
		L.Push(lua.LString(w.s))
		for i := first; i <= top; i++ {
			L.Push(L.Get(i))
		}
		L.Call(top-first+2, lua.MultRet)
		return L.GetTop() - top
	}
}

func (rt *script) newWrapper(L *lua.LState, s []byte) *lua.LUserData {
	ud := L.NewUserData()
	ud.Value = &strWrapper{s: string(s)}
	L.SetMetatable(ud, L.GetTypeMetatable(wrapperType))
	return ud
}

// pushExecResult turns a command's result into the table scripts see:
// ok, exit_code, stdout, stderr, signal (nil if none), timed_out.
func (rt *script) pushExecResult(L *lua.LState, r *client.ExecResult) {
	t := L.CreateTable(0, 6)
	t.RawSetString("ok", lua.LBool(r.ExitCode == 0 && r.Signal == 0 && !r.TimedOut))
	t.RawSetString("exit_code", lua.LNumber(r.ExitCode))
	t.RawSetString("stdout", rt.newWrapper(L, r.Stdout))
	t.RawSetString("stderr", rt.newWrapper(L, r.Stderr))
	if r.Signal != 0 {
		t.RawSetString("signal", lua.LNumber(r.Signal))
	}
	t.RawSetString("timed_out", lua.LBool(r.TimedOut))
	L.Push(t)
}

// pushJobResult is the shape of job_wait and job_kill: exit_code (-1 while
// running), running, signal (nil if none), and the output so far as
// wrappers, so assert_contains(r.stdout, ...) works as for exec.
func (rt *script) pushJobResult(L *lua.LState, r *client.JobResult) {
	t := L.CreateTable(0, 5)
	t.RawSetString("exit_code", lua.LNumber(r.ExitCode))
	t.RawSetString("running", lua.LBool(r.Running))
	if r.Signal != 0 {
		t.RawSetString("signal", lua.LNumber(r.Signal))
	}
	t.RawSetString("stdout", rt.newWrapper(L, r.Stdout))
	t.RawSetString("stderr", rt.newWrapper(L, r.Stderr))
	L.Push(t)
}

// jsonToLua converts a decoded JSON value: objects and arrays become
// tables (arrays 1-based), null becomes nil.
func jsonToLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case string:
		return lua.LString(x)
	case []any:
		t := L.CreateTable(len(x), 0)
		for i, e := range x {
			t.RawSetInt(i+1, jsonToLua(L, e))
		}
		return t
	case map[string]any:
		t := L.CreateTable(0, len(x))
		for k, e := range x {
			t.RawSetString(k, jsonToLua(L, e))
		}
		return t
	case nil:
		return lua.LNil
	}
	panic(fmt.Sprintf("unexpected JSON value %T", v))
}
