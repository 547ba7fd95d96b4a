// Package attach lets another terminal into the VMs of a paused test: the
// run that holds the VMs listens on a unix socket in its run directory,
// and "provium attach" connects to it and gets a shell in a VM, the run
// relaying between the socket and a terminal in the guest, or a Lua
// prompt on the VM that the run itself serves.
//
// The stream is a JSON request line, a JSON answer line, then frames of
// one kind byte, a 4-byte big-endian length and at most maxFrame bytes.
package attach

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/provium/provium/internal/client"
	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/termlink"
	"github.com/provium/provium/internal/wire"
)

// SocketName is the socket's name in the run directory.
const SocketName = "attach.sock"

// Frame kinds.
const (
	kindInput  = 'i' // attacher -> run: keystrokes
	kindResize = 'z' // attacher -> run: rows u16, cols u16
	kindOutput = 'o' // run -> attacher: terminal output
	kindExit   = 'x' // run -> attacher: JSON wire.PtyOutput, the last frame
)

// maxFrame bounds a frame's payload; maxLine the request and answer lines.
const (
	maxFrame = 64 << 10
	maxLine  = 4 << 10
)

// request is what an attacher asks for.
type request struct {
	File string `json:"file"`
	VM   string `json:"vm,omitempty"`
	Rows uint16 `json:"rows"`
	Cols uint16 `json:"cols"`
	Term string `json:"term,omitempty"`
	REPL bool   `json:"repl,omitempty"` // a Lua prompt instead of a shell
}

// answer says which VM the shell is in, or why there is none.
type answer struct {
	VM    string `json:"vm,omitempty"`
	Error string `json:"error,omitempty"`
}

func writeFrame(w io.Writer, kind byte, p []byte) error {
	hdr := make([]byte, 5, 5+len(p))
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p)))
	_, err := w.Write(append(hdr, p...))
	return err
}

func readFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes over the limit of %d", n, maxFrame)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return hdr[0], p, nil
}

func readLine(r *bufio.Reader, v any) error {
	var line []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			return err
		}
		if b == '\n' {
			break
		}
		if len(line) >= maxLine {
			return fmt.Errorf("line over %d bytes", maxLine)
		}
		line = append(line, b)
	}
	return json.Unmarshal(line, v)
}

func writeLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// paused is a file waiting for the user, with its running VMs.
type paused struct {
	file string // as the report shows it
	vms  []*machine.VM
	done chan struct{} // closed to let the file go on
	once sync.Once
}

func (p *paused) resume() { p.once.Do(func() { close(p.done) }) }

// Server is the run's side: it holds at most one paused file at a time,
// which attachers reach by the name the report gives it.
type Server struct {
	path string
	ln   net.Listener

	mu  sync.Mutex
	cur *paused
	// gate lets one file pause at a time; the others wait their turn.
	gate chan struct{}
	repl REPL
}

// REPL serves a Lua prompt on vm to a terminal in raw mode: keys come
// from in, output (lines ending "\r\n") goes to out, width is its
// columns now. It returns when the user ends the prompt or ctx ends.
type REPL func(ctx context.Context, vm *machine.VM, in io.Reader, out io.Writer, width func() int) error

// Listen starts the server of the run in runDir; repl serves the
// attachers who ask for a prompt (nil: none can).
func Listen(runDir string, repl REPL) (*Server, error) {
	path := filepath.Join(runDir, SocketName)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("attach socket: %w", err)
	}
	s := &Server{path: path, ln: ln, gate: make(chan struct{}, 1), repl: repl}
	go s.serve()
	return s, nil
}

// Close stops listening and removes the socket.
func (s *Server) Close() {
	s.ln.Close()
	os.Remove(s.path)
}

