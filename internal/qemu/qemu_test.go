package qemu

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/provium/provium/internal/profile"
)

// testKernel returns a kernel to boot; QEMU and a kernel are
// needed. PROVIUM_TEST_KERNEL overrides the default Debian cloud kernel
// the built-in profiles use (provium setup puts it in the user cache).
func testKernel(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM: skipped with -short")
	}
	if _, err := exec.LookPath(Binary()); err != nil {
		t.Fatalf("no QEMU: %v (scripts/setup installs it)", err)
	}
	if k := os.Getenv("PROVIUM_TEST_KERNEL"); k != "" {
		return k
	}
	k, err := profile.FindKernel()
	if err != nil {
		t.Fatalf("no kernel: %v (set PROVIUM_TEST_KERNEL, or run provium setup)", err)
	}
	return k.Path
}

// watcher is a console that signals when a string has appeared.
type watcher struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	found chan struct{}
	once  sync.Once
}

func newWatcher(want string) *watcher {
	return &watcher{want: want, found: make(chan struct{})}
}

func (w *watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.found) })
	}
	return len(p), nil
}

func (w *watcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func (w *watcher) wait(t *testing.T, p *Process, d time.Duration) {
	t.Helper()
	select {
	case <-w.found:
	case <-p.Done():
		t.Fatalf("QEMU exited before %q: %v\nconsole:\n%s", w.want, p.Exit(), w.String())
	case <-time.After(d):
		t.Fatalf("no %q on the console after %v\nconsole:\n%s", w.want, d, w.String())
	}
}

// bootConfig is the machine of the real tests: no initrd, and a kernel
// that waits after its inevitable panic (no root) instead of exiting.
func bootConfig(kernel string, console *watcher) Config {
	return Config{Kernel: kernel, MemoryMiB: 512, Console: console, Append: []string{"panic=0"}, Accel: "tcg"}
}

func TestBootSnapshotRestore(t *testing.T) {
	kernel := testKernel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	console := newWatcher("Linux version")
	start := time.Now()
	p, err := Start(ctx, bootConfig(kernel, console))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	t.Logf("command line: %s", p.CommandLine())
	console.wait(t, p, 60*time.Second)
	t.Logf("start to \"Linux version\": %v", time.Since(start))
	if n, err := p.TranslationBlocks(ctx); err != nil || n == 0 {
		t.Errorf("translation blocks of a booting guest: %d, %v; want some", n, err)
	}

	for _, step := range []struct {
		do   func(context.Context) error
		want string
	}{
		{nil, "running"},
		{p.Stop, "paused"},
		{p.Cont, "running"},
	} {
		if step.do != nil {
			if err := step.do(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if st, err := p.Status(ctx); err != nil || st != step.want {
			t.Fatalf("status %q, %v; want %s", st, err, step.want)
		}
	}

	snap, err := os.Create(filepath.Join(t.TempDir(), "snapshot"))
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	t0 := time.Now()
	if err := p.SaveSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	saved := time.Since(t0)
	st, _ := snap.Stat()
	if st.Size() == 0 {
		t.Fatal("empty snapshot")
	}
	t.Logf("SaveSnapshot (512 MiB guest): %v, %d bytes", saved, st.Size())
	if s, _ := p.Status(ctx); s != "postmigrate" {
		t.Errorf("status after SaveSnapshot: %s", s)
	}
	p.Kill()
	if err := p.Wait(); err == nil || !errors.Is(err, ErrExited) {
		t.Errorf("Wait after Kill: %v", err)
	}

	in, err := os.Open(snap.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	t0 = time.Now()
	cfg := bootConfig(kernel, newWatcher("never"))
	cfg.Incoming = in
	q, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Kill()
	if err := q.WaitIncoming(ctx); err != nil {
		t.Fatal(err)
	}
	loaded := time.Since(t0)
	if s, err := q.Status(ctx); err != nil || s != "paused" {
		t.Errorf("status after WaitIncoming: %q, %v; want paused", s, err)
	}
	// A new QEMU starts with none of the guest's code translated.
	if n, err := q.TranslationBlocks(ctx); err != nil || n != 0 {
		t.Errorf("translation blocks before the restored guest ran: %d, %v; want 0", n, err)
	}
	if err := q.Cont(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("restore (Start with Incoming, WaitIncoming, Cont): %v (loaded after %v)", time.Since(t0), loaded)
	if s, err := q.Status(ctx); err != nil || s != "running" {
		t.Errorf("status after Cont: %q, %v; want running", s, err)
	}
	if err := q.Quit(ctx); err != nil {
		t.Errorf("Quit: %v", err)
	}
	if exit := q.Exit(); exit == nil || !exit.Clean() {
		t.Errorf("exit status after Quit: %v", exit)
	}
}

func TestBadSnapshot(t *testing.T) {
	kernel := testKernel(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(path, bytes.Repeat([]byte("garbage!"), 1000), 0o644)
	in, _ := os.Open(path)
	defer in.Close()
	cfg := bootConfig(kernel, newWatcher("never"))
	cfg.Incoming = in
	p, err := Start(ctx, cfg)
	if err == nil {
		defer p.Kill()
		err = p.WaitIncoming(ctx)
	}
	if err == nil {
		t.Fatal("a garbage snapshot loaded")
	}
	t.Logf("error: %v", err)
}

func TestStartErrors(t *testing.T) {
	if _, err := exec.LookPath(Binary()); err != nil {
		t.Skipf("no QEMU: %v", err)
	}
	ctx := context.Background()
	_, err := Start(ctx, Config{Binary: "/nonexistent/qemu", Accel: "tcg"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/qemu") {
		t.Errorf("missing binary: %v", err)
	}
	_, err = Start(ctx, Config{Accel: "tcg", Kernel: "/nonexistent/kernel"})
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "/nonexistent/kernel") || !strings.Contains(err.Error(), "command: ") {
		t.Errorf("missing kernel: %v, want QEMU's complaint and the command line", err)
	}
}

func TestContext(t *testing.T) {
	if _, err := exec.LookPath(Binary()); err != nil {
		t.Skipf("no QEMU: %v", err)
	}
	// A context done before the start: no QEMU.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if p, err := Start(ctx, Config{Accel: "tcg", MemoryMiB: 64}); !errors.Is(err, context.Canceled) {
		if p != nil {
			p.Kill()
		}
		t.Errorf("Start with a cancelled context: %v", err)
	}

	// A context ended after the start: QEMU keeps running.
	fds := openFDs(t)
	ctx, cancel = context.WithCancel(context.Background())
	p, err := Start(ctx, Config{Accel: "tcg", MemoryMiB: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	cancel()
	time.Sleep(200 * time.Millisecond)
	if _, err := p.Status(context.Background()); err != nil {
		t.Fatalf("QEMU gone after its start context ended: %v", err)
	}
	p.Kill()
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("QEMU still running after Kill")
	}
	if _, err := p.Status(context.Background()); !errors.Is(err, ErrExited) {
		t.Errorf("Status after exit: %v, want ErrExited", err)
	}
	if n := openFDs(t); n > fds {
		t.Errorf("%d descriptors open after the VM, %d before", n, fds)
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	return len(ents)
}

// TestThreadChurn checks that QEMU survives the exit of OS threads other
// than the one that started it: Pdeathsig fires on the death of the
// forking thread, so starting from an arbitrary thread would kill QEMU
// whenever the runtime retires it.
func TestThreadChurn(t *testing.T) {
	if _, err := exec.LookPath(Binary()); err != nil {
		t.Skipf("no QEMU: %v", err)
	}
	p, err := Start(context.Background(), Config{Accel: "tcg", MemoryMiB: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // exits locked: the thread is destroyed
		}()
	}
	wg.Wait()
	time.Sleep(200 * time.Millisecond)
	select {
	case <-p.Done():
		t.Fatalf("QEMU died with unrelated threads: %v", p.Exit())
	default:
	}
	if st, err := p.Status(context.Background()); err != nil {
		t.Fatalf("status: %v (%s)", err, st)
	}
}

// TestKillEndsAWrapper starts QEMU through a wrapper script that runs it
// as a child, as a PROVIUM_QEMU wrapper may: Kill must end both, and
// Done must close.
func TestKillEndsAWrapper(t *testing.T) {
	bin, err := exec.LookPath(Binary())
	if err != nil {
		t.Skipf("no QEMU: %v", err)
	}
	wrapper := filepath.Join(t.TempDir(), "qemu-wrapper")
	if err := os.WriteFile(wrapper, []byte("#!/bin/sh\n"+ShellQuote([]string{bin})+` "$@"`+"\nexit $?\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := Start(context.Background(), Config{Binary: wrapper, Accel: "tcg", MemoryMiB: 64})
	if err != nil {
		t.Fatal(err)
	}
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.Pid(), p.Pid()))
	if err != nil {
		p.Kill()
		t.Skipf("cannot list the wrapper's children: %v", err)
	}
	fields := strings.Fields(string(children))
	if len(fields) != 1 {
		p.Kill()
		t.Fatalf("the wrapper has children %q, want one QEMU", children)
	}
	child, _ := strconv.Atoi(fields[0])
	defer syscall.Kill(child, syscall.SIGKILL)
	p.Kill()
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done still open 10 s after Kill: the wrapper waits for a QEMU that was not killed")
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive(child) {
		if time.Now().After(deadline) {
			t.Fatalf("the wrapper's QEMU (pid %d) outlived Kill", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const helperEnv = "PROVIUM_QEMU_TEST_HELPER"

// TestHelperProcess is not a test: TestDiesWithParent runs the test binary
// as a child that starts QEMU, prints its pid and waits to be killed.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process")
	}
	p, err := Start(context.Background(), Config{Accel: "tcg", MemoryMiB: 64})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("pid", p.Pid())
	// Start goroutines that come and go, as a real run does, so the
	// runtime has threads to retire.
	for {
		done := make(chan bool)
		go func() { runtime.LockOSThread(); done <- true }()
		<-done
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDiesWithParent(t *testing.T) {
	if _, err := exec.LookPath(Binary()); err != nil {
		t.Skipf("no QEMU: %v", err)
	}
	helper := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	helper.Env = append(os.Environ(), helperEnv+"=1")
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer helper.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	pidStr, ok := strings.CutPrefix(strings.TrimSpace(line), "pid ")
	if !ok {
		t.Fatalf("helper: %s", line)
	}
	pid, _ := strconv.Atoi(pidStr)
	time.Sleep(300 * time.Millisecond) // let the helper churn threads
	if !alive(pid) {
		t.Fatalf("QEMU (pid %d) died while its parent was alive", pid)
	}
	helper.Process.Signal(syscall.SIGKILL)
	helper.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("QEMU (pid %d) outlived its SIGKILLed parent", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid is a running process (a zombie is dead).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}
