package machine

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/provium/provium/internal/qemu"
)

// Debug gives a VM a gdbstub.
type Debug struct {
	// GDB starts QEMU's gdbstub on a free port of 127.0.0.1.
	GDB bool
	// Wait keeps the guest's CPUs stopped until the debugger continues
	// them; the boot's deadline starts only then.
	Wait bool
	// OnListen, if set, hears where the gdbstub of VM name listens, as
	// soon as QEMU does, and the gdb command line that debugs it.
	OnListen func(name, addr, gdb string)
}

// GDBCommand is the gdb command line that attaches to a gdbstub at addr,
// with the kernel's symbols when vmlinux names them.
func GDBCommand(vmlinux, addr string) string {
	if vmlinux == "" {
		vmlinux = "vmlinux"
	}
	return qemu.ShellQuote([]string{"gdb", vmlinux, "-ex", "target remote " + addr})
}

// gdbPollInterval is how often a VM waiting for its debugger is asked
// whether it runs.
const gdbPollInterval = 100 * time.Millisecond

// freeLocalAddr returns an address of 127.0.0.1 that nothing listened on
// a moment ago. Another process may take it before QEMU does; QEMU then
// fails to start, and the start is tried again with another port.
func freeLocalAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("gdbstub port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitDebugger waits until the guest's CPUs run: until the debugger
// attached and continued. There is no deadline but the caller's: a user
// may take their time in gdb.
func waitDebugger(ctx context.Context, proc *qemu.Process) error {
	t := time.NewTicker(gdbPollInterval)
	defer t.Stop()
	for {
		st, err := proc.Status(ctx)
		if err != nil {
			return fmt.Errorf("waiting for the debugger: %w", err)
		}
		if st == "running" {
			return nil
		}
		select {
		case <-t.C:
		case <-proc.Done():
			return proc.Exit()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
