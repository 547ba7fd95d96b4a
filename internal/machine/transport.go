package machine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"time"

	"github.com/mdlayher/vsock"

	"github.com/provium/provium/internal/qemu"
	"github.com/provium/provium/internal/wire/boot"
)

// ChooseTransport picks vsock where /dev/vhost-vsock is usable and
// virtio-serial otherwise; $PROVIUM_TRANSPORT (virtio-serial or vsock)
// overrides.
func ChooseTransport() boot.Transport {
	switch t := boot.Transport(os.Getenv("PROVIUM_TRANSPORT")); t {
	case boot.VirtioSerial, boot.Vsock:
		return t
	}
	f, err := os.OpenFile("/dev/vhost-vsock", os.O_RDWR, 0)
	if err != nil {
		return boot.VirtioSerial
	}
	f.Close()
	return boot.Vsock
}

// transport is the host end of the agent's byte stream for one QEMU.
type transport interface {
	device() qemu.Device
	// connect returns the stream once the guest side is reachable.
	connect(ctx context.Context, proc *qemu.Process) (net.Conn, error)
	close()
}

func newTransport(kind boot.Transport) (transport, error) {
	if kind == boot.Vsock {
		// Guest CIDs are host-wide; 3 is the first a guest may use.
		return &vsockTransport{cid: 3 + rand.Uint32N(1<<30)}, nil
	}
	// An abstract socket: no file to clean up, and no path length limit
	// however deep the run directory is.
	sock := fmt.Sprintf("@provium-%d-%x", os.Getpid(), rand.Uint64())
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("agent socket: %w", err)
	}
	return &serialTransport{sock: sock, ln: ln}, nil
}

// serialTransport is a virtio-serial port whose chardev QEMU connects to
// our listening socket at startup.
type serialTransport struct {
	sock string
	ln   net.Listener
}

func (t *serialTransport) device() qemu.Device {
	return qemu.VirtioSerialPort{Name: boot.PortName, SocketPath: t.sock}
}

func (t *serialTransport) close() { t.ln.Close() }

func (t *serialTransport) connect(ctx context.Context, proc *qemu.Process) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := t.ln.Accept()
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("agent socket: %w", r.err)
		}
		return r.c, nil
	case <-proc.Done():
		return nil, proc.Exit()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// vsockTransport dials the agent's vsock listener, which exists only once
// the guest has booted that far: it retries until then.
type vsockTransport struct {
	cid uint32
}

func (t *vsockTransport) device() qemu.Device { return qemu.Vsock{CID: t.cid} }

func (t *vsockTransport) close() {}

func (t *vsockTransport) connect(ctx context.Context, proc *qemu.Process) (net.Conn, error) {
	for {
		c, err := vsock.Dial(t.cid, boot.VsockPort, nil)
		if err == nil {
			return c, nil
		}
		select {
		case <-proc.Done():
			return nil, proc.Exit()
		case <-ctx.Done():
			return nil, fmt.Errorf("vsock cid %d port %d: %w (last: %v)", t.cid, boot.VsockPort, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
