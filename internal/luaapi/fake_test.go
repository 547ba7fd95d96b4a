package luaapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/provium/provium/internal/client"
	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/network"
	"github.com/provium/provium/internal/result"
	"github.com/provium/provium/internal/wire"
)

// fakeAgent is a guest agent good enough for the bindings: it speaks the
// real protocol over a net.Pipe and records what it was asked.
type fakeAgent struct {
	printk   func(title string) // a command "printk TITLE" makes the kernel report TITLE
	mu       sync.Mutex
	files    map[string][]byte
	execs    []execCall
	syscalls []syscallCall
	closed   []uint32 // channels closed with OpClose
	spawns   []wire.Spawn
	conn     net.Conn
}

type execCall struct {
	ch    uint32
	req   wire.Exec
	stdin string
}

type syscallCall struct {
	ch    uint32
	req   wire.Syscall
	blobs [][]byte
}

// cannedExec maps commands to what they print and their exit code.
var cannedExec = map[string]struct {
	stdout, stderr string
	code, signal   int
}{
	"echo out; echo err >&2; exit 3": {"out\n", "err\n", 3, 0},
	"true":                           {"", "", 0, 0},
	"lines":                          {"a\nb\n", "", 0, 0},
	"json-ok":                        {`{"a": 1, "b": [true, "x", null], "c": {"d": null}}`, "", 0, 0},
	"json-bad":                       {"  not-json\n", "", 0, 0},
	"json-fail":                      {"", "boom happened\n", 2, 0},
	"killed":                         {"", "", 137, 9},
}

func (a *fakeAgent) serve(conn net.Conn) {
	a.conn = conn
	c := wire.NewConn(conn, 0)
	for {
		env, err := c.Receive()
		if err != nil {
			return
		}
		reply, stop := a.handle(c, env)
		if stop {
			conn.Close()
			return
		}
		if reply != nil {
			c.Send(env.Channel, reply)
		}
	}
}

func must(m *wire.Message, err error) *wire.Message {
	if err != nil {
		panic(err)
	}
	return m
}

func (a *fakeAgent) handle(c *wire.Conn, env wire.Envelope) (*wire.Message, bool) {
	m := env.Msg
	a.mu.Lock()
	defer a.mu.Unlock()
	switch m.Op {
	case wire.OpHello:
		var h wire.Hello
		m.Decode(&h)
		c.SetEpoch(h.Epoch)
		return must(wire.Reply(m.ID, wire.HelloReply{Version: wire.Version, PID: 1})), false
	case wire.OpExec:
		var req wire.Exec
		m.Decode(&req)
		a.execs = append(a.execs, execCall{env.Channel, req, string(m.Blob(0))})
		if req.Cmd == "die" {
			return nil, true // the agent vanishes
		}
		if title, ok := strings.CutPrefix(req.Cmd, "printk "); ok && a.printk != nil {
			a.printk(title) // the kernel prints a report
		}
		out, ok := cannedExec[req.Cmd]
		if !ok {
			// Unknown commands echo their channel, so tests can see
			// which identity ran them.
			out.stdout = fmt.Sprintf("ch%d:%s\n", env.Channel, req.Cmd)
		}
		return must(wire.Reply(m.ID, wire.ExecResult{ExitCode: out.code, Signal: out.signal},
			[]byte(out.stdout), []byte(out.stderr))), false
	case wire.OpReadFile:
		var p wire.Path
		m.Decode(&p)
		data, ok := a.files[p.Path]
		if !ok {
			return wire.ErrorReply(m.ID, &wire.Error{Message: "open " + p.Path + ": no such file or directory", Errno: 2, ErrnoName: "ENOENT"}), false
		}
		return must(wire.Reply(m.ID, nil, data)), false
	case wire.OpWriteFile:
		var w wire.WriteFile
		m.Decode(&w)
		a.files[w.Path] = append([]byte(nil), m.Blob(0)...)
		return must(wire.Reply(m.ID, nil)), false
	case wire.OpSyscall:
		var req wire.Syscall
		m.Decode(&req)
		blobs := make([][]byte, len(m.Blobs))
		for i, b := range m.Blobs {
			blobs[i] = append([]byte(nil), b...)
		}
		a.syscalls = append(a.syscalls, syscallCall{env.Channel, req, blobs})
		return must(wire.Reply(m.ID, wire.SyscallResult{Ret: fakeRet(req)}, fakeSyscall(req, blobs)...)), false
	case wire.OpBackground:
		return must(wire.Reply(m.ID, wire.Job{ID: 7, PID: 1234})), false
	case wire.OpJobWait:
		var j wire.JobWait
		m.Decode(&j)
		if j.TimeoutMs == 0 {
			return must(wire.Reply(m.ID, wire.JobStatus{ExitCode: -1, Running: true}, []byte("so far"), nil)), false
		}
		return must(wire.Reply(m.ID, wire.JobStatus{ExitCode: 0}, []byte("done\n"), nil)), false
	case wire.OpJobKill:
		return must(wire.Reply(m.ID, wire.JobStatus{ExitCode: 137, Signal: 9}, nil, nil)), false
	case wire.OpSpawn:
		var s wire.Spawn
		m.Decode(&s)
		a.spawns = append(a.spawns, s)
		return must(wire.Reply(m.ID, wire.SpawnReply{PID: 100 + int(s.Channel), TID: 200 + int(s.Channel)})), false
	case wire.OpClose:
		a.closed = append(a.closed, env.Channel)
		return must(wire.Reply(m.ID, nil)), false
	case wire.OpDmesg:
		return must(wire.Reply(m.ID, nil, []byte("[0.0] Linux version 6.1 (x)\n[0.1] virtio: ok\n[0.2] Linux version again\n"))), false
	case wire.OpMountVFS, wire.OpPing:
		return must(wire.Reply(m.ID, nil)), false
	}
	return wire.ErrorReply(m.ID, &wire.Error{Message: "unsupported op " + m.Op.String()}), false
}

