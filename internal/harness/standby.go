package harness

import (
	"context"
	"strings"
	"sync"

	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/pool"
)

// A run that resumes a template fixture again and again keeps one QEMU
// ready for its next resume (machine.Standby): started when a file
// resumes the fixture, claimed by the next file that does, and started
// again. It runs while the files do, so the next resume skips QEMU's own
// start and the loading of the state. It is work ahead of need, so it
// never holds up a VM: it takes from the pool only what is free with no
// one waiting.

// standbyMiB is what the pool holds for a standby: an idle QEMU whose
// guest has not run holds little of its own (its device state, QEMU's
// heap), measured at 20-30 MiB here.
const standbyMiB = 48

// standbys are a run's standby QEMUs, by the key of the fixture VM they
// resume (entry key/VM index).
type standbys struct {
	off  bool
	pool *pool.Pool
	run  context.Context

	mu        sync.Mutex
	ready     map[string]*standby
	preparing map[string]bool
	closed    bool
	starting  sync.WaitGroup
}

type standby struct {
	s       *machine.Standby
	release func() // its pool grant
}

// take returns the standby for key, nil if none is ready. Its pool grant
// ends here: the VM that claims it holds its own.
func (sb *standbys) take(key string) *machine.Standby {
	sb.mu.Lock()
	st := sb.ready[key]
	delete(sb.ready, key)
	sb.mu.Unlock()
	if st == nil {
		return nil
	}
	st.release()
	return st.s
}

// prepare starts a standby for key in the background unless one is ready
// or on its way. Failures go to log: a resume without a standby only
// takes longer.
func (sb *standbys) prepare(key string, saved machine.Saved, shape machine.Shape, logf func(string, ...any)) {
	if sb.off {
		return
	}
	sb.mu.Lock()
	if sb.closed || sb.ready[key] != nil || sb.preparing[key] {
		sb.mu.Unlock()
		return
	}
	release := func() {}
	if sb.pool != nil {
		var ok bool
		if release, ok = sb.pool.TryAcquire(standbyMiB, 0); !ok {
			sb.mu.Unlock()
			return
		}
	}
	if sb.preparing == nil {
		sb.preparing, sb.ready = map[string]bool{}, map[string]*standby{}
	}
	sb.preparing[key] = true
	defer sb.mu.Unlock()
	// Added under the lock, so that close, which sets closed under it,
	// waits for this one.
	sb.starting.Go(func() {
		ctx, cancel := context.WithTimeout(sb.run, machine.ResumeTimeout)
		defer cancel()
		s, err := machine.PrepareResume(ctx, saved, shape)
		sb.mu.Lock()
		defer sb.mu.Unlock()
		delete(sb.preparing, key)
		switch {
		case err != nil:
			release()
			if sb.run.Err() == nil {
				logf("[provium] no standby QEMU for the next resume: %v", err)
			}
		case sb.closed:
			release()
			s.Close()
		default:
			sb.ready[key] = &standby{s: s, release: release}
		}
	})
}

// drop closes the standbys of a fixture entry, which is being rebuilt.
func (sb *standbys) drop(entryKey string) {
	sb.mu.Lock()
	var gone []*standby
	for key, st := range sb.ready {
		if strings.HasPrefix(key, entryKey+"/") {
			gone = append(gone, st)
			delete(sb.ready, key)
		}
	}
	sb.mu.Unlock()
	for _, st := range gone {
		st.s.Close()
		st.release()
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
	for _, st := range ready {
		st.s.Close()
		st.release()
	}
	sb.starting.Wait()
}
