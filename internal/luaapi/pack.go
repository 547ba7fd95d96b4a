package luaapi

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// intVal is an integer as a script wrote it, kept as sign and magnitude so
// that both -2^63 and 2^64-1 are exact: Lua numbers are doubles and lose
// precision beyond 2^53, which is why 64-bit values may come as strings.
type intVal struct {
	neg bool
	mag uint64
}

func (v intVal) String() string {
	if v.neg {
		return "-" + strconv.FormatUint(v.mag, 10)
	}
	return strconv.FormatUint(v.mag, 10)
}

// bits is the two's complement encoding of v in 64 bits.
func (v intVal) bits() uint64 {
	if v.neg {
		return -v.mag
	}
	return v.mag
}

// toIntVal reads an integer from a Lua number or a string ("0x..." hex or
// decimal, optionally negative). The range is -2^63 .. 2^64-1: anything a
// 64-bit register can hold, signed or not.
func toIntVal(lv lua.LValue) (intVal, error) {
	switch x := lv.(type) {
	case lua.LNumber:
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) {
			return intVal{}, fmt.Errorf("%s is not an integer", formatNumber(f))
		}
		if f >= 0x1p64 || f < -0x1p63 {
			return intVal{}, fmt.Errorf("%s does not fit in 64 bits", formatNumber(f))
		}
		if f < 0 {
			return intVal{neg: true, mag: uint64(-f)}, nil
		}
		return intVal{mag: uint64(f)}, nil
	case lua.LString:
		return parseIntString(string(x))
	}
	return intVal{}, fmt.Errorf("integer expected, got %s", lv.Type())
}

func parseIntString(s string) (intVal, error) {
	t := strings.TrimSpace(s)
	neg := strings.HasPrefix(t, "-")
	t = strings.TrimPrefix(strings.TrimPrefix(t, "-"), "+")
	var mag uint64
	var err error
	if h, ok := strings.CutPrefix(strings.ToLower(t), "0x"); ok {
		mag, err = strconv.ParseUint(h, 16, 64)
	} else {
		// Base 10 even with a leading zero: Lua's tonumber("010") is 10,
		// not octal 8.
		mag, err = strconv.ParseUint(t, 10, 64)
	}
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return intVal{}, fmt.Errorf("%q does not fit in 64 bits", s)
		}
		return intVal{}, fmt.Errorf("%q is not an integer (want decimal or 0x hex)", s)
	}
	if neg && mag > 1<<63 {
		return intVal{}, fmt.Errorf("%q does not fit in 64 bits", s)
	}
	return intVal{neg: neg && mag != 0, mag: mag}, nil
}

// packType is one specifier of a pack format.
type packType struct {
	name   string
	size   int
	signed bool
}

var packTypes = map[string]packType{
	"u8": {"u8", 1, false}, "i8": {"i8", 1, true},
	"u16": {"u16", 2, false}, "i16": {"i16", 2, true},
	"u32": {"u32", 4, false}, "i32": {"i32", 4, true},
	"u64": {"u64", 8, false}, "i64": {"i64", 8, true},
}

const packTypeList = "u8 i8 u16 i16 u32 i32 u64 i64"

func (p packType) bounds() (lo, hi string) {
	bits := uint(p.size * 8)
	if p.signed {
		return "-" + strconv.FormatUint(1<<(bits-1), 10), strconv.FormatUint(1<<(bits-1)-1, 10)
	}
	return "0", strconv.FormatUint(math.MaxUint64>>(64-bits), 10)
}

// check rejects a value that the type cannot hold, rather than silently
// truncating it into a different value in the guest.
func (p packType) check(v intVal) error {
	bits := uint(p.size * 8)
	ok := true
	if p.signed {
		limit := uint64(1) << (bits - 1)
		ok = (v.neg && v.mag <= limit) || (!v.neg && v.mag < limit)
	} else {
		ok = !v.neg && v.mag <= math.MaxUint64>>(64-bits)
	}
	if !ok {
		lo, hi := p.bounds()
		return fmt.Errorf("value %s is out of range for %s (%s..%s)", v, p.name, lo, hi)
	}
	return nil
}

func (p packType) put(b []byte, v intVal) []byte {
	u := v.bits()
	switch p.size {
	case 1:
		return append(b, byte(u))
	case 2:
		return binary.LittleEndian.AppendUint16(b, uint16(u))
	case 4:
		return binary.LittleEndian.AppendUint32(b, uint32(u))
	}
	return binary.LittleEndian.AppendUint64(b, u)
}

// get decodes one value. Lua 5.1 numbers are doubles, exact up to 2^53:
// a 64-bit value beyond that comes back as its decimal string (which pack
// and the syscall arguments accept), never rounded to a different number.
func (p packType) get(b []byte) lua.LValue {
	var u uint64
	switch p.size {
	case 1:
		u = uint64(b[0])
	case 2:
		u = uint64(binary.LittleEndian.Uint16(b))
	case 4:
		u = uint64(binary.LittleEndian.Uint32(b))
	default:
		u = binary.LittleEndian.Uint64(b)
	}
	if p.signed {
		shift := uint(64 - p.size*8)
		v := int64(u<<shift) >> shift
		if v > maxExact || v < -maxExact {
			return lua.LString(strconv.FormatInt(v, 10))
		}
		return lua.LNumber(float64(v))
	}
	if u > maxExact {
		return lua.LString(strconv.FormatUint(u, 10))
	}
	return lua.LNumber(float64(u))
}

// maxExact is the largest integer every smaller one of which a double
// holds exactly.
const maxExact = 1 << 53

// checkFormat parses the format at argument n.
func checkFormat(L *lua.LState, n int) (string, []packType) {
	format := L.CheckString(n)
	var types []packType
	for _, f := range strings.Fields(format) {
		p, ok := packTypes[f]
		if !ok {
			L.ArgError(n, fmt.Sprintf("unknown type %q in format (known: %s)", f, packTypeList))
		}
		types = append(types, p)
	}
	return format, types
}

// luaPack is provium.pack(fmt, ...).
func luaPack(L *lua.LState) int {
	format, types := checkFormat(L, 1)
	if got := L.GetTop() - 1; got != len(types) {
		L.ArgError(1, fmt.Sprintf("format %q has %d values, got %d", format, len(types), got))
	}
	var out []byte
	for i, p := range types {
		n := i + 2
		v, err := toIntVal(L.Get(n))
		if err != nil {
			L.ArgError(n, fmt.Sprintf("%s: %v", p.name, err))
		}
		if err := p.check(v); err != nil {
			L.ArgError(n, err.Error())
		}
		out = p.put(out, v)
	}
	L.Push(lua.LString(out))
	return 1
}

// luaUnpack is provium.unpack(fmt, data). Data longer than the format is
// fine: scripts often decode the head of a larger struct.
func luaUnpack(L *lua.LState) int {
	format, types := checkFormat(L, 1)
	data := checkBytes(L, 2)
	need := 0
	for _, p := range types {
		need += p.size
	}
	if len(data) < need {
		L.ArgError(2, fmt.Sprintf("data is %d bytes, format %q needs %d", len(data), format, need))
	}
	off := 0
	for _, p := range types {
		L.Push(p.get([]byte(data[off : off+p.size])))
		off += p.size
	}
	return len(types)
}
