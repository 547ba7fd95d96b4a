package agent

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire"
)

// A claim turns a spare worker process into the worker of a channel. It
// carries what a worker forked from its parent's thread would have
// inherited and a process started earlier, from another thread, does not
// have: the parent identity's credentials, and the agent's working
// directory, umask, environment and test descriptors.
//
// On the socket it is one sendmsg: a 4-byte little-endian length, the
// claim as JSON, and in an SCM_RIGHTS message the working directory (an
// O_PATH descriptor) followed by the descriptors to place at FDs.
type claim struct {
	Channel uint32              `json:"channel"`
	UID     [3]uint32           `json:"uid"` // real, effective, saved
	GID     [3]uint32           `json:"gid"`
	Groups  []uint32            `json:"groups"`
	Caps    [2]unix.CapUserData `json:"caps"`
	Umask   int                 `json:"umask"`
	Env     []string            `json:"env"`
	FDs     []int               `json:"fds"`   // increasing, 0, 1 and 2 first
	Sched   [2]int              `json:"sched"` // scheduling policy and priority
}

const (
	// maxClaimFDs is SCM_MAX_FD, the most descriptors one message
	// passes: the working directory and 252 test descriptors.
	maxClaimFDs = 253
	// maxClaimSize bounds the JSON of a claim.
	maxClaimSize = 1 << 20
)

func newClaim(ch uint32, c creds, umask int, env []string, fds []int) claim {
	return claim{Channel: ch, UID: c.uid, GID: c.gid, Groups: c.groups, Caps: c.caps, Umask: umask, Env: env, FDs: fds}
}

func (c claim) creds() creds {
	return creds{uid: c.UID, gid: c.GID, groups: c.Groups, caps: c.Caps}
}

// encode returns the bytes of the claim's sendmsg.
func (c claim) encode() ([]byte, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return append(binary.LittleEndian.AppendUint32(nil, uint32(len(body))), body...), nil
}

// runSpare is a spare worker process: it waits on its socket sock for a
// claim, takes on what the claim carries and serves as the claimed worker.
//
// It waits on the thread that will serve the identity, so that a claim
// starts no thread, and it first runs what a claim runs (see prewarm). The
// credentials go last, on that thread, while the process still runs as
// root: setting the working directory or placing descriptors never fails
// for lack of permission, and dropping to any identity is allowed. If
// anything fails, the worker sends the error instead of its ready signal
// and the agent starts a worker the usual way.
func runSpare(sock int) int {
	// A descriptor the agent opened without close-on-exec while it
	// started this spare slipped in: a fork would not have it.
	strays, _ := inheritedFDs()
	for _, fd := range strays {
		if fd > 2 {
			unix.Close(fd)
		}
	}
	// The agent made this process idle-class once it had exec'd; threads
	// the runtime started since may have escaped (see spareSlot).
	setProcessSched(os.Getpid(), unix.SCHED_IDLE, 0)
	prewarm()
	return runWorker(func() (io.ReadWriter, uint32, error) {
		c, fds, err := receiveClaim(sock)
		if err == nil {
			// The agent set every thread's policy before it sent the
			// claim; one the runtime started since got the spare's.
			err = setProcessSched(os.Getpid(), c.Sched[0], c.Sched[1])
		}
		if err == nil {
			sock, err = c.enter(sock, fds)
		}
		if err == nil {
			err = c.creds().applyAll()
		}
		if err != nil && !errors.Is(err, io.EOF) { // EOF: the agent let the spare go
			err = fmt.Errorf("spare worker: %w", err)
		}
		return os.NewFile(uintptr(sock), "provium-worker-socket"), c.Channel, err
	})
}

// prewarm runs the code a claim runs first, while the spare waits. Under
// an emulated CPU, code that a process runs for the first time costs page
// faults and translation; done ahead, this takes about 10 ms off a claim.
func prewarm() {
	b, err := newClaim(wire.MainChannel+1, creds{}, 0, os.Environ(), []int{0, 1, 2}).encode()
	if err == nil {
		var c claim
		json.Unmarshal(b[4:], &c)
	}
	threadCreds()
	allThreadsSupported()
	if m, err := wire.Reply(0, wire.SpawnReply{}); err == nil {
		m.Marshal()
	}
}

