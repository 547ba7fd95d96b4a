package agent

import (
	"errors"
	"sync"
)

// maxQueued bounds the requests waiting for one identity. The host sends
// one request at a time per identity in practice; a host that floods a
// channel gets errors rather than exhausting guest memory.
const maxQueued = 256

var (
	errQueueFull = errors.New("too many requests queued")
	errStopped   = errors.New("identity stopped")
)

// mailbox is the queue in front of an identity or a fork worker. put never
// blocks, so the receive loop that feeds every channel never waits for one
// busy identity.
type mailbox struct {
	mu     sync.Mutex
	queue  []request
	closed bool
	wake   chan struct{}
}

func newMailbox() *mailbox { return &mailbox{wake: make(chan struct{}, 1)} }

func (mb *mailbox) put(r request) error {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.closed {
		return errStopped
	}
	if len(mb.queue) >= maxQueued {
		return errQueueFull
	}
	mb.queue = append(mb.queue, r)
	mb.signal()
	return nil
}

func (mb *mailbox) signal() {
	select {
	case mb.wake <- struct{}{}:
	default:
	}
}

// get waits for the next request; ok is false once the mailbox is closed.
// There is one reader per mailbox.
func (mb *mailbox) get() (r request, ok bool) {
	for {
		mb.mu.Lock()
		if mb.closed {
			mb.mu.Unlock()
			return request{}, false
		}
		if len(mb.queue) > 0 {
			r = mb.queue[0]
			mb.queue[0] = request{}
			mb.queue = mb.queue[1:]
			mb.mu.Unlock()
			return r, true
		}
		mb.mu.Unlock()
		<-mb.wake
	}
}

// close stops the mailbox and returns the requests nobody will serve, so the
// caller can answer them.
func (mb *mailbox) close() []request {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.closed {
		return nil
	}
	mb.closed = true
	q := mb.queue
	mb.queue = nil
	mb.signal()
	return q
}
