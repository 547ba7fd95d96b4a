package netswitch

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Impairment degrades one direction of the link between two ports. The
// zero value is a perfect link.
//
// Each frame is lost with probability Loss; a frame that survives waits
// for the link to be free, takes len*8/RateBitsPerSec to serialise (the
// frame alone: no preamble, gap or FCS), and then arrives Delay plus a
// uniformly random offset in [-Jitter, +Jitter] later, never before it
// finished serialising. Lost frames take no time on the link.
//
// Without Jitter, and while the impairment stays the same, frames on one
// link direction arrive in the order they were sent. With Jitter, a frame
// may overtake another, as with netem, since each frame's arrival time is
// drawn on its own.
type Impairment struct {
	Delay, Jitter time.Duration
	// Loss is the probability, 0 to 1, that a frame is dropped.
	Loss float64
	// RateBitsPerSec caps the throughput; 0 means unlimited.
	RateBitsPerSec int64
}

// delays reports whether frames must wait in the delay queue.
func (imp Impairment) delays() bool {
	return imp.Delay > 0 || imp.Jitter > 0 || imp.RateBitsPerSec > 0
}

// MaxDelay bounds Delay and Jitter, so arrival times cannot overflow.
const MaxDelay = time.Hour

func (imp Impairment) validate() error {
	switch {
	case imp.Delay < 0 || imp.Delay > MaxDelay:
		return fmt.Errorf("delay %v outside 0..%v", imp.Delay, MaxDelay)
	case imp.Jitter < 0 || imp.Jitter > MaxDelay:
		return fmt.Errorf("jitter %v outside 0..%v", imp.Jitter, MaxDelay)
	case !(imp.Loss >= 0 && imp.Loss <= 1):
		return fmt.Errorf("loss %v outside 0..1", imp.Loss)
	case imp.RateBitsPerSec < 0:
		return fmt.Errorf("negative rate %d", imp.RateBitsPerSec)
	}
	return nil
}

type linkKey struct{ from, to *Port }

// link is one direction between two ports. Its fields are under sw.mu.
type link struct {
	from, to  *Port
	imp       Impairment
	busyUntil time.Duration // since sw.epoch: when the last frame has been serialised
	frames    int           // frames waiting in the delay queue
	bytes     int
}

