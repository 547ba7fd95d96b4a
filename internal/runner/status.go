package runner

import (
	"fmt"
	"time"
)

// statusInterval is how often the live status line is redrawn when nothing
// else happens (elapsed time, pool use).
const statusInterval = 250 * time.Millisecond

// update changes the counters and redraws the status line.
func (r *run) update(f func()) {
	r.mu.Lock()
	f()
	r.mu.Unlock()
	r.drawStatus()
}

// drawStatus shows files done/running/queued, elapsed time and the pool.
func (r *run) drawStatus() {
	c := r.cfg.Console
	if c == nil || !c.Live() {
		return
	}
	r.mu.Lock()
	line := fmt.Sprintf("[%s] %d/%d done, %d running, %d queued",
		time.Since(r.start).Round(time.Second), r.settled, len(r.cfg.Files), r.running, r.queued)
	r.mu.Unlock()
	if r.cfg.Status != nil {
		line += " | " + r.cfg.Status()
	}
	c.Status(line)
}

// showStatus keeps the status line fresh until the returned stop is called.
func (r *run) showStatus() (stop func()) {
	if c := r.cfg.Console; c == nil || !c.Live() {
		return func() {}
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(statusInterval)
		defer t.Stop()
		for {
			r.drawStatus()
			select {
			case <-t.C:
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}
