package client

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/provium/provium/internal/wire"
)

// Agent is one identity in the guest: the VM's own agent or a worker. Its
// calls run in the guest on that identity's thread, with its credentials.
type Agent struct {
	s      *Session
	ch     uint32
	gen    int // the agent generation a worker lives in; -1 for identities that outlive restarts
	closed atomic.Bool
}

// Channel is the identity's channel number.
func (a *Agent) Channel() uint32 { return a.ch }

// Session is the connection the identity answers on.
func (a *Agent) Session() *Session { return a.s }

func (a *Agent) do(ctx context.Context, op wire.Op, meta any, reply any, blobs ...[]byte) (*wire.Message, error) {
	if a.closed.Load() {
		return nil, ErrClosed
	}
	start := time.Now()
	m, err := a.s.call(ctx, a.ch, a.gen, op, meta, blobs...)
	if err == nil && reply != nil {
		err = m.Decode(reply)
	}
	if a.s.trace != nil {
		a.s.trace(a.ch, op, traceDetail(meta), time.Since(start), err)
	}
	return m, err
}

func traceDetail(meta any) string {
	switch v := meta.(type) {
	case nil:
		return ""
	case wire.Exec:
		return fmt.Sprintf("%q", v.Cmd)
	case wire.Path:
		return v.Path
	case wire.WriteFile:
		return v.Path
	case wire.Syscall:
		return fmt.Sprintf("nr=%d", v.Nr)
	default:
		return fmt.Sprintf("%+v", v)
	}
}

// Ping does a round trip through the identity's thread.
func (a *Agent) Ping(ctx context.Context) error {
	_, err := a.do(ctx, wire.OpPing, nil, nil)
	return err
}

// ExecResult is what a command did.
type ExecResult struct {
	wire.ExecResult
	Stdout, Stderr []byte
}

// Exec runs req.Cmd with /bin/sh -c. A command's failure is a result, not an
// error; errors are infrastructure failures. A call with a command timeout
// waits that long plus a margin; others wait DefaultTimeout.
func (a *Agent) Exec(ctx context.Context, req wire.Exec, stdin []byte) (*ExecResult, error) {
	if req.TimeoutMs > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMs)*time.Millisecond+30*time.Second)
		defer cancel()
	}
	r := &ExecResult{}
	m, err := a.do(ctx, wire.OpExec, req, &r.ExecResult, stdin)
	if err != nil {
		return nil, err
	}
	r.Stdout, r.Stderr = m.Blob(0), m.Blob(1)
	return r, nil
}

// ReadFile returns the contents of a guest file.
func (a *Agent) ReadFile(ctx context.Context, path string) ([]byte, error) {
	m, err := a.do(ctx, wire.OpReadFile, wire.Path{Path: path}, nil)
	if err != nil {
		return nil, err
	}
	return m.Blob(0), nil
}

// WriteFile creates or replaces a guest file.
func (a *Agent) WriteFile(ctx context.Context, path string, data []byte, mode uint32) error {
	_, err := a.do(ctx, wire.OpWriteFile, wire.WriteFile{Path: path, Mode: mode}, nil, data)
	return err
}

// Syscall makes a raw system call. blobs are the buffers' contents in Bufs
// order, then the contents of the Ptrs that have data. The request is
// checked here before it reaches the guest. It returns the raw result
// (-errno on failure), the buffers after the call and the output pointers'
// memory, as the agent sent them.
func (a *Agent) Syscall(ctx context.Context, req wire.Syscall, blobs [][]byte) (int64, [][]byte, error) {
	if err := req.Validate(blobs); err != nil {
		return 0, nil, err
	}
	var res wire.SyscallResult
	m, err := a.do(ctx, wire.OpSyscall, req, &res, blobs...)
	if err != nil {
		return 0, nil, err
	}
	want := len(req.Bufs)
	for _, p := range req.Ptrs {
		if p.Output {
			want++
		}
	}
	if len(m.Blobs) != want {
		return 0, nil, fmt.Errorf("%w: syscall reply has %d buffers, want %d", wire.ErrMalformed, len(m.Blobs), want)
	}
	return res.Ret, m.Blobs, nil
}

// Background starts a command and returns at once.
func (a *Agent) Background(ctx context.Context, req wire.Exec) (wire.Job, error) {
	var j wire.Job
	_, err := a.do(ctx, wire.OpBackground, req, &j)
	return j, err
}

// JobResult is the state of a background command.
type JobResult struct {
	wire.JobStatus
	Stdout, Stderr []byte
}

// JobWait waits up to timeout for a job to end; 0 polls.
func (a *Agent) JobWait(ctx context.Context, id int, timeout time.Duration) (*JobResult, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout+30*time.Second)
	defer cancel()
	return a.job(ctx, wire.OpJobWait, wire.JobWait{ID: id, TimeoutMs: timeout.Milliseconds()})
}

// JobKill kills a job and its children and returns its final state.
func (a *Agent) JobKill(ctx context.Context, id int) (*JobResult, error) {
	return a.job(ctx, wire.OpJobKill, wire.JobWait{ID: id})
}

func (a *Agent) job(ctx context.Context, op wire.Op, req wire.JobWait) (*JobResult, error) {
	r := &JobResult{}
	m, err := a.do(ctx, op, req, &r.JobStatus)
	if err != nil {
		return nil, err
	}
	r.Stdout, r.Stderr = m.Blob(0), m.Blob(1)
	return r, nil
}

// Spawn starts a worker: a new agent process in the guest, or with thread
// set a new thread of this identity's process. The worker answers on a
// channel of its own.
func (a *Agent) Spawn(ctx context.Context, thread bool) (*Agent, wire.SpawnReply, error) {
	ch := a.s.nextCh.Add(1)
	gen := a.s.generation()
	var r wire.SpawnReply
	_, err := a.do(ctx, wire.OpSpawn, wire.Spawn{Channel: ch, Thread: thread}, &r)
	if err != nil {
		return nil, r, err
	}
	return &Agent{s: a.s, ch: ch, gen: gen}, r, nil
}

// Close ends a worker. Later calls fail with ErrClosed. Closing twice is
// not an error.
func (a *Agent) Close(ctx context.Context) error {
	if a.closed.Swap(true) {
		return nil
	}
	start := time.Now()
	_, err := a.s.call(ctx, a.ch, a.gen, wire.OpClose, nil)
	if a.s.trace != nil {
		a.s.trace(a.ch, wire.OpClose, "", time.Since(start), err)
	}
	return err
}

// Closed reports whether Close was called.
func (a *Agent) Closed() bool { return a.closed.Load() }

// Dmesg returns the kernel log.
func (a *Agent) Dmesg(ctx context.Context) ([]byte, error) {
	m, err := a.do(ctx, wire.OpDmesg, nil, nil)
	if err != nil {
		return nil, err
	}
	return m.Blob(0), nil
}

// MountVFS mounts proc, sysfs, securityfs and devtmpfs; already mounted is
// fine.
func (a *Agent) MountVFS(ctx context.Context) error {
	_, err := a.do(ctx, wire.OpMountVFS, nil, nil)
	return err
}
