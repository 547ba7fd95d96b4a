package harness

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/pool"
)

// A VM resumed from a memory template shares the fixture's clean pages
// with every other VM resumed from it; what it costs the host on its own
// is what it writes. The pool holds an estimate of that for each such VM,
// learned from the VMs of the same fixture before it and corrected as the
// VM itself is measured.

// measureEvery is how often a template-resumed VM's QEMU is measured.
const measureEvery = time.Second

// sharedMemory is what the run has measured of VMs resumed from each
// template: the most private memory one held, in MiB, by entry and VM.
type sharedMemory struct {
	mu   sync.Mutex
	most map[string]int
}

// estimate is what a VM resumed from template key is expected to hold
// privately: a quarter more than the most one held so far, and its
// whole RAM while none has been measured.
func (s *sharedMemory) estimate(key string, fullMiB int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	most, ok := s.most[key]
	if !ok {
		return fullMiB
	}
	return min(charge(most), fullMiB)
}

// charge is what the pool holds for a VM measured at mib: a margin for
// what it writes before the next measurement.
func charge(mib int) int { return mib + mib/4 + 16 }

func (s *sharedMemory) learn(key string, mib int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.most == nil {
		s.most = map[string]int{}
	}
	s.most[key] = max(s.most[key], mib)
}

// acquireShared reserves a template resume's estimate in the pool.
func (v *hostVM) acquireShared(ctx context.Context, key string, shape machine.Shape) (*pool.Measured, error) {
	p := v.host.h.cfg.Pool
	if p == nil {
		return nil, nil
	}
	est := v.host.h.shared.estimate(key, shape.MemoryMiB)
	m, err := p.AcquireMeasured(ctx, est, shape.MemoryMiB, shape.CPUs)
	if err != nil {
		return nil, err
	}
	v.setRelease(m.Release)
	v.host.logf("[provium] resuming a template: the pool holds %d MiB of %d for it until it is measured", est, shape.MemoryMiB)
	return m, nil
}

// measureShared keeps m at what vm's QEMU holds privately, and teaches
// the run what VMs of key hold, until the VM stops. A VM that cannot be
// measured is held at its whole RAM: an estimate nobody checks is a
// guess.
func (v *hostVM) measureShared(key string, m *pool.Measured, fullMiB int) {
	if m == nil {
		return
	}
	go func() {
		t := time.NewTicker(measureEvery)
		defer t.Stop()
		first := true
		for range t.C {
			if v.State() != machine.StateRunning {
				return
			}
			mib, err := pool.PrivateDirtyMiB(v.QEMUPid())
			if err != nil {
				if v.State() == machine.StateRunning {
					v.host.logf("[provium] %s: measuring its memory: %v; counting it at its whole RAM", v.Name(), err)
					m.Set(fullMiB)
				}
				return
			}
			v.host.h.shared.learn(key, mib)
			m.Set(min(charge(mib), fullMiB))
			if first {
				v.host.logf("[provium] %s holds %d MiB of its own; the pool holds %d MiB for it", v.Name(), mib, min(charge(mib), fullMiB))
				first = false
			}
		}
	}()
}

// logf notes a line in the file's log, if it has one.
func (fh *fileHost) logf(format string, args ...any) {
	if fh.log != nil {
		fmt.Fprintf(fh.log, format+"\n", args...)
	}
}
