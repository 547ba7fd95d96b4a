package luaapi

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Values longer than this are trimmed in messages: a 20 MiB file in a
// failure message helps nobody.
const (
	maxShown  = 120
	shownHead = 100
)

// luaAssert is the global assert(cond, msg?, ...): Lua's, with a message
// that says it is an assertion. Like Lua's, it returns its arguments.
func luaAssert(L *lua.LState) int {
	if L.GetTop() == 0 {
		L.ArgError(1, "value expected")
	}
	if L.ToBool(1) {
		return L.GetTop()
	}
	msg := "assertion failed"
	if v := L.Get(2); v != lua.LNil {
		if s, ok := stringOf(v); ok {
			msg += ": " + s
		} else {
			msg += ": " + formatValue(L, v)
		}
	}
	L.RaiseError("%s", msg)
	return 0
}

// luaAssertEq is assert_eq(expected, actual, msg?).
func luaAssertEq(L *lua.LState) int {
	if L.GetTop() < 2 {
		L.ArgError(2, "assert_eq needs an expected and an actual value")
	}
	exp, act := unwrap(L.Get(1)), unwrap(L.Get(2))
	if equal(exp, act, map[[2]*lua.LTable]bool{}) {
		return 0
	}
	es, as := formatValue(L, exp), formatValue(L, act)
	if n, ok := act.(lua.LNumber); ok {
		// A raw system call's failure reads better named: -13 (-EACCES).
		as += errnoSuffix(float64(n))
		if e, ok := exp.(lua.LNumber); ok {
			es += errnoSuffix(float64(e))
		}
	}
	if exp.Type() != act.Type() {
		es += " (" + exp.Type().String() + ")"
		as += " (" + act.Type().String() + ")"
	}
	msg := "expected " + es + ", got " + as
	if e, ok := exp.(lua.LString); ok {
		if a, ok := act.(lua.LString); ok && (len(e) > maxShown || len(a) > maxShown) {
			// Both are trimmed: say where to look.
			msg += fmt.Sprintf(" (first difference at byte %d)", firstDiff(string(e), string(a)))
		}
	}
	L.RaiseError("%s", withMsg(L, 3, msg))
	return 0
}

// luaAssertContains is assert_contains(haystack, needle, msg?); the
// haystack may be a string wrapper such as r.stdout.
func luaAssertContains(L *lua.LState) int {
	h := checkText(L, 1)
	n := checkText(L, 2)
	if strings.Contains(h, n) {
		return 0
	}
	// The haystack gets a wider window: what it does contain is the clue.
	L.RaiseError("%s", withMsg(L, 3, "expected "+quoteN(h, 4*maxShown)+" to contain "+quote(n)))
	return 0
}

// withMsg prefixes the caller's message, if any, to an assertion message.
func withMsg(L *lua.LState, n int, msg string) string {
	v := L.Get(n)
	if v == lua.LNil {
		return msg
	}
	if s, ok := stringOf(v); ok {
		return s + ": " + msg
	}
	return formatValue(L, v) + ": " + msg
}

// unwrap replaces a string wrapper by its value, so assert_eq("x\n",
// r.stdout) compares text.
func unwrap(v lua.LValue) lua.LValue {
	if ud, ok := v.(*lua.LUserData); ok {
		if w, ok := ud.Value.(*strWrapper); ok {
			return lua.LString(w.s)
		}
	}
	return v
}