// receiveClaim reads a claim from sock and returns it with the descriptors
// that came with it.
func receiveClaim(sock int) (claim, []int, error) {
	var c claim
	head := make([]byte, 4)
	oob := make([]byte, unix.CmsgSpace(4*maxClaimFDs))
	var n, oobn, flags int
	var err error
	for {
		// Close-on-exec until placed: the commands the worker runs
		// inherit only the descriptors it places.
		n, oobn, flags, _, err = unix.Recvmsg(sock, head, oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return c, nil, fmt.Errorf("receive claim: %w", err)
	}
	if n == 0 {
		return c, nil, io.EOF
	}
	var fds []int
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return c, nil, fmt.Errorf("receive claim: %w", err)
	}
	for _, m := range msgs {
		rights, err := unix.ParseUnixRights(&m)
		if err != nil {
			return c, nil, fmt.Errorf("receive claim: %w", err)
		}
		fds = append(fds, rights...)
	}
	if flags&unix.MSG_CTRUNC != 0 {
		return c, nil, errors.New("receive claim: descriptors were dropped")
	}
	if err := readFull(sock, head[n:]); err != nil {
		return c, nil, fmt.Errorf("receive claim: %w", err)
	}
	size := binary.LittleEndian.Uint32(head)
	if size > maxClaimSize {
		return c, nil, fmt.Errorf("receive claim: %d bytes", size)
	}
	body := make([]byte, size)
	if err := readFull(sock, body); err != nil {
		return c, nil, fmt.Errorf("receive claim: %w", err)
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return c, nil, fmt.Errorf("receive claim: %w", err)
	}
	if len(fds) != 1+len(c.FDs) || len(c.FDs) < 3 || !slices.IsSorted(c.FDs) {
		return c, nil, fmt.Errorf("claim for %d descriptors came with %d", len(c.FDs), len(fds))
	}
	return c, fds, nil
}

func readFull(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Read(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		b = b[n:]
	}
	return nil
}

// enter takes on the claim's working directory (fds[0]), descriptors
// (fds[1:]), umask and environment — everything but the credentials — and
// returns where the socket is now.
func (c claim) enter(sock int, fds []int) (int, error) {
	err := unix.Fchdir(fds[0])
	unix.Close(fds[0])
	if err != nil {
		return sock, fmt.Errorf("working directory: %w", err)
	}
	if sock, err = placeFDs(sock, fds[1:], c.FDs); err != nil {
		return sock, err
	}
	unix.Umask(c.Umask)
	os.Clearenv()
	for _, kv := range c.Env {
		k, v, _ := strings.Cut(kv, "=")
		if err := os.Setenv(k, v); err != nil {
			return sock, fmt.Errorf("environment %q: %w", kv, err)
		}
	}
	return sock, nil
}

// placeFDs moves each received descriptor got[i] to number want[i] (sorted),
// as a fork would have had it, closing the received copy, and returns the
// socket's number, which may have changed.
//
// Nothing the worker still needs may sit at a wanted number when dup3
// replaces it: the socket and the received copies are first moved above
// every wanted number. Any other descriptor already open at a wanted number
// above 2 is the Go runtime's own (the spare kept only 0, 1, 2 and its
// socket, see runSpare), so the claim fails rather than clobber it.
func placeFDs(sock int, got, want []int) (int, error) {
	above := want[len(want)-1] + 1
	moveAway := func(fd *int) error {
		if _, wanted := slices.BinarySearch(want, *fd); !wanted {
			return nil
		}
		nfd, err := unix.FcntlInt(uintptr(*fd), unix.F_DUPFD_CLOEXEC, above)
		if err != nil {
			return fmt.Errorf("move descriptor %d: %w", *fd, err)
		}
		unix.Close(*fd)
		*fd = nfd
		return nil
	}
	if err := moveAway(&sock); err != nil {
		return sock, err
	}
	for i := range got {
		if err := moveAway(&got[i]); err != nil {
			return sock, err
		}
	}
	for _, fd := range want {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); fd > 2 && err == nil {
			return sock, fmt.Errorf("descriptor %d is in use in the worker", fd)
		}
	}
	for i, fd := range want {
		if err := unix.Dup3(got[i], fd, 0); err != nil {
			return sock, fmt.Errorf("place descriptor %d: %w", fd, err)
		}
		unix.Close(got[i])
	}
	return sock, nil
}

