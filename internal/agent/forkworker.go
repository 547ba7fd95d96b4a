package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire"
	"github.com/provium/provium/internal/wire/boot"
)

// closeGrace is how long a worker process has to exit once its socket is
// closed before it is killed.
const closeGrace = time.Second

// forkWorker is the main agent's end of a worker process. The worker serves
// its identity over a socket pair; the agent relays the host's requests on
// the worker's channel to it and its replies back, stamped with the current
// session.
type forkWorker struct {
	a      *Agent
	ch     atomic.Uint32 // 0 while the process is a spare nobody claimed
	proc   *os.Process
	sock   net.Conn
	conn   *wire.Conn
	mb     *mailbox
	ready  chan wire.SpawnReply // the worker's first message
	exited chan struct{}        // closed once the process was reaped
	status string               // how it exited; set before exited is closed
	end    chan struct{}        // closed once the worker is cleaned up
	sched  [2]int               // a spare's policy and priority to take on when claimed

	mu       sync.Mutex
	inflight map[uint32]uint64 // ids sent to the worker and not answered, with their session
	reason   string            // why the worker is gone
	refused  string            // the error the worker sent instead of its ready signal
}

// startForkWorker starts a worker process from the calling thread, so that
// it inherits that thread's credentials (clone copies the caller's, not the
// process's). The worker also gets the descriptors a test opened, under the
// same numbers — every descriptor without close-on-exec; the agent's own all
// have it — and its end of the socket pair at the first number above them.
//
// Channel 0 starts a spare (see spare.go), which gets only 0, 1 and 2: the
// test's descriptors come with the claim, and a spare must not hold any in
// the meantime (a pipe's write end would keep its reader from seeing EOF).
func startForkWorker(a *Agent, ch uint32) (*forkWorker, error) {
	inherit, err := inheritedFDs()
	if err != nil {
		return nil, err
	}
	creds, err := workerCreds(a, ch)
	if err != nil {
		return nil, err
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	childFD := inherit[len(inherit)-1] + 1
	// Files[i] becomes descriptor i of the worker; -1 closes it.
	files := make([]uintptr, childFD+1)
	for i := range files {
		files[i] = ^uintptr(0)
	}
	for _, fd := range inherit {
		if ch != 0 || fd <= 2 {
			files[fd] = uintptr(fd)
		}
	}
	files[childFD] = uintptr(pair[1])
	chText := strconv.FormatUint(uint64(ch), 10)
	if ch == 0 {
		chText = spareChannel
	}
	env := append(os.Environ(), envWorkerFD+"="+strconv.Itoa(childFD), envWorkerChannel+"="+chText)
	if creds != "" {
		env = append(env, envWorkerCreds+"="+creds)
	}
	pid, err := syscall.ForkExec(a.exe, []string{boot.WorkerName}, &syscall.ProcAttr{Env: env, Files: files})
	unix.Close(pair[1])
	if err != nil {
		unix.Close(pair[0])
		return nil, fmt.Errorf("start %s: %w", a.exe, err)
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		unix.Close(pair[0])
		unix.Kill(pid, unix.SIGKILL)
		return nil, fmt.Errorf("worker %d: %w", pid, err)
	}
	// A net.Conn rather than an *os.File: closing it wakes a blocked Read.
	f := os.NewFile(uintptr(pair[0]), "provium-worker-socket")
	sock, err := net.FileConn(f)
	f.Close()
	if err != nil {
		proc.Kill()
		proc.Wait()
		return nil, fmt.Errorf("worker socket: %w", err)
	}
	w := &forkWorker{
		a:        a,
		proc:     proc,
		sock:     sock,
		conn:     wire.NewConn(sock, 0),
		mb:       newMailbox(),
		ready:    make(chan wire.SpawnReply, 1),
		exited:   make(chan struct{}),
		end:      make(chan struct{}),
		inflight: map[uint32]uint64{},
	}
	w.ch.Store(ch)
	go w.reap()
	go w.receive()
	go w.forward()
	return w, nil
}

// workerCreds returns what a worker for ch needs in envWorkerCreds: the
// calling thread's credentials, which the exec changes unless they are the
// agent's own (root's, with every capability); "" if there is nothing to
// restore. A spare (ch 0) gets its credentials with the claim.
func workerCreds(a *Agent, ch uint32) (string, error) {
	if ch == 0 {
		return "", nil
	}
	c, err := threadCreds()
	if err != nil || c.equal(a.startCreds) {
		return "", err
	}
	b, err := json.Marshal(newClaim(ch, c, 0, nil, nil))
	return string(b), err
}

// inheritedFDs lists 0, 1, 2 and every descriptor without close-on-exec,
// in increasing order. It reads the calling thread's table, which is the
// one a fork from this thread copies and a sendmsg from it passes from
// (different from the process's only after an unshare(CLONE_FILES)).
// Plain system calls, not os.Open: in a spare (see runSpare) that would
// start the Go runtime's poller, whose descriptors would then sit at low
// numbers a claim may want.
func inheritedFDs() ([]int, error) {
	d, err := unix.Open("/proc/thread-self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("list descriptors: %w", err)
	}
	var names []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.ReadDirent(d, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(d)
			return nil, fmt.Errorf("list descriptors: %w", err)
		}
		if n == 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	unix.Close(d)
	fds := []int{0, 1, 2}
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd <= 2 {
			continue
		}
		// Fails for the directory's own descriptor, closed by now.
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err == nil && flags&unix.FD_CLOEXEC == 0 {
			fds = append(fds, fd)
		}
	}
	slices.Sort(fds)
	return fds, nil
}