// fakeRet: getpid answers 42, everything else -ENOSYS.
func fakeRet(req wire.Syscall) int64 {
	if req.Nr == 39 {
		return 42
	}
	return -38 // -ENOSYS
}

// fakeSyscall "runs" a call: every pointer's fake address (0x1000*(k+1))
// is written into its buffer, and output pointers come back as their data
// or as bytes 'a'+k.
func fakeSyscall(req wire.Syscall, blobs [][]byte) [][]byte {
	out := make([][]byte, 0, len(req.Bufs))
	for i := range req.Bufs {
		out = append(out, append([]byte(nil), blobs[i]...))
	}
	data := len(req.Bufs)
	for k, p := range req.Ptrs {
		binary.LittleEndian.PutUint64(out[p.Buf][p.Offset:], uint64(0x1000*(k+1)))
		mem := bytes.Repeat([]byte{byte('a' + k)}, p.Len)
		if p.HasData {
			mem = make([]byte, p.Len)
			copy(mem, blobs[data])
			data++
		}
		if p.Output {
			out = append(out, mem)
		}
	}
	return out
}

func (a *fakeAgent) lastSyscall(t *testing.T) syscallCall {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.syscalls) == 0 {
		t.Fatal("no syscall reached the agent")
	}
	return a.syscalls[len(a.syscalls)-1]
}

func (a *fakeAgent) count() (execs, syscalls int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.execs), len(a.syscalls)
}

// fakeMachine is a Machine whose agent is a fakeAgent.
type fakeMachine struct {
	t     *testing.T
	label string
	agent *fakeAgent

	mu      sync.Mutex
	state   machine.State
	sess    *client.Session
	booted  machine.BootOptions
	console []string
	panicky bool
	noAddr  bool // its guest leaves network cards without an address
	reports []result.KernelReport
	drains  int
}

func newFakeMachine(t *testing.T, name string) *fakeMachine {
	m := &fakeMachine{
		t: t, label: name, state: machine.StateCreated,
		agent:   &fakeAgent{files: map[string][]byte{}},
		console: []string{"[    0.000] booting " + name, "[    1.000] provium agent ready"},
	}
	m.agent.printk = func(title string) {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.reports = append(m.reports, result.KernelReport{Kind: "warning", Title: title, Text: title + "\nCall Trace:\n foo+0x1/0x2", VM: name, Time: time.Now()})
	}
	return m
}

func (m *fakeMachine) KernelReports(n int) []result.KernelReport {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n >= len(m.reports) {
		return nil
	}
	return append([]result.KernelReport(nil), m.reports[n:]...)
}

func (m *fakeMachine) DrainConsole(context.Context) {
	m.mu.Lock()
	m.drains++
	m.mu.Unlock()
}

func (m *fakeMachine) ScanLeaks(context.Context) error { return nil }

func (m *fakeMachine) Settle(context.Context) []result.KernelReport { return nil }

func (m *fakeMachine) KernelIgnore() []string { return []string{"noise in"} }

func (m *fakeMachine) Name() string { return m.label }

func (m *fakeMachine) State() machine.State {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state == machine.StateRunning && m.sess != nil {
		select {
		case <-m.sess.Done():
			return machine.StateDead
		default:
		}
	}
	return m.state
}

func (m *fakeMachine) Boot(ctx context.Context, opts machine.BootOptions) error {
	if m.panicky {
		panic("fake machine exploded")
	}
	if st := m.State(); st != machine.StateCreated {
		return fmt.Errorf("boot %s: VM is in the wrong state (state: %s)", m.label, st)
	}
	// The guest's init gives each card its address, as the real one does.
	var trie strings.Builder
	for _, n := range opts.NICs {
		if !m.noAddr {
			fmt.Fprintf(&trie, "     |-- %s\n        /32 host LOCAL\n", strings.TrimSuffix(n.Addr, "/24"))
		}
	}
	m.agent.files["/proc/net/fib_trie"] = []byte(trie.String())
	host, guest := net.Pipe()
	go m.agent.serve(guest)
	sess, err := client.Open(ctx, host, nil)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.sess, m.state, m.booted = sess, machine.StateRunning, opts
	m.mu.Unlock()
	m.t.Cleanup(func() { sess.Close() })
	return nil
}

