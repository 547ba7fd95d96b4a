package agent

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/provium/provium/internal/wire"
)

const (
	// maxJobOutput bounds what a background job's stdout and stderr keep.
	maxJobOutput = 16 << 20
	// jobKillWait bounds how long a job kill waits for the job to end.
	jobKillWait = 5 * time.Second
)

// job is a background command of one identity.
type job struct {
	id             int
	pgid           int
	stdout, stderr *cappedBuffer
	done           chan struct{} // closed once the command was reaped
	state          *os.ProcessState
}

func (j *job) status() (wire.JobStatus, [][]byte) {
	out := [][]byte{j.stdout.Bytes(), j.stderr.Bytes()}
	select {
	case <-j.done:
		res := exitResult(j.state)
		return wire.JobStatus{ExitCode: res.ExitCode, Signal: res.Signal}, out
	default:
		return wire.JobStatus{ExitCode: -1, Running: true}, out
	}
}

// jobTable holds an identity's jobs. It is used from the identity's thread
// and, to kill them all, from whoever ends the identity or the session.
type jobTable struct {
	mu   sync.Mutex
	next int
	jobs map[int]*job
}

func (t *jobTable) add(cmd *exec.Cmd, stdout, stderr *cappedBuffer) *job {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.jobs == nil {
		t.jobs = map[int]*job{}
	}
	t.next++
	j := &job{id: t.next, pgid: cmd.Process.Pid, stdout: stdout, stderr: stderr, done: make(chan struct{})}
	t.jobs[j.id] = j
	go func() {
		cmd.Wait()
		j.state = cmd.ProcessState
		close(j.done)
	}()
	return j
}

func (t *jobTable) get(id int) (*job, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	j, ok := t.jobs[id]
	if !ok {
		return nil, fmt.Errorf("no such job %d", id)
	}
	return j, nil
}

// killAll kills every job's process group, forgets the jobs, and waits up
// to wait for them to be reaped.
func (t *jobTable) killAll(wait time.Duration) {
	t.mu.Lock()
	jobs := t.jobs
	t.jobs = nil
	t.mu.Unlock()
	for _, j := range jobs {
		killGroup(j.pgid)
	}
	if wait <= 0 {
		return
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for _, j := range jobs {
		select {
		case <-j.done:
		case <-deadline.C:
			return
		}
	}
}

func (id *identity) background(r request) (*wire.Message, error) {
	m := r.msg
	var req wire.Exec
	if err := m.Decode(&req); err != nil {
		return nil, err
	}
	req.TimeoutMs = 0 // a job runs until it ends or is killed
	cmd, err := command(req)
	if err != nil {
		return nil, fmt.Errorf("background %q: %w", req.Cmd, err)
	}
	stdout, stderr := newCappedBuffer(maxJobOutput), newCappedBuffer(maxJobOutput)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := start(cmd); err != nil {
		return nil, fmt.Errorf("background %q: %w", req.Cmd, err)
	}
	j := id.jobs.add(cmd, stdout, stderr)
	return wire.Reply(m.ID, wire.Job{ID: j.id, PID: j.pgid})
}

func (id *identity) jobWait(r request) (*wire.Message, error) {
	m := r.msg
	var req wire.JobWait
	if err := m.Decode(&req); err != nil {
		return nil, err
	}
	if req.TimeoutMs < 0 || req.TimeoutMs > maxTimeout {
		return nil, fmt.Errorf("job_wait %d: timeout of %d ms is out of range: %w", req.ID, req.TimeoutMs, wire.ErrMalformed)
	}
	j, err := id.jobs.get(req.ID)
	if err != nil {
		return nil, fmt.Errorf("job_wait: %w", err)
	}
	if req.TimeoutMs > 0 {
		t := time.NewTimer(time.Duration(req.TimeoutMs) * time.Millisecond)
		select {
		case <-j.done:
		case <-t.C:
		}
		t.Stop()
	}
	st, out := j.status()
	return wire.Reply(m.ID, st, out...)
}

func (id *identity) jobKill(r request) (*wire.Message, error) {
	m := r.msg
	var req wire.JobWait
	if err := m.Decode(&req); err != nil {
		return nil, err
	}
	j, err := id.jobs.get(req.ID)
	if err != nil {
		return nil, fmt.Errorf("job_kill: %w", err)
	}
	killGroup(j.pgid)
	t := time.NewTimer(jobKillWait)
	select {
	case <-j.done:
	case <-t.C:
	}
	t.Stop()
	st, out := j.status()
	return wire.Reply(m.ID, st, out...)
}
