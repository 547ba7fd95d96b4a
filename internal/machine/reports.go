package machine

import (
	"context"
	"sync"
	"time"

	"github.com/provium/provium/internal/kernelreport"
	"github.com/provium/provium/internal/result"
	"github.com/provium/provium/internal/symbolize"
)

// Quiet periods on a VM's console.
const (
	// reportQuiet ends a kernel report that has no end marker of its own
	// (an RCU stall, a report cut short) once the console has said
	// nothing for this long.
	reportQuiet = 300 * time.Millisecond
	// DrainQuiet is how long the console must say nothing before a VM is
	// taken to have printed what it had: a report printed just before a
	// sub-test ends is then seen and counted in it. The serial console
	// and the agent's port are different paths, so a reply can arrive
	// before the console lines the kernel printed before it.
	DrainQuiet = 30 * time.Millisecond
	// DrainMax bounds the wait for a console that keeps talking.
	DrainMax = 2 * time.Second
)

// reporter finds kernel reports in a VM's console as it streams.
type reporter struct {
	vm  string
	sym *symbolize.Symbolizer // nil: traces stay as printed

	mu       sync.Mutex
	det      *kernelreport.Detector
	reports  []result.KernelReport
	lastLine time.Time
	flush    *time.Timer
}

func newReporter(vm string, sym *symbolize.Symbolizer) *reporter {
	r := &reporter{vm: vm, sym: sym}
	r.det = kernelreport.NewDetector(r.add)
	return r
}

// add keeps a report the detector finished; called with r.mu held.
func (r *reporter) add(k kernelreport.Report) {
	text := k.Text
	if r.sym != nil {
		text = r.sym.Decode(text)
	}
	r.reports = append(r.reports, result.KernelReport{
		Kind: string(k.Kind), Title: k.Title, Text: text, VM: r.vm, Time: k.Time,
	})
}

// line takes one console line.
func (r *reporter) line(s string) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastLine = now
	r.det.Line(s, now)
	if r.det.Open() {
		if r.flush == nil {
			r.flush = time.AfterFunc(reportQuiet, r.quiet)
		} else {
			r.flush.Reset(reportQuiet)
		}
	}
}

// quiet ends an open report once the console has been quiet long enough.
func (r *reporter) quiet() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.det.Open() && time.Since(r.lastLine) >= reportQuiet {
		r.det.Flush(time.Now())
	}
}

// end ends what is open: the console has ended.
func (r *reporter) end() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.flush != nil {
		r.flush.Stop()
	}
	r.det.Flush(time.Now())
}

// since returns the reports from the n-th on.
func (r *reporter) since(n int) []result.KernelReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n >= len(r.reports) {
		return nil
	}
	return append([]result.KernelReport(nil), r.reports[n:]...)
}

// drain waits until the console has said nothing for DrainQuiet, counted
// from now, and no report is open: until then a report may still be
// arriving. It gives up after DrainMax, or when done is closed (the
// console ended) or ctx ends.
func (r *reporter) drain(ctx context.Context, done <-chan struct{}) {
	start := time.Now()
	for {
		r.mu.Lock()
		last, open := r.lastLine, r.det.Open()
		r.mu.Unlock()
		quietSince := last
		if quietSince.Before(start) {
			quietSince = start
		}
		wait := DrainQuiet - time.Since(quietSince)
		if open {
			wait = reportQuiet - time.Since(last)
		}
		if wait <= 0 {
			if open {
				r.quiet()
			}
			return
		}
		if time.Since(start) > DrainMax {
			return
		}
		select {
		case <-time.After(wait):
		case <-done:
			return
		case <-ctx.Done():
			return
		}
	}
}
