package client_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/client"
	"github.com/provium/provium/internal/wire"
)

func TestExec(t *testing.T) {
	a := open(t, newGuest(t)).Main()
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
			r := run(t, a, tc.req, []byte(tc.stdin))
			if r.ExecResult != tc.want {
				t.Errorf("result = %+v, want %+v", r.ExecResult, tc.want)
			}
			if string(r.Stdout) != tc.stdout {
				t.Errorf("stdout = %q, want %q", r.Stdout, tc.stdout)
			}
			if tc.stderr == "*" {
				if len(r.Stderr) == 0 {
					t.Error("stderr is empty, want the shell's complaint")
				}
			} else if string(r.Stderr) != tc.stderr {
				t.Errorf("stderr = %q, want %q", r.Stderr, tc.stderr)
			}
		})
	}
}

func TestExecReturnsWhileADaemonHoldsItsOutput(t *testing.T) {
	a := open(t, newGuest(t)).Main()
	r := run(t, a, wire.Exec{Cmd: "sleep 1000 & echo $!"}, nil)
	pid, err := strconv.Atoi(strings.TrimSpace(string(r.Stdout)))
	if err != nil {
		t.Fatalf("stdout = %q, want the daemon's pid", r.Stdout)
	}
	defer unix.Kill(pid, unix.SIGKILL)
	if r.ExecResult != (wire.ExecResult{}) {
		t.Errorf("result = %+v, want exit 0", r.ExecResult)
	}
}

func TestExecTimeoutKillsTheGroup(t *testing.T) {
	a := open(t, newGuest(t)).Main()
	pidFile := filepath.Join(t.TempDir(), "pid")
	r := run(t, a, wire.Exec{
		Cmd:       "sleep 1000 & echo $! > " + pidFile + "; echo before; wait",
		TimeoutMs: 100,
	}, nil)
	if want := (wire.ExecResult{ExitCode: 137, Signal: 9, TimedOut: true}); r.ExecResult != want {
		t.Errorf("result = %+v, want %+v", r.ExecResult, want)
	}
	if string(r.Stdout) != "before\n" {
		t.Errorf("stdout = %q, want the output before the timeout", r.Stdout)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	waitExit(t, child)
}

func TestExecErrors(t *testing.T) {
	a := open(t, newGuest(t)).Main()
	_, err := a.Exec(bounded(t), wire.Exec{Cmd: "true", Cwd: "/no/such/dir"}, nil)
	if e := opError(t, err); e.ErrnoName != "ENOENT" || !strings.Contains(e.Message, "/no/such/dir") {
		t.Errorf("missing cwd: %+v", e)
	}
	_, err = a.Exec(bounded(t), wire.Exec{Cmd: "true", TimeoutMs: -1}, nil)
	if e := opError(t, err); !strings.Contains(e.Message, "out of range") {
		t.Errorf("negative timeout: %+v", e)
	}
}

// openat opens path through the raw syscall op, as a test script does,
// and returns the descriptor (not close-on-exec).
func openat(t *testing.T, a *client.Agent, path string, flags int) int {
	t.Helper()
	req := wire.Syscall{Nr: unix.SYS_OPENAT, Bufs: []wire.Buf{{Arg: 1}}}
	fdcwd := unix.AT_FDCWD
	req.Args[0], req.Args[2], req.Args[3] = uint64(fdcwd), uint64(flags), 0o644
	fd, _ := sysBufs(t, a, req, append([]byte(path), 0))
	if fd < 0 {
		t.Fatalf("openat %s: %v", path, unix.Errno(-fd))
	}
	t.Cleanup(func() { unix.Close(int(fd)) })
	return int(fd)
}

// inheritable lists 0, 1, 2 and the descriptors of this process without
// close-on-exec: those a command the agent forks gets from the kernel.
func inheritable(t *testing.T) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	fds := []int{0, 1, 2}
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 && fd > 2 {
			fds = append(fds, fd)
		}
	}
	return fds
}

// Commands inherit what a test opened through raw system calls (not
// close-on-exec) and nothing of the agent's own.
func TestExecInheritsTestDescriptorsOnly(t *testing.T) {
	a := open(t, newGuest(t)).Main()
	path := filepath.Join(t.TempDir(), "inherited")
	fd := openat(t, a, path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC)
	if r := run(t, a, wire.Exec{Cmd: "echo via-fd >&" + strconv.Itoa(fd)}, nil); r.ExitCode != 0 {
		t.Fatalf("write through inherited fd %d: %+v %s", fd, r.ExecResult, r.Stderr)
	}
	if b, _ := os.ReadFile(path); string(b) != "via-fd\n" {
		t.Errorf("file has %q", b)
	}

	// Whatever this test process inherited without close-on-exec from
	// whoever started it is not the agent's doing.
	inherited := inheritable(t)
	var extra []string
	for _, f := range strings.Fields(string(run(t, a, wire.Exec{Cmd: "ls /proc/self/fd"}, nil).Stdout)) {
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
