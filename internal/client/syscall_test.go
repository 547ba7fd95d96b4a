package client_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire"
)

func TestSyscallPlain(t *testing.T) {
	a := open(t, newGuest(t)).Main()
	if got := sys(t, a, unix.SYS_GETPID); got != int64(os.Getpid()) {
		t.Errorf("getpid = %d, want %d", got, os.Getpid())
	}
	if got := sys(t, a, unix.SYS_CLOSE, 99999); got != -int64(unix.EBADF) {
		t.Errorf("close(99999) = %d, want -EBADF", got)
	}
	if got := sys(t, a, 999); got != -int64(unix.ENOSYS) {
		t.Errorf("syscall 999 = %d, want -ENOSYS", got)
	}
	if got := sys(t, a, -1); got != -int64(unix.ENOSYS) {
		t.Errorf("syscall -1 = %d, want -ENOSYS", got)
	}
	// Every op of an identity runs on the same thread.
	tid := sys(t, a, unix.SYS_GETTID)
	for range 5 {
		if got := sys(t, a, unix.SYS_GETTID); got != tid {
			t.Fatalf("gettid = %d, then %d: the identity moved threads", tid, got)
		}
	}
}

func TestSyscallBuffers(t *testing.T) {
	a := open(t, newGuest(t)).Main()

	// An output buffer: uname fills 390 bytes.
	ret, out := sysBufs(t, a, wire.Syscall{Nr: unix.SYS_UNAME, Bufs: []wire.Buf{{Arg: 0}}}, make([]byte, 390))
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
	if ret, out := sysBufs(t, a, req, []byte("hello")); ret != 5 || string(out[0]) != "hello" {
		t.Errorf("write = %d, %q; want 5, the buffer unchanged", ret, out)
	}
	got := make([]byte, 5)
	if _, err := r.Read(got); err != nil || string(got) != "hello" {
		t.Errorf("pipe has %q, %v", got, err)
	}

	// An empty buffer still has a valid address.
	req.Args[2] = 0
	if ret, out := sysBufs(t, a, req, []byte{}); ret != 0 || len(out[0]) != 0 {
		t.Errorf("write of 0 bytes = %d, %q; want 0", ret, out)
	}
}

func TestSyscallEmbeddedPointers(t *testing.T) {
	a := open(t, newGuest(t)).Main()
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
	if ret, out := sysBufs(t, a, req, iov(5), []byte("world")); ret != 5 || len(out) != 1 {
		t.Errorf("writev = %d with %d blobs, want 5 with the iovec only", ret, len(out))
	}

	// readv with output memory: the buffers come back, then the output.
	req = wire.Syscall{
		Nr:   unix.SYS_READV,
		Bufs: []wire.Buf{{Arg: 1}},
		Ptrs: []wire.Ptr{{Buf: 0, Offset: 0, Len: 5, Output: true}},
	}
	req.Args[0], req.Args[2] = uint64(r.Fd()), 1
	ret, out := sysBufs(t, a, req, iov(5))
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
