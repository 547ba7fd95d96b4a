package agent

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire"
)

// openat opens path through the agent's raw syscall op, as a test script
// does, and returns the descriptor (not close-on-exec).
func openat(t *testing.T, h *testHost, ch uint32, path string, flags int) int {
	t.Helper()
	req := wire.Syscall{Nr: unix.SYS_OPENAT, Bufs: []wire.Buf{{Arg: 1}}}
	fdcwd := unix.AT_FDCWD
	req.Args[0] = uint64(fdcwd)
	req.Args[2] = uint64(flags)
	req.Args[3] = 0o644
	ret, _ := h.syscall(ch, req, append([]byte(path), 0))
	if ret < 0 {
		t.Fatalf("openat %s: %v", path, unix.Errno(-ret))
	}
	t.Cleanup(func() { unix.Close(int(ret)) })
	return int(ret)
}

func TestSyscallPlain(t *testing.T) {
	h := newSession(t)
	if got := h.sys(wire.MainChannel, unix.SYS_GETPID); got != int64(os.Getpid()) {
		t.Errorf("getpid = %d, want %d", got, os.Getpid())
	}
	if got := h.sys(wire.MainChannel, unix.SYS_CLOSE, 99999); got != -int64(unix.EBADF) {
		t.Errorf("close(99999) = %d, want -EBADF", got)
	}
	if got := h.sys(wire.MainChannel, 999); got != -int64(unix.ENOSYS) {
		t.Errorf("syscall 999 = %d, want -ENOSYS", got)
	}
	if got := h.sys(wire.MainChannel, -1); got != -int64(unix.ENOSYS) {
		t.Errorf("syscall -1 = %d, want -ENOSYS", got)
	}
	// Every op of an identity runs on the same thread.
	tid := h.sys(wire.MainChannel, unix.SYS_GETTID)
	for range 5 {
		if got := h.sys(wire.MainChannel, unix.SYS_GETTID); got != tid {
			t.Fatalf("gettid = %d, then %d: the identity moved threads", tid, got)
		}
	}
}

func TestSyscallBuffers(t *testing.T) {
	h := newSession(t)

	// An output buffer: uname fills 390 bytes.
	ret, out := h.syscall(wire.MainChannel, wire.Syscall{Nr: unix.SYS_UNAME, Bufs: []wire.Buf{{Arg: 0}}}, make([]byte, 390))
	if ret != 0 || len(out) != 1 || len(out[0]) != 390 || !bytes.HasPrefix(out[0], []byte("Linux\x00")) {
		t.Errorf("uname = %d, %d buffers; want 0 and one of 390 bytes starting with Linux", ret, len(out))
	}

	// An input buffer: write to a pipe the test made.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	req := wire.Syscall{Nr: unix.SYS_WRITE, Bufs: []wire.Buf{{Arg: 1}}}
	req.Args[0], req.Args[2] = uint64(w.Fd()), 5
	if ret, out := h.syscall(wire.MainChannel, req, []byte("hello")); ret != 5 || string(out[0]) != "hello" {
		t.Errorf("write = %d, %q; want 5, the buffer unchanged", ret, out)
	}
	got := make([]byte, 5)
	if _, err := r.Read(got); err != nil || string(got) != "hello" {
		t.Errorf("pipe has %q, %v", got, err)
	}

	// An empty buffer still has a valid address.
	req.Args[2] = 0
	if ret, out := h.syscall(wire.MainChannel, req, []byte{}); ret != 0 || len(out[0]) != 0 {
		t.Errorf("write of 0 bytes = %d, %q; want 0", ret, out)
	}
}

