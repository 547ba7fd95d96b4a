package harness

import (
	"testing"
	"time"

	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/result"
)

// The vm_shutdown event carries the VM's lifetime, counted from the start
// of its boot, as vm_booted carries the boot's duration.
func TestShutdownEventHasLifetime(t *testing.T) {
	var events []result.Event
	fh := &fileHost{
		h:    &Harness{live: map[*machine.VM]bool{}},
		file: "/p/t.lua",
		emit: func(e result.Event) { events = append(events, e) },
	}
	v := &hostVM{host: fh}
	cfg := fh.machineConfig("minimal#1", v)
	cfg.OnReady(false, 2*time.Second)
	cfg.OnStop()
	if len(events) != 2 || events[0].Kind != result.VMBooted || events[1].Kind != result.VMShutdown {
		t.Fatalf("events = %+v", events)
	}
	if d := events[1].Duration; d < 2*time.Second || d > time.Minute {
		t.Errorf("vm_shutdown duration = %v, want the lifetime since the boot began (>= 2s)", d)
	}

	// A VM that never became ready has no lifetime to report.
	events = nil
	v = &hostVM{host: fh}
	fh.machineConfig("minimal#2", v).OnStop()
	if len(events) != 1 || events[0].Duration != 0 {
		t.Errorf("events = %+v, want one vm_shutdown without a duration", events)
	}
}
