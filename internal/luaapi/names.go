package luaapi

import (
	"fmt"
	"math"

	lua "github.com/yuin/gopher-lua"

	"github.com/provium/provium/internal/linuxabi"
)

// guestArch is the architecture of the guests Provium runs (QEMU's
// x86_64 system emulator): provium.sys and the names calls take are its.
const guestArch = linuxabi.X86_64

// sysIoctl is ioctl(2) of the guest's architecture.
var sysIoctl = func() int64 {
	n, _ := linuxabi.SyscallNumber(guestArch, "ioctl")
	return int64(n)
}()

// names builds the tables of names that stand for numbers: provium.sys,
// provium.errno, provium.c and provium.ioc, and provium.strerror.
func (rt *script) names(L *lua.LState, mod *lua.LTable) {
	mod.RawSetString("sys", constTable(L, "provium.sys", intMap(linuxabi.Syscalls(guestArch))))
	mod.RawSetString("errno", constTable(L, "provium.errno", intMap(linuxabi.Errnos())))
	mod.RawSetString("c", constTable(L, "provium.c", linuxabi.Constants(guestArch)))
	ioc := L.NewTable()
	for name, dir := range map[string]uint32{"IO": linuxabi.IOCNone, "IOR": linuxabi.IOCRead, "IOW": linuxabi.IOCWrite, "IOWR": linuxabi.IOCRead | linuxabi.IOCWrite} {
		ioc.RawSetString(name, L.NewFunction(rt.guard("provium.ioc."+name, iocFunc(dir))))
	}
	mod.RawSetString("ioc", ioc)
	mod.RawSetString("strerror", L.NewFunction(rt.guard("provium.strerror", strerror)))
}

func intMap(m map[string]int) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = int64(v)
	}
	return out
}

// constTable is a table of names that says so when a name is missing:
// reading one it lacks is an error, not nil, so that a misspelt name fails
// where it is written; so is adding one. pairs lists the names.
func constTable(L *lua.LState, what string, values map[string]int64) *lua.LTable {
	t := L.CreateTable(0, len(values))
	for k, v := range values {
		t.RawSetString(k, lua.LNumber(float64(v)))
	}
	mt := L.NewTable()
	mt.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("%s has no %s", what, L.Get(2).String())
		return 0
	}))
	mt.RawSetString("__newindex", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("%s is not for adding names to (%s)", what, L.Get(2).String())
		return 0
	}))
	L.SetMetatable(t, mt)
	return t
}

// strerror is provium.strerror(n): the errno name of n or -n ("ENOENT"),
// or nil for a number that names none.
func strerror(L *lua.LState) int {
	n := L.CheckNumber(1)
	if float64(n) != math.Trunc(float64(n)) || math.Abs(float64(n)) > math.MaxInt32 {
		L.ArgError(1, "an errno (an integer) expected, got "+describe(n))
	}
	if name, ok := linuxabi.ErrnoName(int(n)); ok {
		L.Push(lua.LString(name))
	} else {
		L.Push(lua.LNil)
	}
	return 1
}

// iocFunc is provium.ioc.IOR(type, nr, size) and friends: the ioctl
// number the kernel's _IOC macros make. type may be a one-character
// string, as C writes it ('R').
func iocFunc(dir uint32) lua.LGFunction {
	return func(L *lua.LState) int {
		field := func(n int, what string) uint32 {
			v := L.Get(n)
			if s, ok := v.(lua.LString); ok && len(s) == 1 && n == 1 {
				return uint32(s[0])
			}
			f, ok := v.(lua.LNumber)
			if !ok || float64(f) != math.Trunc(float64(f)) || f < 0 || f > math.MaxUint32 {
				L.ArgError(n, what+" (a non-negative integer) expected, got "+describe(v))
			}
			return uint32(f)
		}
		typ, nr := field(1, "type"), field(2, "nr")
		var size uint32
		if dir != linuxabi.IOCNone {
			size = field(3, "size")
		} else if L.GetTop() > 2 {
			L.ArgError(3, "IO takes no size")
		}
		n, err := linuxabi.IOC(dir, typ, nr, size)
		if err != nil {
			L.ArgError(1, err.Error())
		}
		L.Push(lua.LNumber(n))
		return 1
	}
}

// syscallNumber reads a system call given by number or by name.
func syscallNumber(v lua.LValue) (int64, bool, error) {
	s, ok := v.(lua.LString)
	if !ok || !isName(string(s)) {
		return 0, false, nil
	}
	n, found := linuxabi.SyscallNumber(guestArch, string(s))
	if !found {
		return 0, true, fmt.Errorf("unknown system call %q (%s)", string(s), guestArch)
	}
	return int64(n), true, nil
}

// errnoSuffix names the errno of a raw system call result, for messages:
// -13 gives " (-EACCES)".
func errnoSuffix(v float64) string {
	if v >= 0 || v < -4095 || v != math.Trunc(v) {
		return ""
	}
	if name, ok := linuxabi.ErrnoName(int(v)); ok {
		return " (-" + name + ")"
	}
	return ""
}
