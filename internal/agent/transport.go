package agent

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mdlayher/vsock"

	"github.com/provium/provium/internal/wire/boot"
)

const (
	// openWait bounds the search for the transport at start: the
	// virtio drivers may still be probing.
	openWait = 10 * time.Second
	// openPoll is the interval of that search.
	openPoll = 5 * time.Millisecond
	// reconnectPoll is how often a disconnected port is read again.
	reconnectPoll = 10 * time.Millisecond
)

// Main is the agent process: it opens the transport the kernel command
// line names (see package boot) and serves it forever. It exits only when
// the transport cannot be opened or fails for good; the guest's init then
// restarts it.
func Main() {
	logger := log.New(os.Stderr, boot.AgentName+": ", 0)
	params, errs := boot.Read(boot.CmdlinePath)
	for _, err := range errs {
		logger.Print(err)
	}
	a := New(Config{Logger: logger, Restarted: restartedFrom(os.Args[1:])})
	var err error
	switch params.Transport {
	case boot.Vsock:
		err = serveVsock(a, params.VsockPort)
	default:
		err = serveVirtioSerial(a, params.Port)
	}
	logger.Print(err)
	os.Exit(1)
}

// RestartedFlag passes an agent how the one before it ended: the guest's
// init, which restarts agents, puts it on the new one's command line.
const RestartedFlag = "--restarted="

func restartedFrom(args []string) string {
	for _, a := range args {
		if r, ok := strings.CutPrefix(a, RestartedFlag); ok {
			return r
		}
	}
	return ""
}

// serveVirtioSerial serves the virtio-serial port called name.
func serveVirtioSerial(a *Agent, name string) error {
	f, err := openPort("/sys/class/virtio-ports", "/dev", name, openWait)
	if err != nil {
		return err
	}
	return a.Serve(&reconnectingPort{port: f, log: a.log})
}

// openPort finds the virtio-serial port called name — the directory in
// sysDir whose "name" file says so — and opens its device in devDir. Both
// may take a moment to appear, so it retries until timeout.
func openPort(sysDir, devDir, name string, timeout time.Duration) (*os.File, error) {
	deadline := time.Now().Add(timeout)
	for {
		path, err := findPort(sysDir, devDir, name)
		if err == nil {
			var f *os.File
			if f, err = os.OpenFile(path, os.O_RDWR, 0); err == nil {
				return f, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("virtio-serial port %q: not usable after %v: %w", name, timeout, err)
		}
		time.Sleep(openPoll)
	}
}

var errNoPort = errors.New("no such port")

func findPort(sysDir, devDir, name string) (string, error) {
	dirs, err := filepath.Glob(filepath.Join(sysDir, "*", "name"))
	if err != nil {
		return "", err
	}
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err == nil && strings.TrimSpace(string(b)) == name {
			return filepath.Join(devDir, filepath.Base(filepath.Dir(p))), nil
		}
	}
	return "", errNoPort
}

// reconnectingPort is a virtio-serial port seen as a stream that never
// ends. While no host is connected a read returns 0 bytes at once; that is
// not the end of the stream: after a fixture snapshot is resumed in a new
// QEMU, a new host connects to the same port and the agent must simply go
// on reading.
type reconnectingPort struct {
	port   io.ReadWriter
	log    *log.Logger
	failed bool // a read error was logged
}

func (p *reconnectingPort) Read(b []byte) (int, error) {
	for {
		n, err := p.port.Read(b)
		if n > 0 {
			p.failed = false
			return n, nil
		}
		if err != nil && !errors.Is(err, io.EOF) && !p.failed {
			p.failed = true
			p.log.Printf("read from host: %v", err)
		}
		time.Sleep(reconnectPoll)
	}
}

// Write errors (no host connected) reach Agent.reply, which logs them; they
// are never fatal.
func (p *reconnectingPort) Write(b []byte) (int, error) { return p.port.Write(b) }

// serveVsock listens on a vsock port. Every connection starts a new stream
// and replaces the previous one, which is closed: there is one host.
func serveVsock(a *Agent, port uint32) error {
	var (
		l   *vsock.Listener
		err error
	)
	deadline := time.Now().Add(openWait)
	for {
		if l, err = vsock.Listen(port, nil); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vsock port %d: %w", port, err)
		}
		time.Sleep(openPoll)
	}
	defer l.Close()
	var prev net.Conn
	for {
		c, err := l.Accept()
		if err != nil {
			return fmt.Errorf("vsock port %d: %w", port, err)
		}
		if prev != nil {
			prev.Close()
		}
		prev = c
		go a.Serve(c)
	}
}
