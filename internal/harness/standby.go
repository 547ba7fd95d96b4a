package harness

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/pool"
)

// A run that resumes a template fixture again and again keeps QEMUs
// ready for its next resumes (machine.Standby), as many as files run at
// once: started when a file resumes the fixture, claimed by the next
// files that do, and started again. They start while the files run, so
// that a resume skips QEMU's own start and the loading of the state. It
// is work ahead of need, so it never holds up a VM: a standby takes from
// the pool only what is free with no one waiting, and runs at the lowest
// CPU priority until it is claimed.

// standbyMiB is what the pool holds for a standby: an idle QEMU whose
// guest has not run holds little of its own (its device state, QEMU's
// heap), measured at 20-30 MiB here.
const standbyMiB = 48

// standbyTimeout bounds a standby's start: at the lowest CPU priority, it
// waits while the files use every CPU.
const standbyTimeout = 2 * time.Minute

// standbys are a run's standby QEMUs, by the key of the fixture VM they
// resume (entry key/VM index).
type standbys struct {
	per  int // standbys for each key; 0: none
	pool *pool.Pool
	run  context.Context

	mu        sync.Mutex
	ready     map[string][]*standby
	preparing map[string]int
	closed    bool
	starting  sync.WaitGroup
}

type standby struct {
	key     string
	s       *machine.Standby // nil while it starts
	release func()           // its pool grant
	revoked bool             // under standbys.mu: the pool asked it back
}

// end closes a standby that no resume will claim, and gives back its
// share of the pool.
func (st *standby) end() {
	st.s.Close()
	st.release()
}

// take returns a standby for key, nil if none is ready. Its pool grant
// ends here: the VM that claims it holds its own.
func (sb *standbys) take(key string) *machine.Standby {
	sb.mu.Lock()
	q := sb.ready[key]
	if len(q) == 0 {
		sb.mu.Unlock()
		return nil
	}
	st := q[0]
	sb.ready[key] = q[1:]
	sb.mu.Unlock()
	st.release()
	return st.s
}

// prepare starts standbys for key in the background, as many as are
// missing of those ready or on their way. Failures go to logf: a resume
// without a standby only takes longer.
func (sb *standbys) prepare(key string, saved machine.Saved, shape machine.Shape, logf func(string, ...any)) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	for !sb.closed && len(sb.ready[key])+sb.preparing[key] < sb.per {
		st := &standby{key: key, release: func() {}}
		if sb.pool != nil {
			var ok bool
			if st.release, ok = sb.pool.TryAcquire(standbyMiB, 0, func() { sb.revoke(st) }); !ok {
				return
			}
		}
		if sb.preparing == nil {
			sb.preparing, sb.ready = map[string]int{}, map[string][]*standby{}
		}
		sb.preparing[key]++
		sb.start(st, saved, shape, logf)
	}
}

// start prepares standby st. Called with sb.mu held, so that close,
// which sets closed under it, waits for this one.
func (sb *standbys) start(st *standby, saved machine.Saved, shape machine.Shape, logf func(string, ...any)) {
	sb.starting.Go(func() {
		ctx, cancel := context.WithTimeout(sb.run, standbyTimeout)
		defer cancel()
		s, err := machine.PrepareResume(ctx, saved, shape)
		sb.mu.Lock()
		defer sb.mu.Unlock()
		sb.preparing[st.key]--
		switch {
		case err != nil:
			st.release()
			if sb.run.Err() == nil {
				logf("[provium] no standby QEMU for the next resume: %v", err)
			}
		case sb.closed || st.revoked:
			st.s = s
			st.end()
		default:
			st.s = s
			sb.ready[st.key] = append(sb.ready[st.key], st)
			logf("[provium] QEMU %d is ready for the next resume", s.Pid())
		}
	})
}

// revoke ends standby st, whose memory a VM waits for in the pool.
func (sb *standbys) revoke(st *standby) {
	sb.mu.Lock()
	st.revoked = true
	q := sb.ready[st.key]
	i := slices.Index(q, st)
	if i >= 0 {
		sb.ready[st.key] = slices.Delete(q, i, i+1)
	}
	sb.mu.Unlock()
	if i >= 0 {
		st.end()
	}
	// Still starting, it ends when started; taken, its grant has ended.
}

// drop closes the standbys of a fixture entry, which is being rebuilt.
func (sb *standbys) drop(entryKey string) {
	sb.mu.Lock()
	var gone []*standby
	for key, q := range sb.ready {
		if strings.HasPrefix(key, entryKey+"/") {
			gone = append(gone, q...)
			delete(sb.ready, key)
		}
	}
	sb.mu.Unlock()
	for _, st := range gone {
		st.end()
	}
}

// close ends every standby, waiting for those still starting (the run's
// end cancels them).
func (sb *standbys) close() {
	sb.mu.Lock()
	sb.closed = true
	ready := sb.ready
	sb.ready = nil
	sb.mu.Unlock()
	for _, q := range ready {
		for _, st := range q {
			st.end()
		}
	}
	sb.starting.Wait()
}
