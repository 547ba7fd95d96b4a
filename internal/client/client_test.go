package client_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/agent"
	"github.com/provium/provium/internal/client"
	"github.com/provium/provium/internal/wire"
	"github.com/provium/provium/internal/wire/boot"
)

// TestMain lets the test binary be a fork worker of the in-process agent.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == boot.WorkerName {
		agent.WorkerMain()
	}
	os.Exit(m.Run())
}

// guest is an in-process agent behind a stream that survives it, as a
// virtio-serial port survives the agent process: kill replaces the agent
// with a new one, as the guest's init does.
type guest struct {
	t    *testing.T
	host net.Conn // the host's end, handed to the client

	guestEnd net.Conn // the stream's guest end, which outlives agents

	powerOff   sync.Once
	poweredOff chan struct{} // closed when an agent powers the machine off

	mu    sync.Mutex
	agent *agent.Agent
	end   net.Conn // the current agent's end of its pipe
	relay net.Conn // the relay's end of it
}

func newGuest(t *testing.T) *guest {
	t.Helper()
	hostEnd, guestEnd := net.Pipe()
	g := &guest{t: t, host: hostEnd, guestEnd: guestEnd, poweredOff: make(chan struct{})}
	g.start("")
	// Host to agent: whichever agent serves now.
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := guestEnd.Read(buf)
			if err != nil {
				return
			}
			g.mu.Lock()
			r := g.relay
			g.mu.Unlock()
			if r != nil {
				r.Write(buf[:n])
			}
		}
	}()
	t.Cleanup(func() {
		hostEnd.Close()
		guestEnd.Close()
		g.mu.Lock()
		a, r := g.agent, g.relay
		g.mu.Unlock()
		if r != nil {
			r.Close()
		}
		if a != nil {
			a.Close()
		}
	})
	return g
}

// start runs a new agent on a fresh pipe, whose output goes to the host.
func (g *guest) start(restarted string) {
	agentEnd, relayEnd := net.Pipe()
	a := agent.New(agent.Config{
		Restarted: restarted,
		Logger:    log.New(io.Discard, "", 0),
		PowerOff:  func() { g.powerOff.Do(func() { close(g.poweredOff) }) },
	})
	g.mu.Lock()
	g.agent, g.end, g.relay = a, agentEnd, relayEnd
	g.mu.Unlock()
	go a.Serve(agentEnd)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := relayEnd.Read(buf)
			if err != nil {
				return
			}
			g.guestEnd.Write(buf[:n])
		}
	}()
}

// kill ends the current agent (its stream closes under it, its commands
// and workers die with it) and, when restart is set, starts a new one
// that says how the old one ended.
func (g *guest) kill(restart bool, how string) {
	g.mu.Lock()
	a, r := g.agent, g.relay
	g.agent, g.relay = nil, nil
	g.mu.Unlock()
	r.Close()
	a.Close()
	if restart {
		g.start(how)
	}
}

