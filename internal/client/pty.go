package client

import (
	"context"
	"time"

	"github.com/provium/provium/internal/wire"
)

// Pty is a terminal in the guest with a shell on it.
type Pty struct {
	ctl *Agent // the control channel, where the terminal is driven
	id  int
	PID int // the shell's, in the guest
}

// ptyPoll is how long one read waits in the guest for output: short enough
// that a read in flight never holds up a session's end for long.
const ptyPoll = 2 * time.Second

// OpenPty starts argv (the guest's login shell when empty) on a new
// terminal of rows x cols, with the identity's credentials.
func (a *Agent) OpenPty(ctx context.Context, argv, env []string, rows, cols uint16) (*Pty, error) {
	var r wire.PtyOpened
	if _, err := a.do(ctx, wire.OpPtyOpen, wire.PtyOpen{Argv: argv, Env: env, Rows: rows, Cols: cols}, &r); err != nil {
		return nil, err
	}
	return &Pty{ctl: a.s.control(), id: r.ID, PID: r.PID}, nil
}

// Read waits for output. It returns what the shell wrote, and once the
// shell ended and all of it was read, its status with Exited set.
func (p *Pty) Read(ctx context.Context) (wire.PtyOutput, []byte, error) {
	var st wire.PtyOutput
	// The control channel is shared: these calls are not traced, a
	// terminal makes many.
	m, err := p.ctl.s.call(ctx, wire.ControlChannel, -1, wire.OpPtyRead, wire.PtyRead{ID: p.id, TimeoutMs: ptyPoll.Milliseconds()})
	if err != nil {
		return st, nil, err
	}
	if err := m.Decode(&st); err != nil {
		return st, nil, err
	}
	return st, m.Blob(0), nil
}

// Write sends input, as typed.
func (p *Pty) Write(ctx context.Context, b []byte) error {
	_, err := p.ctl.s.call(ctx, wire.ControlChannel, -1, wire.OpPtyWrite, wire.PtyID{ID: p.id}, b)
	return err
}

// Resize gives the terminal a new size.
func (p *Pty) Resize(ctx context.Context, rows, cols uint16) error {
	_, err := p.ctl.s.call(ctx, wire.ControlChannel, -1, wire.OpPtyResize, wire.PtyResize{ID: p.id, Rows: rows, Cols: cols})
	return err
}

// Close hangs up the terminal and kills its session. Closing a terminal
// whose shell ended is not an error.
func (p *Pty) Close(ctx context.Context) error {
	_, err := p.ctl.s.call(ctx, wire.ControlChannel, -1, wire.OpPtyClose, wire.PtyID{ID: p.id})
	return err
}
