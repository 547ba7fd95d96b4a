package pool

import (
	"fmt"
	"strings"
)

// Usage is a snapshot of a pool, for the status line.
type Usage struct {
	Auto     bool
	VMs      int // reservations held
	Waiting  int // Acquire calls waiting
	MemMiB   int // memory held
	CPUs     int // CPUs held
	LimitMiB int // fixed mode budget; 0 = unlimited
	LimitCPU int // fixed mode budget; 0 = unlimited
	// AvailMiB is auto mode's last reading of MemAvailable; -1 before the
	// first boot or when /proc/meminfo cannot be read.
	AvailMiB int
}

// Usage returns the pool's current use.
func (p *Pool) Usage() Usage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Usage{
		Auto:     p.auto,
		VMs:      p.held,
		Waiting:  len(p.waiters),
		MemMiB:   p.usedMem,
		CPUs:     p.usedCPUs,
		LimitMiB: p.memMiB,
		LimitCPU: p.cpus,
		AvailMiB: p.lastAvail,
	}
}

// String is the short form the status line shows, e.g.
// "3 VMs, mem 1.5G/4.0G, cpus 3/4, 1 waiting".
func (u Usage) String() string {
	var b strings.Builder
	if u.VMs == 1 {
		b.WriteString("1 VM")
	} else {
		fmt.Fprintf(&b, "%d VMs", u.VMs)
	}
	b.WriteString(", mem " + FormatMiB(u.MemMiB))
	switch {
	case u.Auto && u.AvailMiB >= 0:
		b.WriteString(" (" + FormatMiB(u.AvailMiB) + " free)")
	case !u.Auto && u.LimitMiB > 0:
		b.WriteString("/" + FormatMiB(u.LimitMiB))
	}
	if !u.Auto && u.LimitCPU > 0 {
		fmt.Fprintf(&b, ", cpus %d/%d", u.CPUs, u.LimitCPU)
	}
	if u.Waiting > 0 {
		fmt.Fprintf(&b, ", %d waiting", u.Waiting)
	}
	return b.String()
}

// FormatMiB writes a size the way users give it: "512M", "1.5G".
func FormatMiB(mib int) string {
	if mib < 1024 {
		return fmt.Sprintf("%dM", mib)
	}
	return fmt.Sprintf("%.1fG", float64(mib)/1024)
}
