package luaapi

import (
	"context"
	"errors"
	"fmt"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/provium/provium/internal/client"
	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/result"
)

// stateError is a call on a VM that is not in a state to take it. It is
// an error of the test script, except when the VM died on its own: then the
// console is what explains it.
type stateError struct {
	what  string // "VM is not running", "VM cannot boot"
	state machine.State
}

func (e *stateError) Error() string { return e.what + " (state: " + string(e.state) + ")" }

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
	case errors.Is(err, machine.ErrBadOptions):
		return false
	case errors.As(err, &se):
		return se.state == machine.StateDead
	}
	return true
}

// raised is the last error the bindings raised with a guest's console: the
// text Lua sees (message and tail) and the failure's parts as data.
type raised struct {
	text  string // what was raised, without gopher-lua's position prefix
	bare  string // the message without the tail
	guest *result.GuestError
}

// stopped is the message for a script stopped by its context: a per-file
// timeout or Ctrl-C. The cause says which, when the caller gave one.
func (rt *script) stopped() string {
	return "test file stopped: " + context.Cause(rt.ctx).Error()
}

// fail raises the Lua error for a failed call on a VM or worker:
// "vm:exec on minimal#1: <err>". A failure of the machinery also shows
// what the guest printed last. It does not return.
func (rt *script) fail(L *lua.LState, t target, method string, err error) {
	if rt.ctx.Err() != nil {
		// The call failed because the file is being stopped; saying
		// "agent did not answer in time" would blame the guest.
		L.RaiseError("%s:%s on %s: %s", t.kind(), method, t.name(), rt.stopped())
	}
	msg := fmt.Sprintf("%s:%s on %s: %v", t.kind(), method, t.name(), err)
	if infrastructure(err) {
		v := t.vm()
		panics := v.m.Settle(context.WithoutCancel(rt.ctx))
		ge := result.Guest(err)
		if ge == nil {
			ge = &result.GuestError{VM: v.m.Name(), Err: err, Console: v.m.ConsoleTail(result.TailLines), Reports: panics}
		}
		if len(ge.Reports) > 0 {
			// What the kernel said explains the lost connection.
			msg = fmt.Sprintf("%s:%s on %s: %s (%v)", t.kind(), method, t.name(), ge.Reports[len(ge.Reports)-1].Title, err)
		}
		rt.raiseGuest(L, msg, ge)
	}
	L.RaiseError("%s", msg)
}

// raiseGuest raises msg followed by the console tail of ge, and keeps ge
// so that the failure this error becomes carries the tail as data rather
// than as text to be parsed back out. It does not return.
func (rt *script) raiseGuest(L *lua.LState, msg string, ge *result.GuestError) {
	text := result.Text(&result.GuestError{VM: ge.VM, Err: errors.New(msg), Console: ge.Console})
	rt.lastRaised = &raised{text: text, bare: msg, guest: ge}
	L.RaiseError("%s", text)
}

// guestOf splits the message of a caught error: when it is the error
// raiseGuest raised last (after the position gopher-lua put before it),
// the message without the tail and the guest's side of it; otherwise msg
// itself and nil.
func (rt *script) guestOf(msg string) (string, *result.GuestError) {
	r := rt.lastRaised
	if r == nil || !strings.HasSuffix(msg, r.text) {
		return msg, nil
	}
	return msg[:len(msg)-len(r.text)] + r.bare, r.guest
}

// raise raises a failure of a call that is not an infrastructure problem
// (a command that failed where the call needs success, bad JSON, a
// malformed request): the message names the call and the VM, no console.
func (rt *script) raise(L *lua.LState, t target, method, format string, args ...any) {
	L.RaiseError("%s:%s on %s: %s", t.kind(), method, t.name(), fmt.Sprintf(format, args...))
}