// The agent's side of a claim.

// errSpareUnfit says that the spawning thread differs from the spare in
// something a claim does not carry.
var errSpareUnfit = errors.New("the spare cannot stand in for a fork of this thread")

// claimSpare makes the spare the worker of ch, if there is a spare and it
// fits the calling thread, the parent identity's. It returns nil if the
// caller must start a worker the usual way.
func (a *Agent) claimSpare(ch uint32) (*forkWorker, wire.SpawnReply) {
	w, base := a.takeSpare()
	if w == nil {
		return nil, wire.SpawnReply{}
	}
	rep, err := w.claim(ch, base)
	if err != nil {
		if !errors.Is(err, errSpareUnfit) {
			a.logf("claim a spare worker process: %v", err)
		}
		w.dispose()
		return nil, wire.SpawnReply{}
	}
	return w, rep
}

// wake gives every thread of the spare w the scheduling policy of the
// thread it was started from, which is the claiming thread's too (see
// inherited). It runs on a thread of its own: the claiming thread may have
// given up the privilege to change another process's policy. Threads the
// spare starts later inherit the policy from these; the spare checks once
// more when the claim arrives (see runSpare).
func (w *forkWorker) wake() error {
	done := make(chan error, 1)
	go func() { done <- setProcessSched(w.proc.Pid, w.sched[0], w.sched[1]) }()
	if err := <-done; err != nil {
		return fmt.Errorf("spare worker %d: restore its priority: %w", w.proc.Pid, err)
	}
	return nil
}

// claim sends the spare w everything it needs to become the worker of ch
// that a fork of the calling thread would have been, and waits until it is
// ready. It runs on the parent identity's thread: the credentials, the
// descriptor table, the working directory and the umask it sends are that
// thread's. base is what the spare inherited when it started; if the
// calling thread differs in any of that, the claim fails with
// errSpareUnfit.
func (w *forkWorker) claim(ch uint32, base inherited) (wire.SpawnReply, error) {
	now, umask, err := threadInherited()
	if err != nil {
		return wire.SpawnReply{}, err
	}
	if now != base {
		return wire.SpawnReply{}, errSpareUnfit
	}
	c, err := threadCreds()
	if err != nil {
		return wire.SpawnReply{}, err
	}
	fds, err := inheritedFDs()
	if err != nil {
		return wire.SpawnReply{}, err
	}
	if 1+len(fds) > maxClaimFDs {
		return wire.SpawnReply{}, fmt.Errorf("%w: more than %d descriptors to pass", errSpareUnfit, maxClaimFDs-1)
	}
	// The working directory travels as a descriptor, which also works
	// where a path would not (deleted, or out of the worker's reach).
	cwd, err := unix.Open(".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return wire.SpawnReply{}, fmt.Errorf("working directory: %w", err)
	}
	defer unix.Close(cwd)
	if err := w.wake(); err != nil {
		return wire.SpawnReply{}, err
	}
	cl := newClaim(ch, c, umask, os.Environ(), fds)
	cl.Sched = w.sched
	msg, err := cl.encode()
	if err != nil {
		return wire.SpawnReply{}, err
	}
	uc, ok := w.sock.(*net.UnixConn)
	if !ok {
		return wire.SpawnReply{}, fmt.Errorf("worker socket is a %T", w.sock)
	}
	w.ch.Store(ch)
	n, _, err := uc.WriteMsgUnix(msg, unix.UnixRights(append([]int{cwd}, fds...)...), nil)
	if err == nil && n < len(msg) {
		_, err = uc.Write(msg[n:])
	}
	if err != nil {
		return wire.SpawnReply{}, fmt.Errorf("send claim: %w", err)
	}
	return w.waitReady(spawnWait)
}
