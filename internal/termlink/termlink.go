// Package termlink joins a local terminal, or any pair of byte streams,
// to a terminal in a guest: keystrokes one way, output the other, and
// the window's size following the local one.
package termlink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/provium/provium/internal/wire"
)

// Remote is a terminal in the guest; *client.Pty is one.
type Remote interface {
	Read(ctx context.Context) (wire.PtyOutput, []byte, error)
	Write(ctx context.Context, b []byte) error
	Resize(ctx context.Context, rows, cols uint16) error
	Close(ctx context.Context) error
}

// Size is a terminal's size in characters.
type Size struct{ Rows, Cols uint16 }

// Local is the user's side: what they type, where output goes, and the
// sizes of their window, each time it changes (nil: a fixed size).
type Local struct {
	In    io.Reader
	Out   io.Writer
	Sizes <-chan Size
}

// maxInput bounds one write to the guest: keystrokes come a few at a
// time, a paste in pieces.
const maxInput = 4 << 10

// Run joins local to remote until the guest's shell ends, and returns how
// it ended. Cancelling ctx hangs the remote terminal up. Run stops
// forwarding input at local.In's end, but waits for the shell: a script
// piped in ends with its own "exit".
func Run(ctx context.Context, remote Remote, local Local) (wire.PtyOutput, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	go func() {
		buf := make([]byte, maxInput)
		for {
			n, err := local.In.Read(buf)
			if n > 0 {
				if werr := remote.Write(ctx, buf[:n]); werr != nil {
					errs <- fmt.Errorf("terminal input: %w", werr)
					return
				}
			}
			if err != nil {
				return // EOF or a closed input: the guest decides when it ends
			}
		}
	}()
	if local.Sizes != nil {
		go func() {
			for {
				select {
				case s, ok := <-local.Sizes:
					if !ok {
						return
					}
					if err := remote.Resize(ctx, s.Rows, s.Cols); err != nil {
						errs <- fmt.Errorf("terminal size: %w", err)
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	for {
		st, out, err := remote.Read(ctx)
		if len(out) > 0 {
			if _, werr := local.Out.Write(out); werr != nil {
				remote.Close(context.WithoutCancel(ctx))
				return st, fmt.Errorf("terminal output: %w", werr)
			}
		}
		if err == nil && st.Exited {
			return st, nil
		}
		if err == nil {
			select {
			case err = <-errs:
			default:
				continue
			}
		}
		remote.Close(context.WithoutCancel(ctx))
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		return st, err
	}
}

// Terminal is the process's own terminal, in raw mode while a guest's
// shell uses it.
type Terminal struct {
	in, out *os.File
	state   *term.State
	stop    func()
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// Open puts the terminal of in and out into raw mode: every key goes to
// the guest as typed, ^C included. Restore undoes it.
func Open(in, out *os.File) (*Terminal, error) {
	if !IsTerminal(in) {
		return nil, errors.New("standard input is not a terminal")
	}
	st, err := term.MakeRaw(int(in.Fd()))
	if err != nil {
		return nil, fmt.Errorf("raw terminal: %w", err)
	}
	return &Terminal{in: in, out: out, state: st, stop: func() {}}, nil
}

// Size is the window's size now; 24x80 when it cannot be read.
func (t *Terminal) Size() Size {
	for _, f := range []*os.File{t.out, t.in} {
		if cols, rows, err := term.GetSize(int(f.Fd())); err == nil && rows > 0 && cols > 0 {
			return Size{Rows: uint16(min(rows, 0xffff)), Cols: uint16(min(cols, 0xffff))}
		}
	}
	return Size{Rows: 24, Cols: 80}
}

// Sizes sends the window's size each time it changes (SIGWINCH), until
// Restore.
func (t *Terminal) Sizes() <-chan Size {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGWINCH)
	out := make(chan Size, 1)
	done := make(chan struct{})
	t.stop = func() {
		signal.Stop(sig)
		close(done)
	}
	go func() {
		for {
			select {
			case <-sig:
			case <-done:
				return
			}
			select {
			case out <- t.Size():
			case <-done:
				return
			}
		}
	}()
	return out
}

// Restore gives the terminal back as it was.
func (t *Terminal) Restore() {
	t.stop()
	term.Restore(int(t.in.Fd()), t.state)
}