func (w *forkWorker) waitReady(d time.Duration) (wire.SpawnReply, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case rep := <-w.ready:
		return rep, nil
	case <-w.end:
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.refused != "" {
			return wire.SpawnReply{}, errors.New(w.refused)
		}
		return wire.SpawnReply{}, fmt.Errorf("worker exited before it was ready: %s", w.status)
	case <-t.C:
		return wire.SpawnReply{}, fmt.Errorf("worker not ready after %v", d)
	}
}

func (w *forkWorker) reap() {
	st, err := w.proc.Wait()
	if err != nil {
		w.status = err.Error()
	} else {
		w.status = st.String()
	}
	close(w.exited)
	w.sock.Close()
}

// receive relays the worker's messages to the host. The first one must be
// its ready signal: an OpReply with ID 0 carrying a SpawnReply, or an
// OpError with ID 0 saying why it cannot serve.
func (w *forkWorker) receive() {
	defer w.finish()
	first := true
	for {
		env, err := w.conn.Receive()
		if err != nil {
			if isProtocolError(err) {
				w.a.logf("worker (channel %d): %v", w.ch.Load(), err)
			}
			return
		}
		m := env.Msg
		if first {
			first = false
			var rep wire.SpawnReply
			if m.Op == wire.OpError && m.ID == 0 {
				var e wire.Error
				m.Decode(&e)
				w.mu.Lock()
				w.refused = e.Message
				w.mu.Unlock()
				return
			}
			if m.Op != wire.OpReply || m.ID != 0 || m.Decode(&rep) != nil {
				w.a.logf("worker (channel %d) sent %v %d instead of its ready signal", w.ch.Load(), m.Op, m.ID)
				return
			}
			w.ready <- rep
			continue
		}
		if session, ok := w.answered(m.ID); ok {
			w.a.reply(session, w.ch.Load(), m)
		}
	}
}

// answered removes id from the requests in flight and returns its session.
func (w *forkWorker) answered(id uint32) (uint64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	session, ok := w.inflight[id]
	delete(w.inflight, id)
	return session, ok
}

// forward sends queued requests to the worker. It has a goroutine of its
// own so that a worker busy with a long operation (and a full socket
// buffer) never stalls the agent's receive loop.
func (w *forkWorker) forward() {
	for {
		r, ok := w.mb.get()
		if !ok {
			return
		}
		w.mu.Lock()
		w.inflight[r.msg.ID] = r.session
		w.mu.Unlock()
		if err := w.conn.Send(w.ch.Load(), r.msg); err != nil {
			// The worker is going; finish answers what is left.
			w.sock.Close()
			return
		}
	}
}

// finish runs once the worker's socket is done: it makes sure the process
// is gone and reaped, records why, and answers every request the worker
// will never answer.
func (w *forkWorker) finish() {
	w.sock.Close()
	t := time.NewTimer(closeGrace)
	select {
	case <-w.exited:
	case <-t.C:
		w.proc.Kill()
		<-w.exited
	}
	t.Stop()
	ch := w.ch.Load()
	reason := fmt.Sprintf("worker (channel %d) exited: %s", ch, w.status)
	w.a.workerGone(ch, w, reason)
	w.mu.Lock()
	w.reason = reason
	inflight := w.inflight
	w.inflight = nil
	w.mu.Unlock()
	for _, r := range w.mb.close() {
		w.a.reply(r.session, ch, errorReply(r.msg.ID, errors.New(reason)))
	}
	for id, session := range inflight {
		w.a.reply(session, ch, errorReply(id, errors.New(reason)))
	}
	close(w.end)
}

func (w *forkWorker) deliver(r request) error {
	err := w.mb.put(r)
	if errors.Is(err, errStopped) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.reason != "" {
			return errors.New(w.reason)
		}
		return fmt.Errorf("worker (channel %d) exited", w.ch.Load())
	}
	if err != nil {
		return fmt.Errorf("channel %d: %w", w.ch.Load(), err)
	}
	return nil
}

// close answers an OpClose, then closes the socket: the worker kills its
// jobs and exits, and finish kills it if it has not within closeGrace.
func (w *forkWorker) close(r request) {
	reply, _ := wire.Reply(r.msg.ID, nil)
	w.a.reply(r.session, w.ch.Load(), reply)
	w.kill()
}

func (w *forkWorker) kill() { w.sock.Close() }

func (w *forkWorker) gone() <-chan struct{} { return w.end }