func TestSyscallEmbeddedPointers(t *testing.T) {
	h := newSession(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()

	iov := func(n uint64) []byte {
		b := make([]byte, 16) // struct iovec {base, len}
		binary.LittleEndian.PutUint64(b[8:], n)
		return b
	}

	// writev with input memory behind the iovec's pointer.
	req := wire.Syscall{
		Nr:   unix.SYS_WRITEV,
		Bufs: []wire.Buf{{Arg: 1}},
		Ptrs: []wire.Ptr{{Buf: 0, Offset: 0, Len: 5, HasData: true}},
	}
	req.Args[0], req.Args[2] = uint64(w.Fd()), 1
	if ret, out := h.syscall(wire.MainChannel, req, iov(5), []byte("world")); ret != 5 || len(out) != 1 {
		t.Errorf("writev = %d with %d blobs, want 5 with the iovec only", ret, len(out))
	}

	// readv with output memory: the buffers come back, then the output.
	req = wire.Syscall{
		Nr:   unix.SYS_READV,
		Bufs: []wire.Buf{{Arg: 1}},
		Ptrs: []wire.Ptr{{Buf: 0, Offset: 0, Len: 5, Output: true}},
	}
	req.Args[0], req.Args[2] = uint64(r.Fd()), 1
	ret, out := h.syscall(wire.MainChannel, req, iov(5))
	if ret != 5 || len(out) != 2 {
		t.Fatalf("readv = %d with %d blobs, want 5 with 2", ret, len(out))
	}
	if len(out[0]) != 16 || binary.LittleEndian.Uint64(out[0]) == 0 {
		t.Errorf("iovec after readv = %x, want 16 bytes with the address patched in", out[0])
	}
	if string(out[1]) != "world" {
		t.Errorf("readv output = %q, want %q", out[1], "world")
	}
}

func TestSyscallRejectsInvalidRequests(t *testing.T) {
	h := newSession(t)
	for _, tc := range []struct {
		name  string
		req   wire.Syscall
		blobs [][]byte
		want  string
	}{
		{"argument index out of range", wire.Syscall{Nr: unix.SYS_GETPID, Bufs: []wire.Buf{{Arg: 6}}}, [][]byte{{0}}, "outside"},
		{"two buffers for one argument", wire.Syscall{Nr: unix.SYS_GETPID, Bufs: []wire.Buf{{Arg: 1}, {Arg: 1}}}, [][]byte{{0}, {0}}, "has two buffers"},
		{"buffer without data", wire.Syscall{Nr: unix.SYS_GETPID, Bufs: []wire.Buf{{Arg: 0}}}, nil, "no data"},
		{"too many blobs", wire.Syscall{Nr: unix.SYS_GETPID}, [][]byte{{0}}, "blobs"},
		{"pointer outside its buffer", wire.Syscall{Nr: unix.SYS_GETPID, Bufs: []wire.Buf{{Arg: 0}}, Ptrs: []wire.Ptr{{Buf: 0, Offset: 4, Len: 1}}}, [][]byte{make([]byte, 8)}, "does not leave 8 bytes"},
		{"pointer offset that overflows", wire.Syscall{Nr: unix.SYS_GETPID, Bufs: []wire.Buf{{Arg: 0}}, Ptrs: []wire.Ptr{{Buf: 0, Offset: math.MaxInt - 4, Len: 1}}}, [][]byte{make([]byte, 8)}, "does not leave 8 bytes"},
		{"pointer to a missing buffer", wire.Syscall{Nr: unix.SYS_GETPID, Ptrs: []wire.Ptr{{Buf: 0, Len: 1}}}, nil, "is for buffer 0 of 0"},
		{"too much memory", wire.Syscall{Nr: unix.SYS_GETPID, Bufs: []wire.Buf{{Arg: 0}}, Ptrs: []wire.Ptr{{Buf: 0, Len: wire.MaxSyscallMemory + 1}}}, [][]byte{make([]byte, 8)}, "is outside 0.."},
		{"lengths that overflow", wire.Syscall{Nr: unix.SYS_GETPID, Bufs: []wire.Buf{{Arg: 0}}, Ptrs: []wire.Ptr{{Buf: 0, Len: math.MaxInt}, {Buf: 0, Len: math.MaxInt}}}, [][]byte{make([]byte, 8)}, "is outside 0.."},
		{"many small pointers", wire.Syscall{Nr: unix.SYS_GETPID, Bufs: []wire.Buf{{Arg: 0}}, Ptrs: manyPointers(40000)}, [][]byte{make([]byte, 8)}, "pages"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := h.fail(wire.MainChannel, wire.OpSyscall, tc.req, tc.blobs...)
			if !strings.Contains(e.Message, tc.want) || !strings.Contains(e.Message, "invalid request") {
				t.Errorf("error %q, want one about %q", e.Message, tc.want)
			}
		})
	}
	h.ok(wire.MainChannel, wire.OpPing, nil)
}

func manyPointers(n int) []wire.Ptr {
	p := make([]wire.Ptr, n)
	for i := range p {
		p[i] = wire.Ptr{Buf: 0, Len: 1}
	}
	return p
}
