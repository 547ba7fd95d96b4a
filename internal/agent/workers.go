package agent

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/provium/provium/internal/wire"
)

// spawnWait bounds how long a spawn waits for a worker process to be ready.
const spawnWait = 10 * time.Second

// worker is a spawned identity as the receive loop sees it: a thread worker
// (*identity) or a worker process (*forkWorker).
type worker interface {
	// deliver queues a request for the worker.
	deliver(r request) error
	// close answers an OpClose and ends the worker.
	close(r request)
	// kill ends the worker without waiting; gone is closed when it is.
	kill()
	gone() <-chan struct{}
}

// toWorker routes a request on a worker channel.
func (a *Agent) toWorker(ch uint32, r request) {
	a.mu.Lock()
	w, ok := a.workers[ch]
	reason := a.dead[ch]
	if ok && r.msg.Op == wire.OpClose {
		// Gone for every later request, even before it has ended.
		delete(a.workers, ch)
	}
	a.mu.Unlock()
	if !ok && reason != "" && r.msg.Op == wire.OpClose {
		// The worker ended on its own (killed, exited): closing it is
		// not an error, it is gone either way.
		reply, _ := wire.Reply(r.msg.ID, nil)
		a.reply(r.session, ch, reply)
		return
	}
	if !ok {
		if reason == "" {
			reason = fmt.Sprintf("no such worker (channel %d)", ch)
		}
		a.reply(r.session, ch, errorReply(r.msg.ID, errors.New(reason)))
		return
	}
	if r.msg.Op == wire.OpClose {
		w.close(r)
		return
	}
	if err := w.deliver(r); err != nil {
		a.reply(r.session, ch, errorReply(r.msg.ID, err))
	}
}

// spawn starts a worker of parent; it runs on parent's thread, whose
// credentials the worker starts with.
func (a *Agent) spawn(parent *identity, session uint64, s wire.Spawn) (wire.SpawnReply, error) {
	if s.Channel <= wire.MainChannel {
		return wire.SpawnReply{}, fmt.Errorf("spawn: channel %d is reserved", s.Channel)
	}
	a.mu.Lock()
	_, busy := a.workers[s.Channel]
	a.mu.Unlock()
	if busy {
		return wire.SpawnReply{}, fmt.Errorf("spawn: channel %d already has a worker", s.Channel)
	}
	if s.Thread {
		return a.spawnThread(session, s.Channel)
	}
	return a.spawnProcess(session, s.Channel)
}

// spawnThread starts a worker on a new thread of this process with the
// calling thread's credentials, copied with raw system calls: the thread
// the Go scheduler hands the new goroutine has the agent's original ones.
func (a *Agent) spawnThread(session uint64, ch uint32) (wire.SpawnReply, error) {
	c, err := threadCreds()
	if err != nil {
		return wire.SpawnReply{}, fmt.Errorf("spawn thread worker: %w", err)
	}
	id := newIdentity(ch, a)
	tid, err := id.start(c.apply)
	if err != nil {
		return wire.SpawnReply{}, fmt.Errorf("spawn thread worker: take on the parent's credentials: %w", err)
	}
	if err := a.register(session, ch, id); err != nil {
		id.kill()
		return wire.SpawnReply{}, err
	}
	go func() {
		// A thread worker that ended itself (exit(2)) is gone; one that
		// was closed or killed is no longer registered by then.
		<-id.done
		if reason := id.exitReason(); reason != "" {
			a.workerGone(ch, id, reason)
		}
	}()
	return wire.SpawnReply{PID: os.Getpid(), TID: tid}, nil
}

// spawnProcess starts a worker process from the calling thread: it claims
// the spare if it can, else it starts a new process. Either way a new spare
// starts in the background a moment later (see spare.go).
func (a *Agent) spawnProcess(session uint64, ch uint32) (wire.SpawnReply, error) {
	a.spawnBegins()
	defer a.spawnEnded()
	w, rep := a.claimSpare(ch)
	if w == nil {
		var err error
		if w, err = startForkWorker(a, ch); err != nil {
			return wire.SpawnReply{}, fmt.Errorf("spawn worker process: %w", err)
		}
		if rep, err = w.waitReady(spawnWait); err != nil {
			w.kill()
			return wire.SpawnReply{}, fmt.Errorf("spawn worker process: %w", err)
		}
	}
	if err := a.register(session, ch, w); err != nil {
		w.kill()
		return wire.SpawnReply{}, err
	}
	return rep, nil
}

// register makes w the worker of ch, unless the session that asked for it
// ended meanwhile.
func (a *Agent) register(session uint64, ch uint32, w worker) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.live(session) {
		return errors.New("spawn: the session ended")
	}
	if _, busy := a.workers[ch]; busy {
		return fmt.Errorf("spawn: channel %d already has a worker", ch)
	}
	a.workers[ch] = w
	delete(a.dead, ch)
	return nil
}

// workerGone records that w ended on its own. A worker that was closed or
// killed is no longer registered and leaves no trace.
func (a *Agent) workerGone(ch uint32, w worker, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur, ok := a.workers[ch]; ok && cur == w {
		delete(a.workers, ch)
		a.dead[ch] = reason
		a.logf("%s", reason)
	}
}