func (m *fakeMachine) Agent() *client.Agent {
	if m.State() != machine.StateRunning {
		return nil
	}
	return m.sess.Main()
}

func (m *fakeMachine) stop(state machine.State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state == machine.StateRunning || m.state == machine.StateCreated {
		m.state = state
	}
	if m.sess != nil {
		m.sess.Close()
	}
}

func (m *fakeMachine) Shutdown(ctx context.Context) error { m.stop("shut down"); return nil }
func (m *fakeMachine) Kill() error                        { m.stop("killed"); return nil }
func (m *fakeMachine) ConsoleTail(n int) []string {
	return m.console[max(0, len(m.console)-n):]
}

// fakeHost knows the profile "minimal" (and "panicky", whose machine
// panics on boot) and the fixture "base".
type fakeHost struct {
	t        *testing.T
	mu       sync.Mutex
	machines []*fakeMachine
	n        int
	nets     int
}

func (h *fakeHost) add(profile string) *fakeMachine {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n++
	m := newFakeMachine(h.t, fmt.Sprintf("%s#%d", profile, h.n))
	h.machines = append(h.machines, m)
	return m
}

func (h *fakeHost) Create(profile string) (Machine, error) {
	switch profile {
	case "minimal":
		return h.add(profile), nil
	case "nonet":
		m := h.add(profile)
		m.noAddr = true
		return m, nil
	case "panicky":
		m := h.add(profile)
		m.panicky = true
		return m, nil
	}
	return nil, fmt.Errorf("unknown profile %q (known: minimal, panicky)", profile)
}

func (h *fakeHost) Network(name string) (*network.Network, error) {
	h.mu.Lock()
	h.nets++
	index := h.nets
	h.mu.Unlock()
	n, err := network.New(name, index)
	if err == nil {
		h.t.Cleanup(func() { n.Close() })
	}
	return n, err
}

func (h *fakeHost) Fixture(ctx context.Context, name string) (*Resumed, error) {
	if name != "base" {
		return nil, errors.New("no fixture " + name)
	}
	m := h.add("base")
	if err := m.Boot(ctx, machine.BootOptions{}); err != nil {
		return nil, err
	}
	m.agent.files["/tmp/fixture-marker"] = []byte("base")
	return &Resumed{VMs: []ResumedVM{{Machine: m}}}, nil
}

func (h *fakeHost) machine(i int) *fakeMachine {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.machines[i]
}

// syncBuffer is a log the test may read while nothing writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// run is one script run in a fresh project directory.
type run struct {
	dir  string
	host *fakeHost
	log  *syncBuffer
	res  *result.File
}

// writeFile creates a file under the project directory.
func writeFile(t *testing.T, dir, name, src string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// runLua runs src as tests/t.lua of a new project; edit adjusts the
// options (context, fixture mode...).
func runLua(t *testing.T, src string, edit ...func(*Options, *context.Context)) *run {
	t.Helper()
	dir := t.TempDir()
	r := &run{dir: dir, host: &fakeHost{t: t}, log: &syncBuffer{}}
	path := writeFile(t, dir, "tests/t.lua", src)
	opts := Options{Path: path, StartDir: dir, Host: r.host, Log: r.log}
	ctx := context.Background()
	for _, e := range edit {
		e(&opts, &ctx)
	}
	r.res = Run(ctx, opts)
	return r
}

// mustPass fails the test with every failure of the run.
func (r *run) mustPass(t *testing.T) {
	t.Helper()
	if r.res.Failure != nil {
		t.Errorf("file failed: %s\n%s", r.res.Failure.Message, r.res.Failure.Traceback)
	}
	for _, st := range r.res.Subtests {
		if st.Status == result.Failed {
			t.Errorf("sub-test %q failed: %s\n%s", st.Name, st.Failure.Message, st.Failure.Traceback)
		}
	}
	if r.res.Status != result.Passed {
		t.Errorf("status %v, want ok; log:\n%s", r.res.Status, r.log.String())
	}
}

// failure returns the failure of the named sub-test.
func (r *run) failure(t *testing.T, name string) *result.Failure {
	t.Helper()
	for _, st := range r.res.Subtests {
		if st.Name == name {
			if st.Failure == nil {
				t.Fatalf("sub-test %q did not fail (status %v)", name, st.Status)
			}
			return st.Failure
		}
	}
	t.Fatalf("no sub-test %q; log:\n%s", name, r.log.String())
	return nil
}

func wantContains(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%q does not contain %q", got, w)
		}
	}
}

func luaString(s string) lua.LValue { return lua.LString(s) }
