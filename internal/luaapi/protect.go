package luaapi

import (
	"regexp"
	"runtime/debug"
	"sync"

	lua "github.com/yuin/gopher-lua"
)

// stateOptions keep a Lua thread cheap to create (registry and call stack
// start small and grow), since every protected call of a Lua function
// runs on a thread of its own.
var stateOptions = lua.Options{
	SkipOpenLibs:        true,
	CallStackSize:       1024,
	MinimizeStackMemory: true,
	RegistrySize:        1024,
	RegistryMaxSize:     4 << 20,
}

// pcall calls fn(args...) protected and returns its results.
//
// A Lua function runs on a thread of its own. gopher-lua, when an error is
// raised, closes every open upvalue of the state it is raised in, not only
// those of the frames being unwound: after one failing pcall on the main
// thread, closures would lose their link to the caller's locals
// ("local n = 0 ... inc() ... n is still 0"). On a fresh thread only the
// failing call's frames are there to close, as in real Lua. Go functions
// have no upvalues to lose; they run on L with a message handler, which
// also keeps gopher-lua from closing L's upvalues, and keeps "file:line"
// of the caller in their error messages.
func (rt *script) pcall(L *lua.LState, fn lua.LValue, args []lua.LValue, handler *lua.LFunction) ([]lua.LValue, error) {
	if f, ok := fn.(*lua.LFunction); ok && !f.IsG {
		co, cancel := L.NewThread()
		if cancel != nil {
			defer cancel()
		}
		co.Push(fn)
		for _, a := range args {
			co.Push(a)
		}
		err := co.PCall(len(args), lua.MultRet, handler)
		results := make([]lua.LValue, co.GetTop())
		for i := range results {
			results[i] = co.Get(i + 1)
		}
		return results, err
	}
	if handler == nil {
		handler = L.NewFunction(func(L *lua.LState) int { L.Push(L.Get(1)); return 1 })
	}
	top := L.GetTop()
	L.Push(fn)
	for _, a := range args {
		L.Push(a)
	}
	err := L.PCall(len(args), lua.MultRet, handler)
	results := make([]lua.LValue, 0, L.GetTop()-top)
	for i := top + 1; i <= L.GetTop(); i++ {
		results = append(results, L.Get(i))
	}
	L.SetTop(top)
	return results, err
}

// errorValue is the Lua value an error carries.
func errorValue(err error) lua.LValue {
	if ae, ok := err.(*lua.ApiError); ok {
		return ae.Object
	}
	return lua.LString(err.Error())
}

// luaPcall is the global pcall(f, ...), run through pcall above.
func (rt *script) luaPcall(L *lua.LState) int {
	fn := L.CheckAny(1)
	args := make([]lua.LValue, 0, L.GetTop())
	for i := 2; i <= L.GetTop(); i++ {
		args = append(args, L.Get(i))
	}
	results, err := rt.pcall(L, fn, args, nil)
	return pushProtected(L, results, err)
}

// luaXpcall is the global xpcall(f, handler).
func (rt *script) luaXpcall(L *lua.LState) int {
	fn := L.CheckAny(1)
	handler := L.CheckFunction(2)
	results, err := rt.pcall(L, fn, nil, handler)
	return pushProtected(L, results, err)
}

// pushProtected returns what pcall returns: false and the error, or true
// and the results.
func pushProtected(L *lua.LState, results []lua.LValue, err error) int {
	if err != nil {
		L.Push(lua.LFalse)
		L.Push(errorValue(err))
		return 2
	}
	L.Push(lua.LTrue)
	for _, r := range results {
		L.Push(r)
	}
	return 1 + len(results)
}

// guard makes a binding safe to call from Lua: a Go panic inside it
// becomes a Lua error of the calling line, which the script (or the
// sub-test) sees like any other error. Lua errors pass through; an
// argument error the binding itself raised gets the binding's name, since
// gopher-lua names the function after the caller's call site, which is
// "(anonymous)" under pcall(f, ...) and unquoted otherwise.
func (rt *script) guard(name string, f lua.LGFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		entry, _ := L.GetStack(0)
		defer func() {
			r := recover()
			if r == nil {
				return
			}
			if ae, ok := r.(*lua.ApiError); ok {
				// The frame check tells our own raise from one that passes
				// through from Lua code this binding called back into.
				if now, ok := L.GetStack(0); ok && entry != nil && *now == *entry {
					if s, ok := ae.Object.(lua.LString); ok {
						ae.Object = lua.LString(badArgument().ReplaceAllString(string(s), "${1}bad argument #${2} to '"+name+"' ("))
					}
				}
				panic(r)
			}
			rt.logf("[provium] panic in %s: %v\n%s", name, r, debug.Stack())
			L.RaiseError("internal error in %s: %v", name, r)
		}()
		return f(L)
	}
}

// badArgument matches gopher-lua's "bad argument #N to NAME (".
var badArgument = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(\S+:\d+: )?bad argument #(\d+) to (?:\(anonymous\)|[^'(][^(]*?) \(`)
})

func (rt *script) guardAll(fns map[string]lua.LGFunction) map[string]lua.LGFunction {
	out := make(map[string]lua.LGFunction, len(fns))
	for name, f := range fns {
		out[name] = rt.guard(name, f)
	}
	return out
}
