package agent

import (
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire"
)

// maxSyscallMapped bounds the memory one Syscall maps once every buffer is
// rounded up to whole pages. wire.Syscall.Validate bounds the bytes asked
// for; this bounds the pages, which many small pointers could inflate.
const maxSyscallMapped = 2 * wire.MaxSyscallMemory

// syscall makes a raw system call on the identity's thread. Buffers live in
// anonymous mappings outside the Go heap, so their addresses stay valid
// whatever the garbage collector does, and each is at least a page, so even
// an empty buffer has a valid address.
//
// It uses unix.Syscall6, not RawSyscall6: a call that blocks (a read on a
// pipe) then releases its processor and other identities keep running.
// Every number is passed through, unknown ones included; the kernel answers
// -ENOSYS.
func (id *identity) syscall(r request) (*wire.Message, error) {
	m := r.msg
	var req wire.Syscall
	if err := m.Decode(&req); err != nil {
		return nil, err
	}
	if err := req.Validate(m.Blobs); err != nil {
		return nil, fmt.Errorf("syscall %d: %w", req.Nr, err)
	}
	if err := checkMapped(&req, m.Blobs); err != nil {
		return nil, fmt.Errorf("syscall %d: %w", req.Nr, err)
	}
	if req.Nr == unix.SYS_EXIT {
		return nil, id.exit(int(req.Args[0] & 0xff))
	}

	var mem guestMemory
	defer mem.free()
	args := req.Args
	bufs := make([][]byte, len(req.Bufs))
	for i, b := range req.Bufs {
		buf, err := mem.alloc(len(m.Blobs[i]))
		if err != nil {
			return nil, fmt.Errorf("syscall %d: buffer %d: %w", req.Nr, i, err)
		}
		copy(buf, m.Blobs[i])
		bufs[i] = buf
		args[b.Arg] = address(buf)
	}
	ptrs := make([][]byte, len(req.Ptrs))
	data := len(req.Bufs) // index of the next pointer's contents among the blobs
	for k, p := range req.Ptrs {
		pm, err := mem.alloc(p.Len)
		if err != nil {
			return nil, fmt.Errorf("syscall %d: pointer %d: %w", req.Nr, k+1, err)
		}
		if p.HasData {
			copy(pm, m.Blobs[data])
			data++
		}
		ptrs[k] = pm
		binary.LittleEndian.PutUint64(bufs[p.Buf][p.Offset:], address(pm))
	}

	r1, _, errno := unix.Syscall6(uintptr(req.Nr),
		uintptr(args[0]), uintptr(args[1]), uintptr(args[2]),
		uintptr(args[3]), uintptr(args[4]), uintptr(args[5]))
	ret := int64(r1)
	if errno != 0 {
		ret = -int64(errno)
	}

	// Copies, because the mappings go away on return.
	out := make([][]byte, 0, len(bufs)+len(ptrs))
	for _, b := range bufs {
		out = append(out, append([]byte(nil), b...))
	}
	for k, p := range req.Ptrs {
		if p.Output {
			out = append(out, append([]byte(nil), ptrs[k]...))
		}
	}
	return wire.Reply(m.ID, wire.SyscallResult{Ret: ret}, out...)
}

// checkMapped adds the check Validate leaves to the side that allocates:
// the total once rounded up to pages. Validate has bounded every offset
// and length.
func checkMapped(req *wire.Syscall, blobs [][]byte) error {
	page := os.Getpagesize()
	total := 0
	for i := range req.Bufs {
		total += pages(len(blobs[i]), page)
	}
	for _, p := range req.Ptrs {
		total += pages(p.Len, page)
		if total > maxSyscallMapped {
			break
		}
	}
	if total > maxSyscallMapped {
		return fmt.Errorf("buffers need more than %d bytes of pages: %w", maxSyscallMapped, wire.ErrBadRequest)
	}
	return nil
}

// pages is n rounded up to whole pages, at least one.
func pages(n, page int) int {
	if n <= 0 {
		return page
	}
	return (n + page - 1) / page * page
}

// guestMemory is the anonymous memory of one system call.
type guestMemory struct {
	maps [][]byte
}

// alloc maps at least one page and returns its first n bytes.
func (g *guestMemory) alloc(n int) ([]byte, error) {
	b, err := unix.Mmap(-1, 0, pages(n, os.Getpagesize()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("mmap %d bytes: %w", n, err)
	}
	g.maps = append(g.maps, b)
	return b[:n], nil
}

func (g *guestMemory) free() {
	for _, b := range g.maps {
		unix.Munmap(b)
	}
	g.maps = nil
}

// address is where b starts in memory, also when b is empty.
func address(b []byte) uint64 {
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}