// equal compares by value: numbers numerically, strings by bytes, tables
// by contents (what a test means by "equal"; identical tables are equal
// too), anything else by identity.
func equal(a, b lua.LValue, seen map[[2]*lua.LTable]bool) bool {
	a, b = unwrap(a), unwrap(b)
	switch x := a.(type) {
	case lua.LNumber:
		y, ok := b.(lua.LNumber)
		return ok && x == y
	case lua.LString:
		y, ok := b.(lua.LString)
		return ok && x == y
	case *lua.LTable:
		y, ok := b.(*lua.LTable)
		if !ok {
			return false
		}
		if x == y || seen[[2]*lua.LTable{x, y}] {
			return true
		}
		seen[[2]*lua.LTable{x, y}] = true
		same := true
		x.ForEach(func(k, v lua.LValue) {
			if same && !equal(v, y.RawGet(k), seen) {
				same = false
			}
		})
		y.ForEach(func(k, _ lua.LValue) {
			if same && x.RawGet(k) == lua.LNil {
				same = false
			}
		})
		return same
	}
	return a == b
}

func firstDiff(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// quote renders a string for a message: quoted, escaped so binary data is
// readable ("\x00"), and trimmed when long with its length.
func quote(s string) string { return quoteN(s, maxShown) }

// quoteN is quote with values up to limit bytes shown whole.
func quoteN(s string, limit int) string {
	trimmed := len(s) > limit
	shown := s
	if trimmed {
		shown = s[:limit*shownHead/maxShown]
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(shown); i++ {
		c := shown[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\r':
			b.WriteString(`\r`)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	if trimmed {
		fmt.Fprintf(&b, "... (%d bytes)", len(s))
	}
	return b.String()
}

// trimText cuts plain text (stderr in a message) to n bytes.
func trimText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("... (%d bytes)", len(s))
}

// formatNumber prints a number as Lua would, integers without ".0".
func formatNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e18 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', 14, 64)
}

// describe names a value in an argument error: its type, and the value
// itself when short.
func describe(v lua.LValue) string {
	switch x := v.(type) {
	case lua.LNumber:
		return formatNumber(float64(x))
	case lua.LString:
		return quote(string(x))
	case lua.LBool:
		return strconv.FormatBool(bool(x))
	}
	return v.Type().String()
}

// formatValue renders any value for an assertion message.
func formatValue(L *lua.LState, v lua.LValue) string {
	return formatDepth(L, unwrap(v), 0)
}

func formatDepth(L *lua.LState, v lua.LValue, depth int) string {
	switch x := v.(type) {
	case *lua.LNilType:
		return "nil"
	case lua.LBool:
		return strconv.FormatBool(bool(x))
	case lua.LNumber:
		return formatNumber(float64(x))
	case lua.LString:
		return quote(string(x))
	case *lua.LTable:
		if depth >= 3 {
			return "{...}"
		}
		return formatTable(L, x, depth)
	case *lua.LUserData:
		if w, ok := x.Value.(*strWrapper); ok {
			return quote(w.s)
		}
		if _, ok := x.Value.(*vmObj); ok {
			return L.ToStringMeta(x).String()
		}
		if _, ok := x.Value.(*workerObj); ok {
			return L.ToStringMeta(x).String()
		}
	}
	return v.Type().String()
}

// formatTable renders a table as {1, 2, k = v}: the array part in order,
// then the other keys sorted, at most 20 entries.
func formatTable(L *lua.LState, t *lua.LTable, depth int) string {
	var parts []string
	n := t.Len()
	for i := 1; i <= n; i++ {
		parts = append(parts, formatDepth(L, t.RawGetInt(i), depth+1))
	}
	var rest []string
	t.ForEach(func(k, v lua.LValue) {
		if f, ok := k.(lua.LNumber); ok && f >= 1 && float64(f) == math.Trunc(float64(f)) && int(f) <= n {
			return
		}
		key := formatDepth(L, k, depth+1)
		if s, ok := k.(lua.LString); ok && isName(string(s)) {
			key = string(s)
		} else {
			key = "[" + key + "]"
		}
		rest = append(rest, key+" = "+formatDepth(L, v, depth+1))
	})
	sort.Strings(rest)
	parts = append(parts, rest...)
	if len(parts) > 20 {
		parts = append(parts[:20], fmt.Sprintf("... (%d entries)", len(parts)))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func isName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