func open(t *testing.T, g *guest) *client.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := client.Open(ctx, g.host, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestCallsAndErrors(t *testing.T) {
	g := newGuest(t)
	s := open(t, g)
	ctx := context.Background()
	a := s.Main()
	if h := s.Hello(); h.Version != wire.Version || h.PID != os.Getpid() {
		t.Errorf("Hello = %+v", h)
	}
	r, err := a.Exec(ctx, wire.Exec{Cmd: "echo out; echo err >&2; exit 3"}, nil)
	if err != nil || r.ExitCode != 3 || string(r.Stdout) != "out\n" || string(r.Stderr) != "err\n" {
		t.Errorf("Exec = %+v %q %q, %v", r, r.Stdout, r.Stderr, err)
	}
	_, err = a.ReadFile(ctx, "/no/such/file")
	var op *client.OpError
	if !errors.As(err, &op) || op.Err.ErrnoName != "ENOENT" || !strings.Contains(err.Error(), "ENOENT") {
		t.Errorf("ReadFile of a missing file = %v, want an OpError naming ENOENT", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := a.Exec(tctx, wire.Exec{Cmd: "sleep 5"}, nil); !errors.Is(err, client.ErrTimeout) {
		t.Errorf("a call past its deadline = %v, want ErrTimeout", err)
	}
}

// A call in flight when the agent dies fails at once with how it died;
// the session greets the new agent and goes on; workers of the dead agent
// say they died with it.
func TestAgentRestart(t *testing.T) {
	g := newGuest(t)
	s := open(t, g)
	ctx := context.Background()
	w, _, err := s.Main().Spawn(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := s.Main().Exec(ctx, wire.Exec{Cmd: "sleep 30"}, nil)
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond) // the call is in flight
	start := time.Now()
	g.kill(true, "was killed by signal 9")
	select {
	case err := <-errc:
		if !errors.Is(err, client.ErrAgentRestarted) || err.Error() != "agent restarted (was killed by signal 9)" {
			t.Errorf("the call in flight = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call in flight did not fail when the agent died")
	}
	t.Logf("failed %v after the death", time.Since(start))
	if err := s.Main().Ping(ctx); err != nil {
		t.Errorf("a call to the new agent: %v", err)
	}
	if err := w.Ping(ctx); !errors.Is(err, client.ErrAgentRestarted) || !strings.Contains(err.Error(), "died with the agent") {
		t.Errorf("a call to a worker of the dead agent = %v", err)
	}
	if _, _, err := s.Main().Spawn(ctx, true); err != nil {
		t.Errorf("spawning in the new agent: %v", err)
	}
}

// An agent whose port closes and that nobody replaces is the end of the
// session, after a bounded wait.
func TestAgentGoneForGood(t *testing.T) {
	g := newGuest(t)
	s := open(t, g)
	errc := make(chan error, 1)
	go func() {
		_, err := s.Main().Exec(context.Background(), wire.Exec{Cmd: "sleep 30"}, nil)
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	g.kill(false, "")
	s.PortClosed(200 * time.Millisecond)
	select {
	case err := <-errc:
		if !errors.Is(err, client.ErrAgentGone) || !strings.Contains(err.Error(), "no agent took its place within 200ms") {
			t.Errorf("the call in flight = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call in flight did not fail")
	}
	if err := s.Main().Ping(context.Background()); !errors.Is(err, client.ErrAgentGone) {
		t.Errorf("a later call = %v", err)
	}
}

// The first agent's announcement, which comes before the first Hello is
// answered, is no restart.
func TestFirstAnnouncementIsNoRestart(t *testing.T) {
	g := newGuest(t)
	s := open(t, g)
	for range 3 {
		if err := s.Main().Ping(context.Background()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}
}

// A guest that never reads its port (a kernel still booting, slowly)
// blocks the host's writes once the buffer is full: the handshake still
// ends at its deadline.
func TestOpenDeadlineWithAGuestThatDoesNotRead(t *testing.T) {
	host, guest := net.Pipe() // every write blocks until the other end reads
	defer guest.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		s, err := client.Open(ctx, host, nil)
		if err == nil {
			s.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, client.ErrTimeout) {
			t.Errorf("Open = %v, want ErrTimeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Open ignored its deadline while its write was blocked")
	}
}

// callWait bounds every call of the tests against an agent, so that a
// broken agent fails a test instead of hanging it. No test depends on how
// long anything takes.
const callWait = 30 * time.Second

// bounded is the context of one call of a test.
func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), callWait)
	t.Cleanup(cancel)
	return ctx
}

// opError returns the error the agent reported, and fails the test if err
// is anything else.
func opError(t *testing.T, err error) wire.Error {
	t.Helper()
	var op *client.OpError
	if !errors.As(err, &op) {
		t.Fatalf("error %v, want one the agent reported", err)
	}
	return op.Err
}

// run runs a command that must start and returns what it did.
func run(t *testing.T, a *client.Agent, req wire.Exec, stdin []byte) *client.ExecResult {
	t.Helper()
	r, err := a.Exec(bounded(t), req, stdin)
	if err != nil {
		t.Fatalf("exec %q on channel %d: %v", req.Cmd, a.Channel(), err)
	}
	return r
}

// sysBufs makes a system call the agent must carry out and returns its
// result and the buffers that came back.
func sysBufs(t *testing.T, a *client.Agent, req wire.Syscall, blobs ...[]byte) (int64, [][]byte) {
	t.Helper()
	ret, out, err := a.Syscall(bounded(t), req, blobs)
	if err != nil {
		t.Fatalf("system call %d on channel %d: %v", req.Nr, a.Channel(), err)
	}
	return ret, out
}

// sys is sysBufs for a call without buffers.
func sys(t *testing.T, a *client.Agent, nr int64, args ...uint64) int64 {
	t.Helper()
	req := wire.Syscall{Nr: nr}
	copy(req.Args[:], args)
	ret, _ := sysBufs(t, a, req)
	return ret
}

// spawn starts a worker of parent that must start.
func spawn(t *testing.T, parent *client.Agent, thread bool) (*client.Agent, wire.SpawnReply) {
	t.Helper()
	w, r, err := parent.Spawn(bounded(t), thread)
	if err != nil {
		t.Fatalf("spawn (thread %v): %v", thread, err)
	}
	return w, r
}

// waitExit waits until process pid has ended, whoever's child it is (the
// children of a killed command are init's). A pidfd is readable once the
// process exits, reaped or not.
func waitExit(t *testing.T, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return // reaped already
	}
	if err != nil {
		t.Fatalf("pidfd of %d: %v", pid, err)
	}
	defer unix.Close(fd)
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(callWait.Milliseconds()))
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			t.Fatalf("poll the pidfd of %d: %v", pid, err)
		case n == 0:
			t.Fatalf("process %d still runs", pid)
		}
		return
	}
}

// waitUntil checks cond every few milliseconds until it holds; the bound
// only guards against a hang.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(callWait)
	for !cond() {
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("still not true: %s", what)
		}
	}
}

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change credentials")
	}
}
