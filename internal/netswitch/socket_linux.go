package netswitch

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// errWouldBlock reports a full socket buffer toward a VM.
var errWouldBlock = errors.New("socket buffer full")

// portSocket is the switch's end of a port's socketpair. It is
// non-blocking and registered with the runtime poller, so a reader waits
// without holding a thread and closing the file wakes it.
//
// The callbacks handed to the raw connection, and the state they share,
// are made once per socket rather than once per frame, which would cost
// allocations on every frame.
type portSocket struct {
	f   *os.File
	raw syscall.RawConn

	// Only the port's reader goroutine receives.
	rbuf   []byte
	rn     int
	rerr   unix.Errno
	readFn func(fd uintptr) bool

	// Several goroutines may deliver to one port.
	wmu     sync.Mutex
	wbuf    []byte
	werr    error
	writeFn func(fd uintptr) bool
}

// newPortSocket makes the socketpair of a port. The QEMU end stays
// blocking: QEMU makes it non-blocking itself, and exec.Cmd would make it
// blocking anyway.
func newPortSocket(name string) (*portSocket, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	for _, fd := range fds {
		// Best effort: the kernel silently caps it at net.core.wmem_max,
		// and the default still works, only with a shorter queue.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, EgressBuffer)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("set non-blocking: %w", err)
	}
	f := os.NewFile(uintptr(fds[0]), "netswitch-"+name)
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("raw socket: %w", err)
	}
	ps := &portSocket{f: f, raw: raw}
	ps.readFn = ps.doRecv
	ps.writeFn = ps.doSend
	return ps, os.NewFile(uintptr(fds[1]), "netswitch-qemu-"+name), nil
}

// recv waits for the next datagram and returns its real length, which may
// exceed len(buf) (MSG_TRUNC), so an oversized frame is counted as what it
// is rather than as a truncated frame.
func (s *portSocket) recv(buf []byte) (int, error) {
	s.rbuf = buf
	for {
		if err := s.raw.Read(s.readFn); err != nil {
			return 0, err
		}
		switch s.rerr {
		case 0:
			return s.rn, nil
		case unix.EINTR, unix.ECONNRESET, unix.ECONNREFUSED:
			// ECONNRESET is reported once when a peer dies with frames
			// unread; the socket stays usable.
			continue
		}
		return 0, s.rerr
	}
}

func (s *portSocket) doRecv(fd uintptr) bool {
	// recvfrom directly: unix.Recvfrom allocates a source address on every
	// call, and a socketpair has none to report.
	n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd,
		uintptr(unsafe.Pointer(unsafe.SliceData(s.rbuf))), uintptr(len(s.rbuf)),
		unix.MSG_TRUNC, 0, 0)
	s.rn, s.rerr = int(n), errno
	return errno != unix.EAGAIN
}

// send writes one frame without waiting: a full buffer is the VM's queue
// overflowing (errWouldBlock), and must not hold up the other ports.
func (s *portSocket) send(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.wbuf = b
	err := s.raw.Write(s.writeFn)
	s.wbuf = nil
	if err != nil {
		return err
	}
	if s.werr == unix.EAGAIN {
		return errWouldBlock
	}
	return s.werr
}

func (s *portSocket) doSend(fd uintptr) bool {
	for {
		_, s.werr = unix.Write(int(fd), s.wbuf)
		if s.werr != unix.EINTR {
			return true
		}
	}
}

func (s *portSocket) close() error { return s.f.Close() }
