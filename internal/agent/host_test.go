package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provium/provium/internal/client"
	"github.com/provium/provium/internal/wire"
	"github.com/provium/provium/internal/wire/boot"
)

// TestMain lets the test binary be a fork worker: the agent re-executes
// /proc/self/exe as "provium-worker", as it does in a guest.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == boot.WorkerName {
		WorkerMain()
	}
	os.Exit(m.Run())
}

// callWait bounds every call so that a broken agent fails a test instead
// of hanging it. No test depends on how long anything takes.
const callWait = 30 * time.Second

// lockedBuffer collects the agent's log for a failing test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startAgent runs an agent serving one end of a pipe and returns it with
// the other end, the host's, before any Hello. The agent's log is shown if
// the test fails.
func startAgent(t *testing.T) (*Agent, net.Conn) {
	t.Helper()
	agentEnd, hostEnd := net.Pipe()
	logs := &lockedBuffer{}
	a := New(Config{
		PowerOff: func() { t.Error("the agent powered off") },
		Logger:   log.New(logs, "agent: ", 0),
	})
	served := make(chan error, 1)
	go func() { served <- a.Serve(agentEnd) }()
	t.Cleanup(func() {
		hostEnd.Close()
		if err := <-served; !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve returned %v, want EOF", err)
		}
		a.Close()
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	})
	return a, hostEnd
}

// testHost is an in-process agent driven by the real client, for the
// tests that look inside the agent as well; the client's own tests cover
// the protocol's operations.
type testHost struct {
	t    *testing.T
	a    *Agent
	s    *client.Session
	main *client.Agent
}

// newSession starts an agent and a client session with it.
func newSession(t *testing.T) *testHost {
	t.Helper()
	a, hostEnd := startAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), callWait)
	defer cancel()
	s, err := client.Open(ctx, hostEnd, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &testHost{t: t, a: a, s: s, main: s.Main()}
}

// ctx bounds one call.
func (h *testHost) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callWait)
	h.t.Cleanup(cancel)
	return ctx
}

// spawn starts a worker of parent, which must start.
func (h *testHost) spawn(parent *client.Agent, thread bool) (*client.Agent, wire.SpawnReply) {
	h.t.Helper()
	w, r, err := parent.Spawn(h.ctx(), thread)
	if err != nil {
		h.t.Fatalf("spawn: %v", err)
	}
	return w, r
}

// stdout runs cmd on id and returns its output.
func (h *testHost) stdout(id *client.Agent, cmd string) string {
	h.t.Helper()
	r, err := id.Exec(h.ctx(), wire.Exec{Cmd: cmd}, nil)
	if err != nil {
		h.t.Fatalf("exec %q: %v", cmd, err)
	}
	return string(r.Stdout)
}

// syscall makes a system call on id and returns its result and buffers.
func (h *testHost) syscall(id *client.Agent, req wire.Syscall, blobs ...[]byte) (int64, [][]byte) {
	h.t.Helper()
	ret, out, err := id.Syscall(h.ctx(), req, blobs)
	if err != nil {
		h.t.Fatalf("system call %d: %v", req.Nr, err)
	}
	return ret, out
}

// sys makes a system call without buffers on id.
func (h *testHost) sys(id *client.Agent, nr int64, args ...uint64) int64 {
	h.t.Helper()
	req := wire.Syscall{Nr: nr}
	copy(req.Args[:], args)
	ret, _ := h.syscall(id, req)
	return ret
}

// close ends a worker, which must end.
func (h *testHost) close(w *client.Agent) {
	h.t.Helper()
	if err := w.Close(h.ctx()); err != nil {
		h.t.Fatalf("close worker %d: %v", w.Channel(), err)
	}
}

// eventually polls cond until it holds; the bound only guards against a
// hang.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(callWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// processGone reports whether pid has ended: no such process, or a zombie
// nobody reaped yet (the test process's orphans go to an init we do not
// control).
func processGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

// minus1 is -1 as a system call argument.
const minus1 = ^uint64(0)
