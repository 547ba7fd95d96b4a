package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/provium/provium/internal/wire"
)

// readPty reads terminal id until want appears or the shell ends; it
// returns everything read and the final status, if any.
func (h *testHost) readPty(id int, want string) (string, wire.PtyOutput) {
	h.t.Helper()
	var all strings.Builder
	deadline := time.Now().Add(callWait)
	for time.Now().Before(deadline) {
		var st wire.PtyOutput
		m := h.ok(wire.ControlChannel, wire.OpPtyRead, wire.PtyRead{ID: id, TimeoutMs: 500})
		decode(h.t, m, &st)
		all.Write(m.Blob(0))
		if st.Exited || (want != "" && strings.Contains(all.String(), want)) {
			return all.String(), st
		}
	}
	h.t.Fatalf("terminal %d: no %q in %q", id, want, all.String())
	return "", wire.PtyOutput{}
}

func TestPtyShell(t *testing.T) {
	h := newSession(t)
	var o wire.PtyOpened
	decode(t, h.ok(wire.MainChannel, wire.OpPtyOpen, wire.PtyOpen{
		Argv: []string{"/bin/sh"}, Env: []string{"PS1=$ "}, Rows: 30, Cols: 100,
	}), &o)
	if o.ID <= 0 || o.PID <= 0 {
		t.Fatalf("pty_open = %+v", o)
	}
	h.ok(wire.ControlChannel, wire.OpPtyWrite, wire.PtyID{ID: o.ID}, []byte("stty size; tty\n"))
	if out, _ := h.readPty(o.ID, "30 100"); !strings.Contains(out, "30 100") {
		t.Errorf("stty size on a 30x100 terminal printed %q", out)
	}
	h.ok(wire.ControlChannel, wire.OpPtyResize, wire.PtyResize{ID: o.ID, Rows: 12, Cols: 34})
	h.ok(wire.ControlChannel, wire.OpPtyWrite, wire.PtyID{ID: o.ID}, []byte("stty size\n"))
	h.readPty(o.ID, "12 34")

	// ^C reaches the foreground process, not the shell.
	h.ok(wire.ControlChannel, wire.OpPtyWrite, wire.PtyID{ID: o.ID}, []byte("sleep 1000\n"))
	time.Sleep(200 * time.Millisecond)
	h.ok(wire.ControlChannel, wire.OpPtyWrite, wire.PtyID{ID: o.ID}, []byte{3})
	h.ok(wire.ControlChannel, wire.OpPtyWrite, wire.PtyID{ID: o.ID}, []byte("echo status $?\n"))
	h.readPty(o.ID, "status 130")

	h.ok(wire.ControlChannel, wire.OpPtyWrite, wire.PtyID{ID: o.ID}, []byte("exit 7\n"))
	_, st := h.readPty(o.ID, "")
	if !st.Exited || st.ExitCode != 7 {
		t.Errorf("after exit 7: %+v", st)
	}
	// An ended terminal is gone.
	if e := h.fail(wire.ControlChannel, wire.OpPtyRead, wire.PtyRead{ID: o.ID}); !strings.Contains(e.Message, "no such terminal") {
		t.Errorf("reading an ended terminal: %v", e)
	}
}

func TestPtyCloseKillsTheSession(t *testing.T) {
	h := newSession(t)
	var o wire.PtyOpened
	decode(t, h.ok(wire.MainChannel, wire.OpPtyOpen, wire.PtyOpen{Argv: []string{"/bin/sh", "-c", "trap '' HUP; sleep 1000"}}), &o)
	h.ok(wire.ControlChannel, wire.OpPtyClose, wire.PtyID{ID: o.ID})
	eventually(t, "the shell that ignores SIGHUP is killed", func() bool { return processGone(o.PID) })
	if e := h.fail(wire.ControlChannel, wire.OpPtyRead, wire.PtyRead{ID: 1, TimeoutMs: maxPtyWait.Milliseconds() + 1}); !strings.Contains(e.Message, "out of range") {
		t.Errorf("an unbounded read: %v", e)
	}
}
