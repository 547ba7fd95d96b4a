package luaapi

import (
	"fmt"
	"math"

	lua "github.com/yuin/gopher-lua"
)

// ioctlCmd is a decoded Linux _IOC number.
type ioctlCmd struct {
	raw  uint32
	dir  uint32 // 0 none, 1 write (_IOW), 2 read (_IOR), 3 both (_IOWR)
	size int    // size of the argument struct
}

const (
	iocWrite = 1
	iocRead  = 2
)

func decodeIoctl(cmd uint32) ioctlCmd {
	return ioctlCmd{raw: cmd, dir: cmd >> 30, size: int((cmd >> 16) & 0x3fff)}
}

// checkIoctlCmd reads an ioctl command. Commands are 32 bits; one written
// as a negative int32 (as C code printing it signed would) is accepted.
func checkIoctlCmd(L *lua.LState, n int) ioctlCmd {
	iv, err := toIntVal(L.Get(n))
	if err == nil && ((!iv.neg && iv.mag > math.MaxUint32) || (iv.neg && iv.mag > 1<<31)) {
		err = fmt.Errorf("ioctl command %s does not fit in 32 bits", iv)
	}
	if err != nil {
		L.ArgError(n, err.Error())
	}
	return decodeIoctl(uint32(iv.bits()))
}

// padTo returns data extended with zeros to size bytes: the kernel
// copies the size encoded in the command, and a shorter buffer would let
// it read or write past the agent's copy.
func padTo(data []byte, size int) []byte {
	if len(data) >= size {
		return data
	}
	return append(append(make([]byte, 0, size), data...), make([]byte, size-len(data))...)
}

// ioctl is vm:ioctl(fd, cmd, data?) -> ret, out. A string is passed by
// pointer and comes back as out when the command reads (_IOR, _IOWR); a
// number is passed as it is; without data a reading command gets a zeroed
// buffer of the encoded size and any other gets 0.
func (rt *script) ioctl(L *lua.LState) int {
	t := rt.self(L, "ioctl")
	fd := checkWord(L, 2)
	cmd := checkIoctlCmd(L, 3)
	args := [6]uint64{fd, uint64(cmd.raw)}
	var bufs bufSet
	switch d := L.Get(4).(type) {
	case *lua.LNilType:
		if cmd.dir&iocRead != 0 {
			bufs = bufSet{args: []int{2}, blobs: [][]byte{make([]byte, cmd.size)}}
		}
	case lua.LNumber:
		args[2] = checkWord(L, 4)
	default:
		if _, ok := stringOf(d); !ok {
			L.ArgError(4, "string, number or nil expected, got "+d.Type().String())
		}
		bufs = bufSet{args: []int{2}, blobs: [][]byte{padTo([]byte(checkBytes(L, 4)), cmd.size)}}
	}
	if L.GetTop() > 4 {
		L.ArgError(5, "ioctl takes fd, cmd and one data argument")
	}
	ret, outs := rt.do(L, t, "ioctl", newCall(sysIoctl, args, bufs, nil))
	L.Push(lua.LNumber(ret))
	if len(outs) > 0 && cmd.dir&iocRead != 0 {
		L.Push(lua.LString(outs[0]))
	} else {
		L.Push(lua.LNil)
	}
	return 2
}

// ioctlBuf is vm:ioctl_buf(fd, cmd, struct, specs) -> ret, struct_out,
// out...: the struct is passed by pointer with pointers patched into it;
// every spec with output=true comes back, in spec order.
func (rt *script) ioctlBuf(L *lua.LState) int {
	t := rt.self(L, "ioctl_buf")
	fd := checkWord(L, 2)
	cmd := checkIoctlCmd(L, 3)
	st := padTo([]byte(checkBytes(L, 4)), cmd.size)
	bufs := bufSet{args: []int{2}, blobs: [][]byte{st}}
	ptrs := checkPtrSpecs(L, 5, bufs, ioctlSpec)
	ret, outs := rt.do(L, t, "ioctl_buf", newCall(sysIoctl, [6]uint64{fd, uint64(cmd.raw)}, bufs, ptrs))
	return pushResults(L, ret, outs)
}
