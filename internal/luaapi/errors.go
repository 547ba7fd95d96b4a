package luaapi

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/provium/provium/internal/client"
)

// tailLines is how many console lines an infrastructure error carries.
const tailLines = 20

// stateError is a call on a VM that is not in a state to take it. It is
// an error of the test script, except when the VM died on its own: then the
// console is what explains it.
type stateError struct {
	what  string // "VM is not running", "VM cannot boot"
	state string
}

func (e *stateError) Error() string { return e.what + " (state: " + e.state + ")" }

// infrastructure tells whether err is a failure of the machinery (VM died,
// agent gone, protocol broken, no answer in time) rather than an operation
// the guest refused or a mistake in the script. Only those carry the
// console tail: it is what explains them.
func infrastructure(err error) bool {
	var op *client.OpError
	var se *stateError
	switch {
	case errors.As(err, &op):
		return false
	case errors.Is(err, client.ErrClosed):
		return false
	case errors.Is(err, context.Canceled):
		return false
	case errors.As(err, &se):
		return se.state == "dead"
	}
	return true
}

// withTail appends the console tail to msg, unless msg already has one
// (machine errors about booting carry their own).
func withTail(msg string, lines []string) string {
	if len(lines) == 0 || strings.Contains(msg, "--- console (last ") {
		return msg
	}
	return msg + "\n--- console (last " + strconv.Itoa(len(lines)) + " lines) ---\n" + strings.Join(lines, "\n")
}

// stopped is the message for a script stopped by its context: a per-file
// timeout or Ctrl-C. The cause says which, when the caller gave one.
func (rt *runtime) stopped() string {
	return "test file stopped: " + context.Cause(rt.ctx).Error()
}

// fail raises the Lua error for a failed call on a VM or worker:
// "vm:exec on minimal#1: <err>", plus the console tail for infrastructure
// failures. It does not return.
func (rt *runtime) fail(L *lua.LState, t target, method string, err error) {
	if rt.ctx.Err() != nil {
		// The call failed because the file is being stopped; saying
		// "agent did not answer in time" would blame the guest.
		L.RaiseError("%s:%s on %s: %s", t.kind(), method, t.name(), rt.stopped())
	}
	msg := fmt.Sprintf("%s:%s on %s: %v", t.kind(), method, t.name(), err)
	if infrastructure(err) {
		v := t.vm()
		rt.scope.failVM = v
		msg = withTail(msg, v.m.ConsoleTail(tailLines))
	}
	L.RaiseError("%s", msg)
}

// raise raises a failure of a call that is not an infrastructure problem
// (a command that failed where the call needs success, bad JSON, a
// malformed request): the message names the call and the VM, no console.
func (rt *runtime) raise(L *lua.LState, t target, method, format string, args ...any) {
	L.RaiseError("%s:%s on %s: %s", t.kind(), method, t.name(), fmt.Sprintf(format, args...))
}
