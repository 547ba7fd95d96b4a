package luaapi

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/provium/provium/internal/machine"
)

func evalOK(t *testing.T, s *Session, src string) []string {
	t.Helper()
	v, incomplete, err := s.Eval(context.Background(), src)
	if err != nil || incomplete {
		t.Fatalf("Eval(%q): %v, incomplete %v", src, err, incomplete)
	}
	return v
}

func TestSessionEval(t *testing.T) {
	h := &fakeHost{t: t}
	var prints []string
	s := NewSession(context.Background(), Options{Path: "repl", Host: h, Print: func(l string) { prints = append(prints, l) }})
	name, err := s.Ready(context.Background(), "", "minimal")
	if err != nil || name != "minimal#1" {
		t.Fatalf("Ready: %q, %v", name, err)
	}
	for _, c := range []struct {
		src  string
		want []string
	}{
		{`1 + 2`, []string{"3"}},
		{`"a\0b", nil, true`, []string{`"a\x00b"`, "nil", "true"}},
		{`x = {1, k = "v"}`, nil},
		{`x`, []string{`{1, k = "v"}`}},
		{`vm:exec("echo hi").stdout`, []string{`"ch1:echo hi\n"`}},
		{`print("p", 1)`, nil},
	} {
		if got := evalOK(t, s, c.src); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Eval(%q) = %q, want %q", c.src, got, c.want)
		}
	}
	if !reflect.DeepEqual(prints, []string{"p\t1"}) {
		t.Errorf("print heard %q", prints)
	}

	// A chunk over several lines is incomplete until its end.
	for _, src := range []string{"function f(n)", "function f(n)\n  return", "s = [[open", "if x then"} {
		if _, incomplete, err := s.Eval(context.Background(), src); !incomplete || err != nil {
			t.Errorf("Eval(%q): incomplete %v, %v; want incomplete", src, incomplete, err)
		}
	}
	evalOK(t, s, "function f(n)\n  return 2 * n\nend")
	if got := evalOK(t, s, "f(21)"); !reflect.DeepEqual(got, []string{"42"}) {
		t.Errorf("f(21) = %q", got)
	}

	// Errors are the caller's to show, and the session lives on.
	_, _, err = s.Eval(context.Background(), `vm:read_file("/nope")`)
	var ee *EvalError
	if !errors.As(err, &ee) || !strings.Contains(ee.Failure.Message, "repl:1: vm:read_file on minimal#1") || ee.Failure.Traceback != "" {
		t.Errorf("read_file of a missing file: %v (traceback %q)", err, tracebackOf(ee))
	}
	if _, _, err := s.Eval(context.Background(), `x = = 1`); err == nil || !strings.Contains(err.Error(), "repl:1:") {
		t.Errorf("syntax error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Eval(ctx, `while true do end`); !errors.Is(err, ErrInterrupted) {
		t.Errorf("a cancelled chunk: %v, want ErrInterrupted", err)
	}
	if got := evalOK(t, s, "f(1)"); !reflect.DeepEqual(got, []string{"2"}) {
		t.Errorf("after an interrupted chunk, f(1) = %q", got)
	}

	s.Close()
	if st := h.machine(0).State(); st == machine.StateRunning {
		t.Errorf("the session's VM is %s after Close", st)
	}
}

func tracebackOf(e *EvalError) string {
	if e == nil {
		return ""
	}
	return e.Failure.Traceback
}

func TestSessionRunFileDefersSubtests(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "t.lua")
	os.WriteFile(path, []byte(`
local vm = provium.create("minimal")
vm:boot()
setup_done = true
test("passes", function() assert_eq(vm:exec("true").exit_code, 0) end)
test("fails", function() assert_eq(1, 2) end)
`), 0o644)
	h := &fakeHost{t: t}
	s := NewSession(context.Background(), Options{Path: "t.lua", StartDir: dir, Host: h})
	defer s.Close()
	names, err := s.RunFile(context.Background(), path)
	if err != nil || !reflect.DeepEqual(names, []string{"passes", "fails"}) {
		t.Fatalf("RunFile: %q, %v", names, err)
	}
	if execs, _ := h.machine(0).agent.count(); execs != 0 {
		t.Errorf("the sub-tests ran at load: %d execs", execs)
	}
	if name, err := s.Ready(context.Background(), "", "minimal"); err != nil || name != "minimal#1" {
		t.Errorf("Ready after the file: %q, %v; want the file's VM", name, err)
	}
	if got := evalOK(t, s, `tests.passes()`); !reflect.DeepEqual(got, []string{`"ok"`}) {
		t.Errorf("tests.passes() = %q", got)
	}
	if got := evalOK(t, s, `tests.fails()`); len(got) != 1 || !strings.HasPrefix(got[0], `"FAIL: t.lua:6: `) {
		t.Errorf("tests.fails() = %q", got)
	}
	if got := evalOK(t, s, `setup_done`); !reflect.DeepEqual(got, []string{"true"}) {
		t.Errorf("setup_done = %q", got)
	}
}

func TestSessionBindLeavesTheVM(t *testing.T) {
	h := &fakeHost{t: t}
	m, _ := h.Create("minimal")
	if err := m.Boot(context.Background(), machine.BootOptions{}); err != nil {
		t.Fatal(err)
	}
	s := NewSession(context.Background(), Options{Path: "repl", Host: h})
	s.Bind("vm", m)
	if got := evalOK(t, s, `vm:exec("x").exit_code`); !reflect.DeepEqual(got, []string{"0"}) {
		t.Errorf("exec on a bound VM: %q", got)
	}
	s.Close()
	if st := m.State(); st != machine.StateRunning {
		t.Errorf("a bound VM is %s after Close; the session does not own it", st)
	}
}
