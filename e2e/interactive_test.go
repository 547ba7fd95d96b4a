package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tmux is a private tmux server driving provium in real terminals.
type tmux struct {
	t      *testing.T
	socket string
}

// newTmux starts a tmux server of its own, killed at the test's end, with
// one 120x40 window running cmd in env's project.
func newTmux(t *testing.T, e *Env, cmd string) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux is needed to drive the interactive commands: install it (scripts/setup --tests)")
	}
	x := &tmux{t: t, socket: filepath.Join(t.TempDir(), "tmux.sock")}
	t.Cleanup(func() {
		exec.Command("tmux", "-S", x.socket, "kill-server").Run()
		// No server may outlive its test.
		deadline := time.Now().Add(5 * time.Second)
		for exec.Command("pgrep", "-f", "tmux -S "+x.socket).Run() == nil {
			if time.Now().After(deadline) {
				t.Errorf("the tmux server of %s is still running", x.socket)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	x.run("new-session", "-d", "-x", "120", "-y", "40", "-c", e.Dir, x.shellCommand(e, cmd))
	return x
}

// shellCommand is cmd with the Env's environment, and the exit status
// printed when it ends, the window kept open to read it.
func (x *tmux) shellCommand(e *Env, cmd string) string {
	env := []string{"PROVIUM_CACHE=" + e.Cache, "TMPDIR=" + e.Tmp}
	env = append(env, e.Extra...)
	return fmt.Sprintf("env %s %s; echo EXITED $?; sleep 600", strings.Join(env, " "), cmd)
}

func (x *tmux) run(args ...string) string {
	x.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", x.socket}, args...)...).CombinedOutput()
	if err != nil {
		x.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// window opens another window running cmd.
func (x *tmux) window(e *Env, cmd string) string {
	x.t.Helper()
	return "0:" + strings.TrimSpace(x.run("new-window", "-P", "-F", "#{window_index}", "-c", e.Dir, x.shellCommand(e, cmd)))
}

func (x *tmux) keys(target string, keys ...string) {
	x.t.Helper()
	x.run(append([]string{"send-keys", "-t", target}, keys...)...)
}

// screen is what window target shows, lines joined as wrapped.
func (x *tmux) screen(target string) string {
	return x.run("capture-pane", "-p", "-J", "-S", "-200", "-t", target)
}

// waitFor polls window target until re matches, and returns the match.
func (x *tmux) waitFor(target string, re string, within time.Duration) []string {
	x.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(within)
	for {
		s := x.screen(target)
		if m := rx.FindStringSubmatch(s); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			x.t.Fatalf("window %s: no %q within %v; it shows:\n%s", target, re, within, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// first is the first window: a bare "0" would name the session, whose
// current window changes with new-window.
const first = "0:0"

// noVMsLeft fails the test if a QEMU of e is still running.
func noVMsLeft(t *testing.T, e *Env) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for len(qemuProcesses(t, e.Cache)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("QEMU still running: %v", qemuProcesses(t, e.Cache))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestShell drives provium shell in a terminal: a command and its output,
// ^C of a foreground process, the window's size, job control and exit;
// then the same shell fed a script through a pipe, as another identity.
func TestShell(t *testing.T) {
	e := NewEnv(t, nil)
	x := newTmux(t, e, provium+" shell")
	const prompt = `\[default#\d+ [^\]]*\]# $`
	x.waitFor(first, `(?m)`+prompt, 2*time.Minute)

	x.keys(first, "echo answer $((6*7))", "Enter")
	x.waitFor(first, `(?m)^answer 42$`, time.Minute)

	x.keys(first, "sleep 1000", "Enter")
	x.waitFor(first, `(?m)# sleep 1000\n$`, time.Minute)
	time.Sleep(300 * time.Millisecond) // the shell has forked sleep
	x.keys(first, "C-c")
	x.keys(first, "echo status=$?", "Enter")
	x.waitFor(first, `(?m)^status=130$`, time.Minute)

	x.keys(first, "stty size", "Enter")
	x.waitFor(first, `(?m)^40 120$`, time.Minute)
	x.run("resize-window", "-t", first, "-x", "90", "-y", "30")
	x.keys(first, "clear; stty size", "Enter")
	x.waitFor(first, `(?m)^30 90$`, time.Minute)

	x.keys(first, "sleep 600 &", "Enter")
	x.keys(first, "jobs", "Enter")
	x.waitFor(first, `\[1\]\+ +Running +sleep 600`, time.Minute)

	x.keys(first, "exit 5", "Enter")
	x.waitFor(first, `(?m)^EXITED 5$`, time.Minute)
	noVMsLeft(t, e)

	// Without a terminal: a script in, its output and status out.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := e.Command(ctx, "shell", "--as", "1000:1001")
	cmd.Stdin = strings.NewReader("id -u; id -g\necho to-stderr >&2\nexit 3\n")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("piped shell: %v, want exit 3\n%s\n%s", err, out.String(), errb.String())
	}
	if out.String() != "1000\n1001\n" || !strings.Contains(errb.String(), "to-stderr") {
		t.Errorf("piped shell --as 1000:1001: stdout %q, stderr %q", out.String(), errb.String())
	}
	noVMsLeft(t, e)
}

// TestShellFixture opens provium shell --fixture in a terminal, on the VM
// of a fixture found below the project by its name: the shell sees the
// file the fixture wrote. Then piped, by the script's path: each shell
// resumes the fixture as it was built, whatever the last one changed.
func TestShellFixture(t *testing.T) {
	e := NewEnv(t, map[string]string{"tests/fixtures/seeded.lua": `
local vm = provium.create("default")
vm:boot()
vm:write_file("/root/seed", "planted by the fixture\n")
`})
	x := newTmux(t, e, provium+" shell --fixture seeded")
	x.waitFor(first, `(?m)\[seeded#\d+ [^\]]*\]# $`, 3*time.Minute)
	x.keys(first, "cat /root/seed", "Enter")
	x.waitFor(first, `(?m)^planted by the fixture$`, time.Minute)
	x.keys(first, "echo trampled > /root/seed; exit", "Enter")
	x.waitFor(first, `(?m)^EXITED 0$`, time.Minute)
	noVMsLeft(t, e)

	for _, arg := range []string{"tests/fixtures/seeded.lua", "seeded"} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		cmd := e.Command(ctx, "shell", "--fixture", arg)
		cmd.Stdin = strings.NewReader("cat /root/seed\necho trampled > /root/seed\nexit 4\n")
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		cancel()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 4 {
			t.Fatalf("piped shell --fixture %s: %v, want exit 4\n%s\n%s", arg, err, out.String(), errb.String())
		}
		if out.String() != "planted by the fixture\n" {
			t.Errorf("piped shell --fixture %s: stdout %q, want the fixture's file", arg, out.String())
		}
		noVMsLeft(t, e)
	}
}

// TestPauseOnFailure pauses a failing test, attaches from a second
// terminal, reads the file the test wrote, and lets the run go on by
// leaving the shell. The same run shows print() live (-v) and the
// console as text (--console).
func TestPauseOnFailure(t *testing.T) {
	e := NewEnv(t, map[string]string{"tests/pause.lua": `
local vm = provium.create("default")
vm:boot()
vm:write_file("/tmp/note", "left by the test\n")
print("note written")
vm:exec("printf '\\033[31mred\\033[0m and a bell\\a\\n' > /dev/console")
test("breaks", function()
  assert_eq(vm:exec("cat /tmp/note").stdout, "something else\n")
end)
test("after", function() print("went on") end)
`})
	x := newTmux(t, e, provium+" test -v --console --pause-on-failure tests/")
	m := x.waitFor(first, `provium attach (\S+/tests/pause\.lua)`, 3*time.Minute)
	screen := x.screen(first)
	if !strings.Contains(screen, "[tests/pause.lua] note written") {
		t.Errorf("print() did not show live, labelled by file:\n%s", screen)
	}
	if !regexp.MustCompile(`\[tests/pause\.lua default#\d+\] red and a bell\\x07`).MatchString(screen) {
		t.Errorf("the console line is not shown as text, escapes stripped and the bell escaped:\n%s", screen)
	}

	w := x.window(e, provium+" attach "+m[1])
	x.waitFor(w, `(?m)\[default#\d+ [^\]]*\]# $`, time.Minute)
	x.keys(w, "cat /tmp/note", "Enter")
	x.waitFor(w, `(?m)^left by the test$`, time.Minute)
	x.keys(w, "exit", "Enter")
	x.waitFor(w, `(?m)^EXITED 0$`, time.Minute)

	x.waitFor(first, `(?m)^EXITED 1$`, 2*time.Minute)
	screen = x.screen(first)
	for _, want := range []string{"[tests/pause.lua] went on", "--- print (last 2 lines) ---", "FAIL: 0 passed, 1 failed"} {
		if !strings.Contains(screen, want) {
			t.Errorf("the run's end lacks %q:\n%s", want, screen)
		}
	}
	noVMsLeft(t, e)

	// The run is over: its socket is gone, and attach says so.
	r := e.Run("attach", m[1])
	if r.Code == 0 || !strings.Contains(r.Stderr, "not") {
		t.Errorf("attach after the run: exit %d\n%s", r.Code, r.Stderr)
	}
	// Without a terminal to wait on, pausing is refused at once.
	r = e.Run("test", "--pause-on-failure", "tests/")
	if r.Code != 2 || !strings.Contains(r.Stderr, "needs a terminal") {
		t.Errorf("--pause-on-failure without a terminal: exit %d\n%s", r.Code, r.Stderr)
	}
}

// TestGDBWait boots a shell whose CPUs wait for gdb: gdb reads a register
// through the printed address and lets the guest go, which then boots.
func TestGDBWait(t *testing.T) {
	e := NewEnv(t, nil)
	gdb, err := exec.LookPath("gdb")
	if err != nil {
		t.Fatal("gdb is needed: install it (scripts/setup --tests)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := e.Command(ctx, "shell", "--gdb-wait")
	cmd.Stdin = strings.NewReader("echo running after gdb\n")
	var out strings.Builder
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	buf := make([]byte, 4096)
	var seen strings.Builder
	rx := regexp.MustCompile(`target remote (127\.0\.0\.1:\d+)`)
	var addr string
	for addr == "" {
		n, err := stderr.Read(buf)
		seen.Write(buf[:n])
		if m := rx.FindStringSubmatch(seen.String()); m != nil {
			addr = m[1]
		} else if err != nil {
			t.Fatalf("no gdb line: %v\n%s", err, seen.String())
		}
	}
	go func() {
		for {
			if _, err := stderr.Read(buf); err != nil {
				return
			}
		}
	}()
	// Stopped before the first instruction: the reset vector.
	time.Sleep(2 * time.Second)
	if out.Len() != 0 {
		t.Fatalf("the guest ran before gdb continued it: %q", out.String())
	}
	g, err := exec.CommandContext(ctx, gdb, "-batch", "-nx", "-ex", "target remote "+addr, "-ex", "info registers rip", "-ex", "detach").CombinedOutput()
	if err != nil || !regexp.MustCompile(`rip\s+0x[0-9a-f]+`).Match(g) {
		t.Fatalf("gdb: %v\n%s", err, g)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("shell after gdb: %v\n%s", err, out.String())
	}
	if out.String() != "running after gdb\n" {
		t.Errorf("after gdb detached: %q", out.String())
	}
	noVMsLeft(t, e)
	os.Stdout.Sync()
}