// Pause holds file, whose VMs are vms, until the user continues it (cont
// receives), an attached shell ends, or ctx ends. announce runs once the
// file is the one paused.
func (s *Server) Pause(ctx context.Context, file string, vms []*machine.VM, cont <-chan struct{}, announce func()) {
	select {
	case s.gate <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-s.gate }()
	p := &paused{file: file, vms: vms, done: make(chan struct{})}
	s.mu.Lock()
	s.cur = p
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.cur = nil
		s.mu.Unlock()
	}()
	announce()
	select {
	case <-p.done:
	case <-cont:
	case <-ctx.Done():
	}
}

func (s *Server) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.handle(c)
	}
}

// find returns the paused file that name designates: its path as
// reported, or its base name.
func (s *Server) find(name string) (*paused, error) {
	s.mu.Lock()
	p := s.cur
	s.mu.Unlock()
	if p == nil {
		return nil, errors.New("no test of this run is paused now")
	}
	name = filepath.Clean(name)
	if name != p.file && name != filepath.Base(p.file) && !strings.HasSuffix(p.file, "/"+name) {
		return nil, fmt.Errorf("%s is not paused; %s is", name, p.file)
	}
	return p, nil
}

func (s *Server) handle(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	var req request
	if err := readLine(br, &req); err != nil {
		writeLine(c, answer{Error: "bad request: " + err.Error()})
		return
	}
	p, err := s.find(req.File)
	if err != nil {
		writeLine(c, answer{Error: err.Error()})
		return
	}
	vm, err := pick(p.vms, req.VM)
	if err != nil {
		writeLine(c, answer{Error: err.Error()})
		return
	}
	a := vm.Agent()
	if a == nil {
		writeLine(c, answer{Error: fmt.Sprintf("%s is %s", vm.Name(), vm.State())})
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if req.REPL {
		s.serveREPL(ctx, cancel, c, br, req, vm)
	} else {
		s.serveShell(ctx, cancel, c, br, req, vm, a)
	}
	// The user is done with the VM: the test goes on.
	p.resume()
}

func (s *Server) serveShell(ctx context.Context, cancel func(), c net.Conn, br *bufio.Reader, req request, vm *machine.VM, a *client.Agent) {
	term := req.Term
	if term == "" || strings.ContainsAny(term, " \t\n") {
		term = "xterm"
	}
	pty, err := a.OpenPty(ctx, nil, []string{"TERM=" + term, "PS1=[" + vm.Name() + ` \w]\$ `, "HOME=/root"}, req.Rows, req.Cols)
	if err != nil {
		writeLine(c, answer{Error: err.Error()})
		return
	}
	if err := writeLine(c, answer{VM: vm.Name()}); err != nil {
		pty.Close(ctx)
		return
	}
	in, sizes := relayInput(br, cancel)
	st, _ := termlink.Run(ctx, pty, termlink.Local{In: in, Out: frameWriter{c, kindOutput}, Sizes: sizes})
	b, _ := json.Marshal(st)
	writeFrame(c, kindExit, b)
}

func (s *Server) serveREPL(ctx context.Context, cancel func(), c net.Conn, br *bufio.Reader, req request, vm *machine.VM) {
	if s.repl == nil {
		writeLine(c, answer{Error: "this run serves no Lua prompt"})
		return
	}
	if err := writeLine(c, answer{VM: vm.Name()}); err != nil {
		return
	}
	in, sizes := relayInput(br, cancel)
	var cols atomic.Int32
	cols.Store(int32(max(req.Cols, 1)))
	go func() {
		for {
			select {
			case sz := <-sizes:
				cols.Store(int32(max(sz.Cols, 1)))
			case <-ctx.Done():
				return
			}
		}
	}()
	st := wire.PtyOutput{}
	out := frameWriter{c, kindOutput}
	if err := s.repl(ctx, vm, in, out, func() int { return int(cols.Load()) }); err != nil && ctx.Err() == nil {
		fmt.Fprintf(out, "provium: %v\r\n", err)
		st.ExitCode = 1
	}
	b, _ := json.Marshal(st)
	writeFrame(c, kindExit, b)
}

// relayInput reads the attacher's frames: keystrokes come out of in,
// window sizes out of sizes. When the attacher goes away, cancel runs
// and in ends.
func relayInput(br *bufio.Reader, cancel func()) (io.Reader, <-chan termlink.Size) {
	in, inW := io.Pipe()
	sizes := make(chan termlink.Size, 1)
	go func() {
		defer inW.Close()
		for {
			kind, b, err := readFrame(br)
			if err != nil {
				// The attacher went away: hang its shell up.
				cancel()
				return
			}
			switch kind {
			case kindInput:
				inW.Write(b)
			case kindResize:
				if len(b) == 4 {
					select {
					case sizes <- termlink.Size{Rows: binary.BigEndian.Uint16(b), Cols: binary.BigEndian.Uint16(b[2:])}:
					default:
					}
				}
			}
		}
	}()
	return in, sizes
}

// pick is the VM named name, or the first when name is "".
func pick(vms []*machine.VM, name string) (*machine.VM, error) {
	if len(vms) == 0 {
		return nil, errors.New("the paused test has no running VM")
	}
	if name == "" {
		return vms[0], nil
	}
	var names []string
	for _, v := range vms {
		if v.Name() == name || strings.SplitN(v.Name(), "#", 2)[0] == name && len(vms) == 1 {
			return v, nil
		}
		names = append(names, v.Name())
	}
	return nil, fmt.Errorf("no VM %q in the paused test (it has %s)", name, strings.Join(names, ", "))
}

type frameWriter struct {
	w    io.Writer
	kind byte
}

func (f frameWriter) Write(p []byte) (int, error) {
	for rest := p; len(rest) > 0; {
		n := min(len(rest), maxFrame)
		if err := writeFrame(f.w, f.kind, rest[:n]); err != nil {
			return len(p) - len(rest), err
		}
		rest = rest[n:]
	}
	return len(p), nil
}

// Dial connects to the run in runDir and opens a shell (or, with repl,
// a Lua prompt) on vm ("" for the first) of the paused file. It returns
// the VM's name.
func Dial(runDir, file, vm string, repl bool, size termlink.Size, term string) (*Conn, string, error) {
	path := filepath.Join(runDir, SocketName)
	c, err := net.Dial("unix", path)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, "", fmt.Errorf("run %s is not running any more (no one listens on %s)", runDir, path)
		}
		return nil, "", err
	}
	if err := writeLine(c, request{File: file, VM: vm, Rows: size.Rows, Cols: size.Cols, Term: term, REPL: repl}); err != nil {
		c.Close()
		return nil, "", err
	}
	br := bufio.NewReader(c)
	var a answer
	if err := readLine(br, &a); err != nil {
		c.Close()
		return nil, "", fmt.Errorf("run %s: %w", runDir, err)
	}
	if a.Error != "" {
		c.Close()
		return nil, "", fmt.Errorf("run %s: %s", runDir, a.Error)
	}
	return &Conn{c: c, r: br}, a.VM, nil
}

// Conn is an attached shell; it is a termlink.Remote.
type Conn struct {
	c  net.Conn
	r  *bufio.Reader
	mu sync.Mutex // one frame at a time
}

func (c *Conn) Read(ctx context.Context) (wire.PtyOutput, []byte, error) {
	kind, b, err := readFrame(c.r)
	if err != nil {
		return wire.PtyOutput{}, nil, fmt.Errorf("the run closed the connection: %w", err)
	}
	if kind == kindExit {
		var st wire.PtyOutput
		if err := json.Unmarshal(b, &st); err != nil {
			return st, nil, err
		}
		st.Exited = true
		return st, nil, nil
	}
	return wire.PtyOutput{}, b, nil
}

func (c *Conn) Write(ctx context.Context, b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return writeFrame(c.c, kindInput, b)
}

func (c *Conn) Resize(ctx context.Context, rows, cols uint16) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b [4]byte
	binary.BigEndian.PutUint16(b[:], rows)
	binary.BigEndian.PutUint16(b[2:], cols)
	return writeFrame(c.c, kindResize, b[:])
}

func (c *Conn) Close(ctx context.Context) error { return c.c.Close() }
