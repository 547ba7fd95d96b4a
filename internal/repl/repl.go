// Package repl is Provium's interactive Lua prompt: line editing and
// history on a terminal in raw mode (the process's own, or one attached
// through a socket), multi-line input, and ^C that stops what a line
// runs without ending the prompt. What a line means is an Evaluator's.
package repl

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/chzyer/readline"
)

// Evaluator runs what the user types.
type Evaluator interface {
	// Eval runs src and returns its values as text, or incomplete when
	// src is the start of a chunk that more lines may finish.
	Eval(ctx context.Context, src string) (values []string, incomplete bool, err error)
}

// Terminal is a terminal in raw mode for the whole session: keys arrive
// as typed (^C as a byte).
type Terminal struct {
	In io.Reader
	// Out must end lines with "\r\n": see RawWriter.
	Out   io.Writer
	Width func() int // columns now
}

// Options shape the prompt.
type Options struct {
	Prompt  string // default "> "
	History string // file the history is kept in; "" keeps none
	// ShowError writes an evaluation error; default: its text.
	ShowError func(w io.Writer, err error)
}

const interruptKey = 0x03

// Run reads lines until ^D (or the input ends) and evaluates each
// chunk; ctx ends it too.
func Run(ctx context.Context, t Terminal, ev Evaluator, opts Options) error {
	if opts.Prompt == "" {
		opts.Prompt = "> "
	}
	if opts.ShowError == nil {
		opts.ShowError = func(w io.Writer, err error) { fmt.Fprintf(w, "error: %v\n", err) }
	}
	out := t.Out
	in := newInput(t.In)
	defer in.Close()
	width := t.Width
	if width == nil {
		width = func() int { return 80 }
	}
	rl, err := readline.NewEx(&readline.Config{
		Prompt:              opts.Prompt,
		HistoryFile:         opts.History,
		HistoryLimit:        1000,
		Stdin:               in,
		Stdout:              out,
		Stderr:              out,
		FuncIsTerminal:      func() bool { return true },
		FuncMakeRaw:         func() error { return nil },
		FuncExitRaw:         func() error { return nil },
		FuncGetWidth:        width,
		FuncOnWidthChanged:  func(func()) {},
		ForceUseInteractive: true,
		InterruptPrompt:     "^C",
		EOFPrompt:           "",
	})
	if err != nil {
		return fmt.Errorf("line editor: %w", err)
	}
	defer rl.Close()

	var chunk []string
	for ctx.Err() == nil {
		line, err := rl.Readline()
		switch {
		case errors.Is(err, readline.ErrInterrupt):
			// ^C drops what was typed so far, as a shell does.
			chunk = nil
			rl.SetPrompt(opts.Prompt)
			continue
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return fmt.Errorf("reading a line: %w", err)
		}
		if len(chunk) == 0 && strings.TrimSpace(line) == "" {
			continue
		}
		chunk = append(chunk, line)
		src := strings.Join(chunk, "\n")
		evalCtx, cancel := context.WithCancel(ctx)
		in.onInterrupt(cancel)
		values, incomplete, err := ev.Eval(evalCtx, src)
		in.onInterrupt(nil)
		cancel()
		if incomplete {
			rl.SetPrompt(continuation(opts.Prompt))
			continue
		}
		chunk = nil
		rl.SetPrompt(opts.Prompt)
		if err != nil {
			var buf bytes.Buffer
			opts.ShowError(&buf, err)
			out.Write(buf.Bytes())
			continue
		}
		if len(values) > 0 {
			fmt.Fprintln(out, strings.Join(values, "\t"))
		}
	}
	return ctx.Err()
}

// continuation is the prompt of a chunk's further lines.
func continuation(prompt string) string {
	const c = ">> "
	return c + strings.Repeat(" ", max(len(prompt)-len(c), 0))
}

// RunPiped evaluates the chunks of r, without a terminal, and writes
// their values to w and their errors with showError. ok is false when a
// chunk failed or r ended inside one.
func RunPiped(ctx context.Context, r io.Reader, w io.Writer, ev Evaluator, showError func(io.Writer, error)) (ok bool, err error) {
	ok = true
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, maxLine)
	var chunk []string
	for sc.Scan() {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		chunk = append(chunk, sc.Text())
		values, incomplete, err := ev.Eval(ctx, strings.Join(chunk, "\n"))
		if incomplete {
			continue
		}
		chunk = nil
		if err != nil {
			showError(w, err)
			ok = false
			continue
		}
		if len(values) > 0 {
			fmt.Fprintln(w, strings.Join(values, "\t"))
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("reading the input: %w", err)
	}
	if len(chunk) > 0 {
		fmt.Fprintf(w, "error: the input ended inside a chunk: %s\n", chunk[0])
		ok = false
	}
	return ok, nil
}

// maxLine bounds one line of piped input.
const maxLine = 1 << 20

// input relays the terminal's keys to the line editor, except while a
// chunk runs: then ^C stops the chunk and is not passed on.
type input struct {
	src io.Reader
	pr  *io.PipeReader
	pw  *io.PipeWriter

	mu        sync.Mutex
	interrupt func()
}

func newInput(src io.Reader) *input {
	pr, pw := io.Pipe()
	in := &input{src: src, pr: pr, pw: pw}
	go in.relay()
	return in
}

func (in *input) relay() {
	buf := make([]byte, 4096)
	for {
		n, err := in.src.Read(buf)
		b := buf[:n]
		in.mu.Lock()
		stop := in.interrupt
		in.mu.Unlock()
		if stop != nil && bytes.IndexByte(b, interruptKey) >= 0 {
			stop()
			b = bytes.ReplaceAll(b, []byte{interruptKey}, nil)
		}
		if len(b) > 0 {
			if _, werr := in.pw.Write(b); werr != nil {
				return
			}
		}
		if err != nil {
			in.pw.CloseWithError(err)
			return
		}
	}
}

// onInterrupt sets what ^C does from now on: nil passes it to the editor.
func (in *input) onInterrupt(f func()) {
	in.mu.Lock()
	in.interrupt = f
	in.mu.Unlock()
}

func (in *input) Read(p []byte) (int, error) { return in.pr.Read(p) }

// Close ends the relay; a goroutine still blocked reading the terminal
// ends at its next key or with the terminal.
func (in *input) Close() error { return in.pr.Close() }

// RawWriter returns a writer to w that turns "\n" into "\r\n", which a
// raw terminal needs to start the next line at its first column.
func RawWriter(w io.Writer) io.Writer { return &crlfWriter{w: w} }

type crlfWriter struct {
	mu   sync.Mutex
	w    io.Writer
	last byte
}

func (c *crlfWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []byte
	for _, b := range p {
		if b == '\n' && c.last != '\r' {
			out = append(out, '\r')
		}
		out = append(out, b)
		c.last = b
	}
	if _, err := c.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}
