package agent

import (
	"strconv"
	"strings"
	"testing"

	"github.com/provium/provium/internal/wire"
)

func (h *testHost) job(op wire.Op, id int, timeoutMs int64) (wire.JobStatus, string, string) {
	h.t.Helper()
	m := h.ok(wire.MainChannel, op, wire.JobWait{ID: id, TimeoutMs: timeoutMs})
	var st wire.JobStatus
	decode(h.t, m, &st)
	return st, string(m.Blob(0)), string(m.Blob(1))
}

func TestBackgroundJobWait(t *testing.T) {
	h := newSession(t)
	var j wire.Job
	decode(t, h.ok(wire.MainChannel, wire.OpBackground, wire.Exec{Cmd: "echo out; echo err >&2; exit 4"}), &j)
	if j.ID <= 0 || j.PID <= 0 {
		t.Fatalf("job = %+v", j)
	}
	st, stdout, stderr := h.job(wire.OpJobWait, j.ID, callWait.Milliseconds()/2)
	if st != (wire.JobStatus{ExitCode: 4}) || stdout != "out\n" || stderr != "err\n" {
		t.Errorf("job_wait = %+v, %q, %q; want exit 4 with its output", st, stdout, stderr)
	}
	// An ended job can be asked again.
	if st, _, _ := h.job(wire.OpJobWait, j.ID, 0); st.ExitCode != 4 {
		t.Errorf("second job_wait = %+v", st)
	}
}

func TestBackgroundJobPollAndKill(t *testing.T) {
	h := newSession(t)
	var j wire.Job
	decode(t, h.ok(wire.MainChannel, wire.OpBackground, wire.Exec{Cmd: "sleep 1000 & echo $!; wait"}), &j)

	// Poll until the job has said who its child is.
	var child int
	eventually(t, "the job prints its child's pid", func() bool {
		st, stdout, _ := h.job(wire.OpJobWait, j.ID, 0)
		if st != (wire.JobStatus{ExitCode: -1, Running: true}) {
			t.Fatalf("job_wait while running = %+v", st)
		}
		child, _ = strconv.Atoi(strings.TrimSpace(stdout))
		return child > 0
	})

	st, stdout, _ := h.job(wire.OpJobKill, j.ID, 0)
	if st != (wire.JobStatus{ExitCode: 137, Signal: 9}) {
		t.Errorf("job_kill = %+v, want killed by signal 9", st)
	}
	if strings.TrimSpace(stdout) != strconv.Itoa(child) {
		t.Errorf("stdout after kill = %q, want the output so far", stdout)
	}
	eventually(t, "the job's child is killed too", func() bool { return processGone(child) })
}

func TestJobIDsBelongToTheirIdentity(t *testing.T) {
	h := newSession(t)
	for _, op := range []wire.Op{wire.OpJobWait, wire.OpJobKill} {
		if e := h.fail(wire.MainChannel, op, wire.JobWait{ID: 42}); !strings.Contains(e.Message, "no such job 42") {
			t.Errorf("%v of an unknown job: %q", op, e.Message)
		}
	}
	var j wire.Job
	decode(t, h.ok(wire.MainChannel, wire.OpBackground, wire.Exec{Cmd: "true"}), &j)
	h.ok(wire.MainChannel, wire.OpSpawn, wire.Spawn{Channel: 2, Thread: true})
	if e := h.fail(2, wire.OpJobWait, wire.JobWait{ID: j.ID}); !strings.Contains(e.Message, "no such job") {
		t.Errorf("another identity's job: %q", e.Message)
	}
}
