package repl

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeEval treats a chunk as incomplete until it holds "end", blocks on
// "slow" until stopped, and returns what it was given.
type fakeEval struct {
	mu      sync.Mutex
	chunks  []string
	started chan struct{}
}

func (f *fakeEval) Eval(ctx context.Context, src string) ([]string, bool, error) {
	if strings.HasPrefix(src, "do") && !strings.Contains(src, "end") {
		return nil, true, nil
	}
	f.mu.Lock()
	f.chunks = append(f.chunks, src)
	f.mu.Unlock()
	if src == "slow" {
		close(f.started)
		<-ctx.Done()
		return nil, false, ctx.Err()
	}
	if src == "bad" {
		return nil, false, errors.New("it is bad")
	}
	return []string{"<" + strings.ReplaceAll(src, "\n", "|") + ">"}, false, nil
}

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

func waitFor(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output:\n%q", want, out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRun(t *testing.T) {
	in, keys := io.Pipe()
	out := &syncBuffer{}
	ev := &fakeEval{started: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), Terminal{In: in, Out: RawWriter(out)}, ev, Options{})
	}()
	typeKeys := func(s string) {
		if _, err := keys.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	typeKeys("1 + 1\r")
	waitFor(t, out, "<1 + 1>\r\n")
	typeKeys("do x\r")
	waitFor(t, out, ">> ")
	typeKeys("end\r")
	waitFor(t, out, "<do x|end>")
	typeKeys("bad\r")
	waitFor(t, out, "error: it is bad\r\n")

	// ^C while typing drops the line; while a chunk runs, stops it.
	typeKeys("dropped\x03")
	typeKeys("slow\r")
	<-ev.started
	typeKeys("\x03")
	typeKeys("after\r")
	waitFor(t, out, "<after>")
	typeKeys("\x04")
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after ^D: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("^D did not end the prompt")
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	want := []string{"1 + 1", "do x\nend", "bad", "slow", "after"}
	if strings.Join(ev.chunks, ";") != strings.Join(want, ";") {
		t.Errorf("evaluated %q, want %q", ev.chunks, want)
	}
}

func TestRunPiped(t *testing.T) {
	var out bytes.Buffer
	ev := &fakeEval{started: make(chan struct{})}
	show := func(w io.Writer, err error) { io.WriteString(w, "E: "+err.Error()+"\n") }
	ok, err := RunPiped(context.Background(), strings.NewReader("a\ndo\nb end\nbad\nc\n"), &out, ev, show)
	if err != nil || ok {
		t.Errorf("RunPiped with a failing chunk: ok %v, %v", ok, err)
	}
	if want := "<a>\n<do|b end>\nE: it is bad\n<c>\n"; out.String() != want {
		t.Errorf("RunPiped wrote %q, want %q", out.String(), want)
	}
	out.Reset()
	ok, _ = RunPiped(context.Background(), strings.NewReader("a\ndo\n"), &out, ev, show)
	if ok || !strings.Contains(out.String(), "ended inside a chunk: do") {
		t.Errorf("input ending inside a chunk: ok %v, %q", ok, out.String())
	}
}

func TestRawWriter(t *testing.T) {
	var b bytes.Buffer
	w := RawWriter(&b)
	io.WriteString(w, "a\nb\r\n")
	io.WriteString(w, "\nc")
	if b.String() != "a\r\nb\r\n\r\nc" {
		t.Errorf("RawWriter wrote %q", b.String())
	}
}
