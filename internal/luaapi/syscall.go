package luaapi

import (
	"errors"
	"fmt"
	"math"
	"slices"

	lua "github.com/yuin/gopher-lua"

	"github.com/provium/provium/internal/wire"
)

// checkWord reads a syscall argument: a number (negative ones become their
// two's complement, so AT_FDCWD = -100 works) or a string "0x..."/decimal
// for values Lua numbers cannot hold exactly. nil counts as 0.
func checkWord(L *lua.LState, n int) uint64 {
	v := L.Get(n)
	if v == lua.LNil {
		return 0
	}
	iv, err := toIntVal(v)
	if err != nil {
		L.ArgError(n, err.Error())
	}
	return iv.bits()
}

// checkNr reads a system call: its number, or its name ("openat") in the
// guest's architecture.
func checkNr(L *lua.LState, n int) int64 {
	if nr, named, err := syscallNumber(L.Get(n)); named {
		if err != nil {
			L.ArgError(n, err.Error())
		}
		return nr
	}
	iv, err := toIntVal(L.Get(n))
	if err == nil && (iv.neg || iv.mag > math.MaxInt32) {
		err = fmt.Errorf("system call number %s is out of range", iv)
	}
	if err != nil {
		L.ArgError(n, err.Error())
	}
	return int64(iv.mag)
}

// checkArgs reads the syscall arguments from position first to the top.
// Missing ones are 0, which is what "arguments missing up to a buffer
// index count as 0" needs.
func checkArgs(L *lua.LState, first int) [wire.MaxArgs]uint64 {
	var args [wire.MaxArgs]uint64
	n := L.GetTop() - first + 1
	if n > wire.MaxArgs {
		L.ArgError(first+wire.MaxArgs, fmt.Sprintf("a system call takes at most %d arguments, got %d", wire.MaxArgs, n))
	}
	for i := 0; i < n; i++ {
		args[i] = checkWord(L, first+i)
	}
	return args
}

// checkArgIndex reads a 0-based argument index.
func checkArgIndex(L *lua.LState, n int, v lua.LValue, what string) int {
	f, ok := v.(lua.LNumber)
	if !ok || float64(f) != math.Trunc(float64(f)) || f < 0 || f >= wire.MaxArgs {
		L.ArgError(n, fmt.Sprintf("%s %s is not an argument index 0..%d", what, describe(v), wire.MaxArgs-1))
	}
	return int(f)
}

// bufSet is the buffers of a call, in argument order.
type bufSet struct {
	args  []int // argument index of each buffer
	blobs [][]byte
}

// index is the position in Bufs of the buffer passed as argument arg.
func (b bufSet) index(arg int) int { return slices.Index(b.args, arg) }

// checkBufs reads a bufs table {[argidx] = data} at argument n.
func checkBufs(L *lua.LState, n int) bufSet {
	t := L.CheckTable(n)
	data := map[int][]byte{}
	t.ForEach(func(k, v lua.LValue) {
		i := checkArgIndex(L, n, k, "bufs key")
		s, ok := stringOf(v)
		if _, isNum := v.(lua.LNumber); !ok || isNum {
			L.ArgError(n, fmt.Sprintf("bufs[%d]: string expected, got %s", i, v.Type()))
		}
		data[i] = []byte(s)
	})
	var b bufSet
	for i := range wire.MaxArgs {
		if d, ok := data[i]; ok {
			b.args = append(b.args, i)
			b.blobs = append(b.blobs, d)
		}
	}
	return b
}

// ptrSpec is one embedded pointer: memory of length bytes whose address
// is written into a buffer at offset.
type ptrSpec struct {
	buf    int // index into the call's buffers
	offset int
	length int
	data   []byte // nil: zeroed memory
	output bool
}

// specField reads a spec field by name, or by position for the short
// form {1, 0, 5}.
func specField(t *lua.LTable, name string, pos int) lua.LValue {
	if v := t.RawGetString(name); v != lua.LNil {
		return v
	}
	return t.RawGetInt(pos)
}

// specNames are the names of a pointer spec's fields, which differ
// between syscall_ptr and ioctl_buf.
type specNames struct {
	buf    string // "" when every pointer goes into buffer 0 (the ioctl struct)
	offset string
	length string
}

var (
	syscallSpec = specNames{buf: "buf_idx", offset: "ptr_offset", length: "data_len"}
	ioctlSpec   = specNames{offset: "ptr_offset", length: "buf_len"}
)

