package luaapi

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/provium/provium/internal/size"
)

// opts is an options table passed as argument n. A nil *opts (no table
// given) answers every read with the default.
type opts struct {
	L *lua.LState
	n int
	t *lua.LTable
}

// checkOpts reads the options table at argument n. Unknown keys are
// errors: a misspelt option silently ignored is a test that does not test
// what it says.
func checkOpts(L *lua.LState, n int, known ...string) *opts {
	v := L.Get(n)
	if v == lua.LNil {
		return nil
	}
	t, ok := v.(*lua.LTable)
	if !ok {
		L.ArgError(n, "options table expected, got "+v.Type().String())
	}
	t.ForEach(func(k, _ lua.LValue) {
		if ks, ok := k.(lua.LString); !ok || !slices.Contains(known, string(ks)) {
			L.ArgError(n, fmt.Sprintf("unknown option %s (known: %s)", describe(k), strings.Join(known, ", ")))
		}
	})
	return &opts{L: L, n: n, t: t}
}

func (o *opts) get(key string) lua.LValue {
	if o == nil {
		return lua.LNil
	}
	return o.t.RawGetString(key)
}

// bad raises an error about option key; it does not return.
func (o *opts) bad(key, msg string) {
	o.L.ArgError(o.n, "option "+key+": "+msg)
}

func (o *opts) str(key, def string) string {
	v := o.get(key)
	if v == lua.LNil {
		return def
	}
	s, ok := v.(lua.LString)
	if !ok {
		o.bad(key, "string expected, got "+v.Type().String())
	}
	return string(s)
}

func (o *opts) boolean(key string, def bool) bool {
	v := o.get(key)
	if v == lua.LNil {
		return def
	}
	b, ok := v.(lua.LBool)
	if !ok {
		o.bad(key, "boolean expected, got "+v.Type().String())
	}
	return bool(b)
}

func (o *opts) number(key string, def float64) float64 {
	v := o.get(key)
	if v == lua.LNil {
		return def
	}
	n, ok := v.(lua.LNumber)
	if !ok {
		o.bad(key, "number expected, got "+v.Type().String())
	}
	return float64(n)
}

// seconds reads a duration in seconds.
func (o *opts) seconds(key string, def float64) time.Duration {
	s := o.number(key, def)
	if s < 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		o.bad(key, fmt.Sprintf("duration %s is not a number of seconds >= 0", formatNumber(s)))
	}
	return seconds(s)
}

// count reads a positive integer.
func (o *opts) count(key string, def int) int {
	f := o.number(key, float64(def))
	if f < 1 || f != math.Trunc(f) || f > 1<<20 {
		o.bad(key, fmt.Sprintf("%s is not a positive integer", formatNumber(f)))
	}
	return int(f)
}

// sizeMiB reads a size: "512M", "1G", "2048K" or a number of MiB.
func (o *opts) sizeMiB(key string, def int) int {
	v := o.get(key)
	if v == lua.LNil {
		return def
	}
	n, err := parseSizeMiB(v)
	if err != nil {
		o.bad(key, err.Error())
	}
	return n
}

// parseSizeMiB converts a size to MiB, rounding up: a VM gets at least
// what was asked for.
func parseSizeMiB(v lua.LValue) (n int, err error) {
	switch x := v.(type) {
	case lua.LNumber:
		n, err = size.MiB(float64(x))
	case lua.LString:
		n, err = size.ParseMiB(string(x))
	default:
		return 0, fmt.Errorf("size expected (\"512M\", \"1G\" or a number of MiB), got %s", v.Type())
	}
	if err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, fmt.Errorf("size %s is not a positive size", v.String())
	}
	return n, nil
}