// SetLink impairs both directions between a and b, a->b and b->a, each
// timed on its own. The zero Impairment lifts it. It applies at once to
// frames sent from then on; frames already waiting keep the arrival time
// they were given, so lowering the delay lets new frames overtake them, as
// changing a netem qdisc does.
func (s *Switch) SetLink(a, b *Port, imp Impairment) error {
	switch {
	case a == nil || b == nil:
		return fmt.Errorf("netswitch %s: set link: nil port", s.name)
	case a.sw != s:
		return fmt.Errorf("netswitch %s: set link: port %s: %w", s.name, a.name, ErrForeignPort)
	case b.sw != s:
		return fmt.Errorf("netswitch %s: set link: port %s: %w", s.name, b.name, ErrForeignPort)
	case a == b:
		return fmt.Errorf("netswitch %s: set link: %s to itself", s.name, a.name)
	}
	if err := imp.validate(); err != nil {
		return fmt.Errorf("netswitch %s: set link %s-%s: %w", s.name, a.name, b.name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return fmt.Errorf("netswitch %s: set link %s-%s: %w", s.name, a.name, b.name, ErrClosed)
	case a.closed || b.closed:
		return fmt.Errorf("netswitch %s: set link %s-%s: port closed", s.name, a.name, b.name)
	}
	for _, k := range []linkKey{{a, b}, {b, a}} {
		l := s.links[k]
		if l == nil {
			l = &link{from: k.from, to: k.to}
			s.links[k] = l
		}
		l.imp = imp
	}
	return nil
}

// delayed is a frame waiting in the delay queue.
type delayed struct {
	at    time.Duration // since sw.epoch
	seq   uint64
	frame []byte
	link  *link
}

// delayQueue is a min-heap by arrival time, then by order of sending.
type delayQueue []delayed

func (q delayQueue) Len() int { return len(q) }
func (q delayQueue) Less(i, j int) bool {
	return q[i].at < q[j].at || q[i].at == q[j].at && q[i].seq < q[j].seq
}
func (q delayQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *delayQueue) Push(x any)   { *q = append(*q, x.(delayed)) }
func (q *delayQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	old[len(old)-1] = delayed{}
	*q = old[:len(old)-1]
	return x
}

// enqueue schedules frame on l, sent at now. Called with s.mu held, after
// the loss and queue-limit checks.
func (s *Switch) enqueue(l *link, frame []byte, now time.Time) {
	t := now.Sub(s.epoch)
	done := t
	if r := l.imp.RateBitsPerSec; r > 0 {
		start := max(t, l.busyUntil)
		bits := int64(len(frame)) * 8
		done = start + time.Duration(bits*int64(time.Second)/r)
		l.busyUntil = done
	}
	at := done + l.imp.Delay
	if j := l.imp.Jitter; j > 0 {
		at += time.Duration(s.rng.Int64N(2*int64(j)+1)) - j
	}
	at = max(at, done)
	l.frames++
	l.bytes += len(frame)
	s.seq++
	heap.Push(&s.sched, delayed{at: at, seq: s.seq, frame: frame, link: l})
	if s.sched[0].seq == s.seq {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// schedule is the switch's one timer goroutine: it hands delayed frames to
// their ports when they fall due. One goroutine and one heap for all links
// cost nothing while no link delays, and keep the order of frames that fall
// due at once.
func (s *Switch) schedule() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now := time.Since(s.epoch)
		due := s.schedBuf[:0]
		for len(s.sched) > 0 && s.sched[0].at <= now {
			d := heap.Pop(&s.sched).(delayed)
			d.link.frames--
			d.link.bytes -= len(d.frame)
			switch {
			case d.link.to.closed:
				d.link.to.stats.dropDown.Add(1)
			case !s.allowed(d.link.from, d.link.to):
				// The partition came after the frame was sent.
				d.link.to.stats.dropPartition.Add(1)
			default:
				due = append(due, d)
			}
		}
		wait := time.Duration(-1)
		if len(s.sched) > 0 {
			wait = s.sched[0].at - now
		}
		s.mu.Unlock()

		for _, d := range due {
			d.link.to.deliver(d.frame)
		}
		clear(due)
		s.schedBuf = due[:0]

		if wait >= 0 {
			timer.Reset(wait)
		} else {
			timer.Stop()
		}
		select {
		case <-s.done:
			return
		case <-s.kick:
		case <-timer.C:
		}
	}
}

// rateUnits are tc's rate suffixes (iproute2 tc_util.c), in bits per
// second per unit, matched without regard to case as tc does. "bps" is
// bytes per second, as in tc, not bits.
var rateUnits = map[string]float64{
	"":      1,
	"bit":   1,
	"kbit":  1e3,
	"mbit":  1e6,
	"gbit":  1e9,
	"tbit":  1e12,
	"kibit": 1 << 10,
	"mibit": 1 << 20,
	"gibit": 1 << 30,
	"tibit": 1 << 40,
	"bps":   8,
	"kbps":  8e3,
	"mbps":  8e6,
	"gbps":  8e9,
	"tbps":  8e12,
	"kibps": 8 << 10,
	"mibps": 8 << 20,
	"gibps": 8 << 30,
	"tibps": 8 << 40,
}

// ErrBadRate reports a rate ParseRate does not accept.
var ErrBadRate = errors.New("bad rate")

// ParseRate parses a rate written as tc writes it: a decimal number and a
// unit, "10mbit", "1.5gbit", "512kbit", "100kbps". Units ending in "bit"
// (or none) count bits per second, those ending in "bps" bytes per second;
// k, m, g, t are powers of 1000 and ki, mi, gi, ti powers of 1024. It
// returns bits per second, at least 1.
func ParseRate(s string) (int64, error) {
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.ToLower(s[i:])
	scale, ok := rateUnits[unit]
	if !ok {
		return 0, fmt.Errorf("rate %q: unknown unit %q: %w", s, s[i:], ErrBadRate)
	}
	// strconv would also take exponents, hex and "inf"; a rate is digits
	// with at most one point.
	if strings.Count(num, ".") > 1 || strings.Trim(num, ".") == "" {
		return 0, fmt.Errorf("rate %q: not a number: %w", s, ErrBadRate)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("rate %q: %w", s, ErrBadRate)
	}
	bits := math.Round(v * scale)
	if bits < 1 || bits >= math.MaxInt64 {
		return 0, fmt.Errorf("rate %q: out of range: %w", s, ErrBadRate)
	}
	return int64(bits), nil
}
