package agent

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire"
)

// process is what an identity needs from the process it runs in: the
// main agent, or in a fork worker process the socket to the main agent.
type process interface {
	// reply sends the answer to a request of session on ch.
	reply(session uint64, ch uint32, m *wire.Message)
	// live reports whether session is still current; requests of an
	// ended session are skipped.
	live(session uint64) bool
	// spawn starts a worker of parent. It runs on parent's thread.
	spawn(parent *identity, session uint64, s wire.Spawn) (wire.SpawnReply, error)
}

// identity is one credential domain: the agent's own (the main channel) or a
// worker. All of its operations run on one goroutine locked to one thread;
// see the package documentation for why.
type identity struct {
	ch   uint32
	proc process
	mb   *mailbox
	done chan struct{} // closed when the identity's goroutine has returned
	jobs jobTable

	mu       sync.Mutex
	commands map[int]bool // process groups of exec commands in flight
	exited   string       // set when a worker ended itself with exit(2): why it is gone
	status   int          // the exit status it asked for
}

func newIdentity(ch uint32, p process) *identity {
	return &identity{
		ch:       ch,
		proc:     p,
		mb:       newMailbox(),
		done:     make(chan struct{}),
		commands: map[int]bool{},
	}
}

// start runs the identity on a new goroutine with a thread of its own and
// returns that thread's id. setup, if not nil, runs first on that thread (a
// thread worker takes on its parent's credentials there); its error stops
// the identity before it serves anything.
func (id *identity) start(setup func() error) (tid int, err error) {
	type started struct {
		tid int
		err error
	}
	ready := make(chan started, 1)
	go func() {
		// Never unlocked: when this goroutine returns, Go ends the
		// thread, and with it any credentials changed on it.
		runtime.LockOSThread()
		defer close(id.done)
		if setup != nil {
			if err := setup(); err != nil {
				ready <- started{err: err}
				return
			}
		}
		ready <- started{tid: unix.Gettid()}
		id.serve()
	}()
	s := <-ready
	return s.tid, s.err
}

func (id *identity) serve() {
	for {
		r, ok := id.mb.get()
		if !ok {
			return
		}
		if !id.proc.live(r.session) {
			continue // the host that asked is gone
		}
		if r.msg.Op == wire.OpClose {
			if id.ch == wire.MainChannel {
				id.proc.reply(r.session, id.ch, errorReply(r.msg.ID, fmt.Errorf("close: channel %d is the VM's own identity, not a worker", id.ch)))
				continue
			}
			id.kill()
			reply, _ := wire.Reply(r.msg.ID, nil)
			id.proc.reply(r.session, id.ch, reply)
			return
		}
		id.proc.reply(r.session, id.ch, id.handle(r))
		if id.exitReason() != "" {
			return // its thread goes with it: the goroutine is locked to it
		}
	}
}

// exit ends a worker that made the exit system call. Made for real, the
// call would end the identity's thread under the Go runtime's feet and
// leave the worker answering nothing; instead the identity stops (queued
// requests fail, its commands and jobs are killed) and its goroutine
// returns, which ends the locked thread. A worker process then exits with
// status. It returns the reply to the exit call: the worker's news.
func (id *identity) exit(status int) error {
	if id.ch == wire.MainChannel {
		return fmt.Errorf("syscall %d (exit) on channel %d would end the VM's own agent identity; make it in a worker", unix.SYS_EXIT, id.ch)
	}
	reason := fmt.Sprintf("worker (channel %d) exited: exit status %d", id.ch, status)
	id.mu.Lock()
	id.exited, id.status = reason, status
	id.mu.Unlock()
	id.kill()
	return errors.New(reason)
}

// exitReason is why the identity ended itself, or "".
func (id *identity) exitReason() string {
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.exited
}

// exitStatus is the status a worker that ended itself asked for.
func (id *identity) exitStatus() int {
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.status
}

// deliver queues a request for the identity's thread.
func (id *identity) deliver(r request) error {
	if err := id.mb.put(r); err != nil {
		if reason := id.exitReason(); reason != "" {
			return errors.New(reason)
		}
		return fmt.Errorf("channel %d: %w", id.ch, err)
	}
	return nil
}

// kill stops the identity after the operation it is running: queued
// requests are answered with an error, its commands and jobs are killed.
// It does not wait for the goroutine; see done.
func (id *identity) kill() {
	for _, r := range id.mb.close() {
		id.proc.reply(r.session, id.ch, errorReply(r.msg.ID, fmt.Errorf("%v: worker (channel %d) was stopped", r.msg.Op, id.ch)))
	}
	id.killCommands()
	id.jobs.killAll(0)
}

// As a thread worker, an identity is its own worker handle.
func (id *identity) close(r request) {
	if err := id.mb.put(r); err != nil {
		// A full queue must not keep a closed worker alive.
		id.kill()
		reply, _ := wire.Reply(r.msg.ID, nil)
		id.proc.reply(r.session, id.ch, reply)
	}
}

func (id *identity) gone() <-chan struct{} { return id.done }

// op serves one request on the identity's thread.
type op func(id *identity, r request) (*wire.Message, error)

var ops = map[wire.Op]op{
	wire.OpPing:       (*identity).ping,
	wire.OpExec:       (*identity).exec,
	wire.OpReadFile:   (*identity).readFile,
	wire.OpWriteFile:  (*identity).writeFile,
	wire.OpSyscall:    (*identity).syscall,
	wire.OpBackground: (*identity).background,
	wire.OpJobWait:    (*identity).jobWait,
	wire.OpJobKill:    (*identity).jobKill,
	wire.OpSpawn:      (*identity).spawn,
	wire.OpDmesg:      (*identity).dmesg,
	wire.OpMountVFS:   (*identity).mountVFS,
	wire.OpPtyOpen:    (*identity).ptyOpen,
}

// handle runs one operation and returns its reply. A panic in an operation
// is a bug or a request nobody thought of; it fails that request only.
func (id *identity) handle(r request) (reply *wire.Message) {
	m := r.msg
	defer func() {
		if p := recover(); p != nil {
			reply = errorReply(m.ID, fmt.Errorf("%v: internal error: %v", m.Op, p))
		}
	}()
	fn, ok := ops[m.Op]
	if !ok {
		return errorReply(m.ID, fmt.Errorf("%v is not an operation of an identity channel", m.Op))
	}
	reply, err := fn(id, r)
	if err != nil {
		return errorReply(m.ID, err)
	}
	return reply
}

func (id *identity) ping(r request) (*wire.Message, error) {
	return wire.Reply(r.msg.ID, nil)
}

func (id *identity) spawn(r request) (*wire.Message, error) {
	var s wire.Spawn
	if err := r.msg.Decode(&s); err != nil {
		return nil, err
	}
	res, err := id.proc.spawn(id, r.session, s)
	if err != nil {
		return nil, err
	}
	return wire.Reply(r.msg.ID, res)
}
