package client_test

import (
	"strings"
	"testing"
	"time"

	"github.com/provium/provium/internal/client"
	"github.com/provium/provium/internal/wire"
)

// readPty reads p until want appears or the shell ends; it returns
// everything read and the final status, if any.
func readPty(t *testing.T, p *client.Pty, want string) (string, wire.PtyOutput) {
	t.Helper()
	var all strings.Builder
	deadline := time.Now().Add(callWait)
	for time.Now().Before(deadline) {
		st, b, err := p.Read(bounded(t))
		if err != nil {
			t.Fatalf("read the terminal: %v", err)
		}
		all.Write(b)
		if st.Exited || (want != "" && strings.Contains(all.String(), want)) {
			return all.String(), st
		}
	}
	t.Fatalf("terminal: no %q in %q", want, all.String())
	return "", wire.PtyOutput{}
}

func TestPtyShell(t *testing.T) {
	a := open(t, newGuest(t)).Main()
	p, err := a.OpenPty(bounded(t), []string{"/bin/sh"}, []string{"PS1=$ "}, 30, 100)
	if err != nil {
		t.Fatal(err)
	}
	if p.PID <= 0 {
		t.Fatalf("pty_open: shell pid %d", p.PID)
	}
	typ := func(s string) {
		t.Helper()
		if err := p.Write(bounded(t), []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	typ("stty size; tty\n")
	if out, _ := readPty(t, p, "30 100"); !strings.Contains(out, "30 100") {
		t.Errorf("stty size on a 30x100 terminal printed %q", out)
	}
	if err := p.Resize(bounded(t), 12, 34); err != nil {
		t.Fatal(err)
	}
	typ("stty size\n")
	readPty(t, p, "12 34")

	// ^C reaches the foreground process, not the shell.
	typ("sleep 1000\n")
	time.Sleep(200 * time.Millisecond)
	typ("\x03")
	typ("echo status $?\n")
	readPty(t, p, "status 130")

	typ("exit 7\n")
	if _, st := readPty(t, p, ""); !st.Exited || st.ExitCode != 7 {
		t.Errorf("after exit 7: %+v", st)
	}
	// An ended terminal is gone.
	_, _, err = p.Read(bounded(t))
	if e := opError(t, err); !strings.Contains(e.Message, "no such terminal") {
		t.Errorf("reading an ended terminal: %v", e)
	}
}

func TestPtyCloseKillsTheSession(t *testing.T) {
	a := open(t, newGuest(t)).Main()
	p, err := a.OpenPty(bounded(t), []string{"/bin/sh", "-c", "trap '' HUP; sleep 1000"}, nil, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(bounded(t)); err != nil {
		t.Fatal(err)
	}
	// The shell ignores SIGHUP: the close kills it.
	waitExit(t, p.PID)
}
