package luaapi

import (
	"errors"
	"fmt"

	lua "github.com/yuin/gopher-lua"

	"github.com/provium/provium/internal/client"
)

const workerType = "provium.worker"

// workerObj is the Lua object for a worker: another agent identity in the
// guest of its parent VM.
type workerObj struct {
	parent   *vmObj
	a        *client.Agent
	label    string
	thread   bool
	pid, tid int
}

func (w *workerObj) kind() string { return "worker" }
func (w *workerObj) name() string { return w.label }
func (w *workerObj) vm() *vmObj   { return w.parent }

func (w *workerObj) agent() (*client.Agent, error) {
	if w.a.Closed() {
		return nil, client.ErrClosed
	}
	// A worker lives in its VM: once the VM stopped, say so rather than
	// "agent connection lost".
	if _, err := w.parent.agent(); err != nil {
		return nil, err
	}
	return w.a, nil
}

// workerMetatable builds the worker's method table: the agent methods,
// kill, and the VM-only methods as errors that say why.
func (rt *script) workerMetatable(L *lua.LState) {
	methods := L.NewTable()
	L.SetFuncs(methods, rt.guardAll(rt.agentMethods()))
	L.SetFuncs(methods, rt.guardAll(map[string]lua.LGFunction{"kill": rt.workerKill}))
	for _, name := range vmOnly {
		L.SetField(methods, name, L.NewFunction(rt.guard(name, func(L *lua.LState) int {
			w := checkWorker(L, name)
			L.RaiseError("worker:%s on %s: a worker has no %s; boot, shutdown and spawn are VM methods", name, w.label, name)
			return 0
		})))
	}
	rt.methods[workerType] = methods
	mt := L.NewTypeMetatable(workerType)
	L.SetFuncs(mt, rt.guardAll(map[string]lua.LGFunction{
		"__index": func(L *lua.LState) int {
			w := checkWorker(L, "__index")
			key := L.Get(2)
			if m := methods.RawGet(key); m != lua.LNil {
				L.Push(m)
				return 1
			}
			if k, ok := key.(lua.LString); ok && workerFields[string(k)] != nil {
				L.Push(workerFields[string(k)](w))
				return 1
			}
			L.Push(lua.LNil)
			return 1
		},
		"__tostring": func(L *lua.LState) int {
			w := checkWorker(L, "__tostring")
			state := "running"
			if w.a.Closed() {
				state = "killed"
			}
			L.Push(lua.LString(fmt.Sprintf("worker %s (%s)", w.label, state)))
			return 1
		},
	}))
}

// vmOnly are the VM methods a worker lacks: on a worker they are errors
// that say why, rather than "attempt to call a nil value".
var vmOnly = []string{"boot", "shutdown", "spawn"}

// workerFields are the values a worker shows besides its methods.
var workerFields = map[string]func(w *workerObj) lua.LValue{
	"name":   func(w *workerObj) lua.LValue { return lua.LString(w.label) },
	"pid":    func(w *workerObj) lua.LValue { return lua.LNumber(w.pid) },
	"tid":    func(w *workerObj) lua.LValue { return lua.LNumber(w.tid) },
	"thread": func(w *workerObj) lua.LValue { return lua.LBool(w.thread) },
}

func checkWorker(L *lua.LState, method string) *workerObj {
	return checkSelf[*workerObj](L, "worker", method)
}

func (rt *script) newWorker(L *lua.LState, w *workerObj) *lua.LUserData {
	ud := L.NewUserData()
	ud.Value = w
	L.SetMetatable(ud, L.GetTypeMetatable(workerType))
	return ud
}

// workerKill is worker:kill(): the worker's channel closes and it exits.
// Killing twice, or a worker of a VM that already stopped, is not an
// error: the worker is gone either way.
func (rt *script) workerKill(L *lua.LState) int {
	w := checkWorker(L, "kill")
	rt.use(w.parent)
	if w.a.Closed() {
		return 0
	}
	if _, err := w.parent.agent(); err != nil {
		w.a.Close(rt.ctx) // marks it closed; the session is dead anyway
		return 0
	}
	if err := w.a.Close(rt.ctx); err != nil && !errors.Is(err, client.ErrAgentRestarted) {
		// A worker that died with its agent is as gone as a killed one.
		rt.fail(L, w, "kill", err)
	}
	return 0
}