// checkPtrSpecs reads a list of pointer specs at argument n: by name, or
// positionally in the order [buf,] offset, length, data, output. It reads
// types and the fields a spec needs; whether the values make a valid
// request is wire.Syscall.Validate's to say.
func checkPtrSpecs(L *lua.LState, n int, bufs bufSet, names specNames) []ptrSpec {
	list := L.CheckTable(n)
	var specs []ptrSpec
	for k := 1; k <= list.Len(); k++ {
		t, ok := list.RawGetInt(k).(*lua.LTable)
		if !ok {
			L.ArgError(n, fmt.Sprintf("pointer spec %d: table expected, got %s", k, list.RawGetInt(k).Type()))
		}
		bad := func(format string, a ...any) {
			L.ArgError(n, fmt.Sprintf("pointer spec %d: ", k)+fmt.Sprintf(format, a...))
		}
		pos := 1
		next := func(name string) lua.LValue {
			v := specField(t, name, pos)
			pos++
			return v
		}
		integer := func(name string) (int, bool) {
			v := next(name)
			if v == lua.LNil {
				return 0, false
			}
			f, ok := v.(lua.LNumber)
			if !ok || float64(f) != math.Trunc(float64(f)) || math.Abs(float64(f)) > wire.MaxMessage {
				bad("%s %s is not an integer", name, describe(v))
			}
			return int(f), true
		}
		var s ptrSpec
		if names.buf != "" {
			arg, ok := integer(names.buf)
			if !ok {
				bad("%s missing", names.buf)
			}
			if s.buf = bufs.index(arg); s.buf < 0 {
				bad("%s %d: argument %d has no buffer in bufs", names.buf, arg, arg)
			}
		}
		off, ok := integer(names.offset)
		if !ok {
			bad("%s missing", names.offset)
		}
		s.offset = off
		length, hasLen := integer(names.length)
		if dv := next("data"); dv != lua.LNil {
			d, ok := stringOf(dv)
			if _, isNum := dv.(lua.LNumber); !ok || isNum {
				bad("data must be a string, got %s", dv.Type())
			}
			s.data = []byte(d)
			if !hasLen {
				// {ptr_offset=0, data="x"}: the memory is the data.
				length, hasLen = len(d), true
			}
		}
		if !hasLen {
			bad("%s missing", names.length)
		}
		s.length = length
		s.output = lua.LVAsBool(next("output"))
		// Validate would refuse these too, but only the script's own field
		// names tell the user which value is wrong.
		if size := len(bufs.blobs[s.buf]); s.offset < 0 || s.offset > size-8 {
			bad("%s %d does not leave 8 bytes for a pointer inside the %d-byte buffer", names.offset, s.offset, size)
		}
		if s.length < 0 {
			bad("negative %s %d", names.length, s.length)
		}
		if len(s.data) > s.length {
			bad("%d bytes of data do not fit in %s %d", len(s.data), names.length, s.length)
		}
		specs = append(specs, s)
	}
	return specs
}

// call is one syscall request being built.
type call struct {
	req   wire.Syscall
	blobs [][]byte
}

func newCall(nr int64, args [wire.MaxArgs]uint64, bufs bufSet, ptrs []ptrSpec) *call {
	c := &call{req: wire.Syscall{Nr: nr, Args: args}}
	for i, arg := range bufs.args {
		c.req.Bufs = append(c.req.Bufs, wire.Buf{Arg: arg})
		c.blobs = append(c.blobs, bufs.blobs[i])
		c.req.Args[arg] = 0 // replaced by the pointer in the guest
	}
	for _, p := range ptrs {
		c.req.Ptrs = append(c.req.Ptrs, wire.Ptr{
			Buf: p.buf, Offset: p.offset, Len: p.length, HasData: p.data != nil, Output: p.output,
		})
		if p.data != nil {
			c.blobs = append(c.blobs, p.data)
		}
	}
	return c
}

// do sends the call and returns the raw result and the buffers after it
// (buffers in argument order, then output pointers in spec order). A
// request that is not valid is the script's error, never sent (the client
// validates it) and never mistaken for a failure of the guest.
func (rt *script) do(L *lua.LState, t target, method string, c *call) (int64, [][]byte) {
	a := rt.agentOf(L, t, method)
	ret, outs, err := a.Syscall(rt.ctx, c.req, c.blobs)
	if errors.Is(err, wire.ErrBadRequest) {
		rt.raise(L, t, method, "%v", err)
	}
	if err != nil {
		rt.fail(L, t, method, err)
	}
	return ret, outs
}

func pushResults(L *lua.LState, ret int64, outs [][]byte) int {
	L.Push(lua.LNumber(ret))
	for _, o := range outs {
		L.Push(lua.LString(o))
	}
	return 1 + len(outs)
}

// syscall is vm:syscall(nr, a1, ..., a6) -> ret.
func (rt *script) syscall(L *lua.LState) int {
	t := rt.self(L, "syscall")
	c := newCall(checkNr(L, 2), checkArgs(L, 3), bufSet{}, nil)
	ret, _ := rt.do(L, t, "syscall", c)
	L.Push(lua.LNumber(ret))
	return 1
}

// syscallBuf is vm:syscall_buf(nr, idx, data, a...) -> ret, out.
func (rt *script) syscallBuf(L *lua.LState) int {
	t := rt.self(L, "syscall_buf")
	nr := checkNr(L, 2)
	idx := checkArgIndex(L, 3, L.Get(3), "buffer index")
	data := checkBytes(L, 4)
	bufs := bufSet{args: []int{idx}, blobs: [][]byte{[]byte(data)}}
	ret, outs := rt.do(L, t, "syscall_buf", newCall(nr, checkArgs(L, 5), bufs, nil))
	return pushResults(L, ret, outs)
}

// syscallBufs is vm:syscall_bufs(nr, bufs, a...) -> ret, out...
func (rt *script) syscallBufs(L *lua.LState) int {
	t := rt.self(L, "syscall_bufs")
	nr := checkNr(L, 2)
	bufs := checkBufs(L, 3)
	ret, outs := rt.do(L, t, "syscall_bufs", newCall(nr, checkArgs(L, 4), bufs, nil))
	return pushResults(L, ret, outs)
}

// syscallPtr is vm:syscall_ptr(nr, bufs, ptrs, a...) -> ret, bufouts...,
// ptrouts... A spec's buf_idx is the argument index of its buffer, as in
// bufs.
func (rt *script) syscallPtr(L *lua.LState) int {
	t := rt.self(L, "syscall_ptr")
	nr := checkNr(L, 2)
	bufs := checkBufs(L, 3)
	ptrs := checkPtrSpecs(L, 4, bufs, syscallSpec)
	ret, outs := rt.do(L, t, "syscall_ptr", newCall(nr, checkArgs(L, 5), bufs, ptrs))
	return pushResults(L, ret, outs)
}
