package client_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/provium/provium/internal/client"
	"github.com/provium/provium/internal/wire"
)

// background starts a command that must start.
func background(t *testing.T, a *client.Agent, cmd string) wire.Job {
	t.Helper()
	j, err := a.Background(bounded(t), wire.Exec{Cmd: cmd})
	if err != nil {
		t.Fatalf("background %q: %v", cmd, err)
	}
	return j
}

func TestBackgroundJobWait(t *testing.T) {
	a := open(t, newGuest(t)).Main()
	j := background(t, a, "echo out; echo err >&2; exit 4")
	if j.ID <= 0 || j.PID <= 0 {
		t.Fatalf("job = %+v", j)
	}
	r, err := a.JobWait(bounded(t), j.ID, callWait/2)
	if err != nil || r.JobStatus != (wire.JobStatus{ExitCode: 4}) || string(r.Stdout) != "out\n" || string(r.Stderr) != "err\n" {
		t.Fatalf("job_wait = %+v, %v; want exit 4 with its output", r, err)
	}
	// An ended job can be asked again.
	if r, err := a.JobWait(bounded(t), j.ID, 0); err != nil || r.ExitCode != 4 {
		t.Errorf("second job_wait = %+v, %v", r, err)
	}
}

func TestBackgroundJobPollAndKill(t *testing.T) {
	a := open(t, newGuest(t)).Main()
	j := background(t, a, "sleep 1000 & echo $!; wait")

	// Poll until the job has said who its child is.
	var child int
	waitUntil(t, "the job prints its child's pid", func() bool {
		r, err := a.JobWait(bounded(t), j.ID, 0)
		if err != nil || r.JobStatus != (wire.JobStatus{ExitCode: -1, Running: true}) {
			t.Fatalf("job_wait while running = %+v, %v", r, err)
		}
		child, _ = strconv.Atoi(strings.TrimSpace(string(r.Stdout)))
		return child > 0
	})

	r, err := a.JobKill(bounded(t), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.JobStatus != (wire.JobStatus{ExitCode: 137, Signal: 9}) {
		t.Errorf("job_kill = %+v, want killed by signal 9", r.JobStatus)
	}
	if strings.TrimSpace(string(r.Stdout)) != strconv.Itoa(child) {
		t.Errorf("stdout after kill = %q, want the output so far", r.Stdout)
	}
	waitExit(t, child)
}

func TestJobIDsBelongToTheirIdentity(t *testing.T) {
	a := open(t, newGuest(t)).Main()
	_, err := a.JobWait(bounded(t), 42, 0)
	if e := opError(t, err); !strings.Contains(e.Message, "no such job 42") {
		t.Errorf("job_wait of an unknown job: %q", e.Message)
	}
	_, err = a.JobKill(bounded(t), 42)
	if e := opError(t, err); !strings.Contains(e.Message, "no such job 42") {
		t.Errorf("job_kill of an unknown job: %q", e.Message)
	}
	j := background(t, a, "true")
	w, _ := spawn(t, a, true)
	_, err = w.JobWait(bounded(t), j.ID, 0)
	if e := opError(t, err); !strings.Contains(e.Message, "no such job") {
		t.Errorf("another identity's job: %q", e.Message)
	}
}
