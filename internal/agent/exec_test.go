package agent

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/provium/provium/internal/wire"
)

func TestExec(t *testing.T) {
	h := newSession(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name           string
		req            wire.Exec
		stdin          string
		want           wire.ExecResult
		stdout, stderr string
	}{
		{"exit code and output", wire.Exec{Cmd: "echo out; echo err >&2; exit 3"}, "", wire.ExecResult{ExitCode: 3}, "out\n", "err\n"},
		{"stdin", wire.Exec{Cmd: "cat"}, "some input", wire.ExecResult{}, "some input", ""},
		{"no stdin", wire.Exec{Cmd: "cat"}, "", wire.ExecResult{}, "", ""},
		{"env", wire.Exec{Cmd: `echo "$A $B"`, Env: []string{"A=1", "B=two"}}, "", wire.ExecResult{}, "1 two\n", ""},
		{"env overrides", wire.Exec{Cmd: `echo "$HOME"`, Env: []string{"HOME=/elsewhere"}}, "", wire.ExecResult{}, "/elsewhere\n", ""},
		{"cwd", wire.Exec{Cmd: "pwd", Cwd: dir}, "", wire.ExecResult{}, dir + "\n", ""},
		{"missing command", wire.Exec{Cmd: "/no/such/command"}, "", wire.ExecResult{ExitCode: 127}, "", "*"},
		{"signal", wire.Exec{Cmd: "kill -TERM $$"}, "", wire.ExecResult{ExitCode: 128 + 15, Signal: 15}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, stdout, stderr := h.exec(wire.MainChannel, tc.req, []byte(tc.stdin))
			if res != tc.want {
				t.Errorf("result = %+v, want %+v", res, tc.want)
			}
			if stdout != tc.stdout {
				t.Errorf("stdout = %q, want %q", stdout, tc.stdout)
			}
			if tc.stderr == "*" {
				if stderr == "" {
					t.Error("stderr is empty, want the shell's complaint")
				}
			} else if stderr != tc.stderr {
				t.Errorf("stderr = %q, want %q", stderr, tc.stderr)
			}
		})
	}
}

func TestExecReturnsWhileADaemonHoldsItsOutput(t *testing.T) {
	h := newSession(t)
	res, stdout, _ := h.exec(wire.MainChannel, wire.Exec{Cmd: "sleep 1000 & echo $!"}, nil)
	pid, err := strconv.Atoi(strings.TrimSpace(stdout))
	if err != nil {
		t.Fatalf("stdout = %q, want the daemon's pid", stdout)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	if res != (wire.ExecResult{}) {
		t.Errorf("result = %+v, want exit 0", res)
	}
}

func TestExecTimeoutKillsTheGroup(t *testing.T) {
	h := newSession(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	res, stdout, _ := h.exec(wire.MainChannel, wire.Exec{
		Cmd:       "sleep 1000 & echo $! > " + pidFile + "; echo before; wait",
		TimeoutMs: 100,
	}, nil)
	if want := (wire.ExecResult{ExitCode: 137, Signal: 9, TimedOut: true}); res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	if stdout != "before\n" {
		t.Errorf("stdout = %q, want the output before the timeout", stdout)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the command's child is killed", func() bool { return processGone(child) })
}

func TestExecErrors(t *testing.T) {
	h := newSession(t)
	e := h.fail(wire.MainChannel, wire.OpExec, wire.Exec{Cmd: "true", Cwd: "/no/such/dir"})
	if e.ErrnoName != "ENOENT" || !strings.Contains(e.Message, "/no/such/dir") {
		t.Errorf("missing cwd: %+v", e)
	}
	if e := h.fail(wire.MainChannel, wire.OpExec, wire.Exec{Cmd: "true", TimeoutMs: -1}); !strings.Contains(e.Message, "out of range") {
		t.Errorf("negative timeout: %+v", e)
	}
}

func TestExecOutputIsCapped(t *testing.T) {
	b := newCappedBuffer(5)
	for _, s := range []string{"abc", "defg", "hij"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v; want all of it accepted", s, n, err)
		}
	}
	if got := string(b.Bytes()); got != "abcde" {
		t.Errorf("kept %q, want %q", got, "abcde")
	}
}

// Commands inherit what a test opened through raw system calls (not
// close-on-exec) and nothing of the agent's own.
func TestExecInheritsTestDescriptorsOnly(t *testing.T) {
	h := newSession(t)
	path := filepath.Join(t.TempDir(), "inherited")
	fd := openat(t, h, wire.MainChannel, path, 0o1|0o100|0o1000) // O_WRONLY|O_CREAT|O_TRUNC
	res, _, stderr := h.exec(wire.MainChannel, wire.Exec{Cmd: "echo via-fd >&" + strconv.Itoa(fd)}, nil)
	if res.ExitCode != 0 {
		t.Fatalf("write through inherited fd %d: %+v %s", fd, res, stderr)
	}
	if b, _ := os.ReadFile(path); string(b) != "via-fd\n" {
		t.Errorf("file has %q", b)
	}

	// Whatever this test process inherited without close-on-exec from
	// whoever started it is not the agent's doing.
	inherited, err := inheritedFDs()
	if err != nil {
		t.Fatal(err)
	}
	_, out, _ := h.exec(wire.MainChannel, wire.Exec{Cmd: "ls /proc/self/fd"}, nil)
	var extra []string
	for _, f := range strings.Fields(out) {
		if n, _ := strconv.Atoi(f); !slices.Contains(inherited, n) {
			extra = append(extra, f)
		}
	}
	// ls itself opens one directory.
	if len(extra) > 1 {
		t.Errorf("command has descriptors %v besides the inherited %v and ls's own", extra, inherited)
	}
	if !slices.Contains(inherited, fd) {
		t.Errorf("the test's descriptor %d is not inheritable: %v", fd, inherited)
	}
}
