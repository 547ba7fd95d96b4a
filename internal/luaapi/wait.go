package luaapi

import (
	"strconv"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// waitUntil calls the function at argument n until it returns a truthy
// value, which it returns. Options (argument n+1): timeout (10 s),
// interval (0.5 s), desc ("condition"). Errors inside the function
// propagate as they are; a timeout raises "timed out waiting for <desc>".
func (rt *script) waitUntil(L *lua.LState, n int) int {
	fn := L.CheckFunction(n)
	o := checkOpts(L, n+1, "timeout", "interval", "desc")
	timeoutS := o.number("timeout", 10)
	timeout := o.seconds("timeout", 10)
	interval := o.seconds("interval", 0.5)
	if interval <= 0 {
		o.bad("interval", "must be more than 0")
	}
	desc := o.str("desc", "condition")
	deadline := time.Now().Add(timeout)
	for {
		L.Push(fn)
		L.Call(0, 1)
		v := L.Get(-1)
		L.Pop(1)
		if lua.LVAsBool(v) {
			L.Push(v)
			return 1
		}
		left := time.Until(deadline)
		if left <= 0 {
			L.RaiseError("timed out waiting for %s (after %ss)", desc, strconv.FormatFloat(timeoutS, 'f', -1, 64))
		}
		rt.sleep(L, min(interval, left))
	}
}

// globalWaitUntil is the global wait_until(fn, opts?).
func (rt *script) globalWaitUntil(L *lua.LState) int {
	return rt.waitUntil(L, 1)
}

// sleep waits d, or raises as soon as the file is stopped: a per-file
// timeout or Ctrl-C must not wait for a poll interval to end.
func (rt *script) sleep(L *lua.LState, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-rt.ctx.Done():
		L.RaiseError("%s", rt.stopped())
	}
}
