package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/profile"
	"github.com/provium/provium/internal/wire"
)

// Workers (SPEC §5): extra agent identities in one guest, each with its
// own credentials and its own channel. The Lua files live in
// testdata/workers; each Go test runs one of them in a project of its own.

// workerProject is a project holding the test file testdata/workers/<name>
// as tests/<name>, plus the fixtures of testdata/workers/fixtures.
func workerProject(t *testing.T, name string) *Env {
	t.Helper()
	return NewEnv(t, workerFiles(t, name))
}

// workerFiles are the test files testdata/workers/<name> of names as
// tests/<name>, plus the fixtures of testdata/workers/fixtures.
func workerFiles(t *testing.T, names ...string) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, name := range names {
		src, err := os.ReadFile(filepath.Join("testdata", "workers", name))
		if err != nil {
			t.Fatal(err)
		}
		files["tests/"+name] = string(src)
	}
	fixtures, _ := filepath.Glob(filepath.Join("testdata", "workers", "fixtures", "*.lua"))
	for _, f := range fixtures {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		files["tests/fixtures/"+filepath.Base(f)] = string(b)
	}
	return files
}

// runWorkerFile runs tests/<name> verbosely, requires it to pass with
// every sub-test in want, and that no QEMU outlives the run.
func runWorkerFile(t *testing.T, name string, want ...string) {
	t.Helper()
	env := workerProject(t, name)
	// A worker call that never returns would hang the file: bound it.
	r := env.Run("test", "-v", "--timeout", "2m", "tests/")
	r.MustPass(t)
	for _, sub := range want {
		if !strings.Contains(r.Stdout, "· "+sub+" ... ok") {
			t.Errorf("sub-test %q did not pass:\n%s", sub, r.Stdout)
		}
	}
	workersNoQEMU(t, env)
}

// workersNoQEMU waits a little for the VMs of env to be gone.
func workersNoQEMU(t *testing.T, env *Env) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := qemuProcesses(t, env.Cache)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("QEMU processes left after the run: %v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Ten workers at once, five processes and five threads, each with a uid
// of its own set through worker:syscall(setresuid): each sees its own, in
// its syscalls and in the commands it runs, the kernel shows all ten at the
// same time, and the parent is still root.
func TestWorkerTenIdentities(t *testing.T) {
	runWorkerFile(t, "identities.lua",
		"each worker sees only its own uid",
		"the parent is still root",
		"the kernel sees the ten identities at the same time")
}

// A fork worker process has its parent identity's credentials in every
// thread, whether it was started for the spawn or claimed as the spare.
func TestWorkerProcessCredentials(t *testing.T) {
	runWorkerFile(t, "process_creds.lua",
		"a new worker process has the credentials",
		"a claimed spare has the credentials")
}

// A thread worker drops every capability with capset; the parent thread
// of the same process keeps them: the worker can neither read another
// uid's 0600 file (CAP_DAC_OVERRIDE) nor mount (CAP_SYS_ADMIN), the parent
// can.
func TestWorkerThreadDropsCapabilities(t *testing.T) {
	runWorkerFile(t, "capabilities.lua",
		"the worker has no capability left",
		"the parent keeps its capabilities",
		"without CAP_DAC_OVERRIDE the worker cannot read another uid's file",
		"without CAP_SYS_ADMIN the worker cannot mount")
}

// A worker killed from inside the guest, or ended by its own exit system
// call (process or thread), makes its next calls raise a clear error at
// once; the VM and the other workers go on.
func TestWorkerDeath(t *testing.T) {
	runWorkerFile(t, "death.lua",
		"a worker process killed with kill -9 in the guest",
		"a worker process that calls exit",
		"a thread worker that calls exit")
}

// Workers and background jobs a fixture script leaves running are killed
// before the snapshot: the resumed guest has none of them. worker:kill()
// ends a worker, and calls on it raise.
func TestWorkerKillAndCleanup(t *testing.T) {
	runWorkerFile(t, "cleanup.lua",
		"workers and jobs alive at the end of the fixture script are gone",
		"a killed worker refuses calls")
}

// A worker blocked in read(2) on a pipe does not block its parent: the
// parent writes to the pipe while the worker's read is in flight, and the
// read returns what was written. Lua calls are synchronous, so this test
// drives a real VM from Go, through the packages provium itself uses: the
// worker's read runs in a goroutine while the main goroutine uses the
// parent.
func TestWorkerBlockedReadWhileParentWrites(t *testing.T) {
	env := NewEnv(t, nil)
	for _, kv := range env.Extra {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("PROVIUM_CACHE", env.Cache)
	t.Setenv("PROVIUM_AGENT", provium) // the guest agent is the provium binary
	t.Setenv("TMPDIR", env.Tmp)

	profiles, err := profile.Load(env.Dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := profiles.Get("minimal")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	console := &workerLog{}
	vm := machine.New(machine.Config{Name: "minimal#go", Profile: p, Dir: filepath.Join(env.Tmp, "vm"), Log: console})
	if err := vm.Boot(ctx, machine.BootOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		vm.Kill()
		if t.Failed() {
			t.Logf("console and calls:\n%s", console.String())
		}
	}()
	parent := vm.Agent()
	if err := parent.MountVFS(ctx); err != nil {
		t.Fatal(err)
	}

	// pipe2(fds, 0) in the parent: without close-on-exec, so a fork worker
	// inherits both ends; a thread worker shares them anyway.
	ret, out, err := parent.Syscall(ctx, wire.Syscall{Nr: 293, Bufs: []wire.Buf{{Arg: 0}}}, [][]byte{make([]byte, 8)})
	if err != nil || ret != 0 {
		t.Fatalf("pipe2 = %d, %v", ret, err)
	}
	rfd := binary.LittleEndian.Uint32(out[0][0:4])
	wfd := binary.LittleEndian.Uint32(out[0][4:8])

	for _, thread := range []bool{false, true} {
		kind := map[bool]string{false: "fork worker", true: "thread worker"}[thread]
		w, rep, err := parent.Spawn(ctx, thread)
		if err != nil {
			t.Fatalf("%s: spawn: %v", kind, err)
		}
		type readResult struct {
			ret  int64
			data []byte
			err  error
		}
		done := make(chan readResult, 1)
		go func() {
			req := wire.Syscall{Nr: 0, Bufs: []wire.Buf{{Arg: 1}}}
			req.Args[0], req.Args[2] = uint64(rfd), 64
			ret, out, err := w.Syscall(ctx, req, [][]byte{make([]byte, 64)})
			r := readResult{ret: ret, err: err}
			if err == nil && ret > 0 && ret <= 64 {
				r.data = out[0][:ret]
			}
			done <- r
		}()

		// Wait until the kernel shows the worker's thread inside read(2)
		// on the pipe; the parent answers meanwhile.
		syscallFile := fmt.Sprintf("/proc/%d/task/%d/syscall", rep.PID, rep.TID)
		want := fmt.Sprintf("0 0x%x ", rfd)
		for {
			b, err := parent.ReadFile(ctx, syscallFile)
			if err != nil {
				t.Fatalf("%s: read %s: %v", kind, syscallFile, err)
			}
			if strings.HasPrefix(string(b), want) {
				t.Logf("%s %d/%d blocked: %s says %q", kind, rep.PID, rep.TID, syscallFile, strings.TrimSpace(string(b)))
				break
			}
			select {
			case r := <-done:
				t.Fatalf("%s: the read returned before anything was written: %+v", kind, r)
			case <-ctx.Done():
				t.Fatalf("%s: the worker never blocked in read(2); %s says %q", kind, syscallFile, b)
			case <-time.After(50 * time.Millisecond):
			}
		}

		// The parent is usable while the worker is blocked...
		res, err := parent.Exec(ctx, wire.Exec{Cmd: "echo parent"}, nil)
		if err != nil || res.ExitCode != 0 || strings.TrimSpace(string(res.Stdout)) != "parent" {
			t.Fatalf("%s: exec in the parent while the worker is blocked: %+v, %v", kind, res, err)
		}
		select {
		case r := <-done:
			t.Fatalf("%s: the read returned before anything was written: %+v", kind, r)
		default:
		}
		// ... and writes what the worker is waiting for.
		msg := []byte("from the parent, " + kind)
		wreq := wire.Syscall{Nr: 1, Bufs: []wire.Buf{{Arg: 1}}}
		wreq.Args[0], wreq.Args[2] = uint64(wfd), uint64(len(msg))
		if n, _, err := parent.Syscall(ctx, wreq, [][]byte{msg}); err != nil || n != int64(len(msg)) {
			t.Fatalf("%s: write = %d, %v", kind, n, err)
		}
		select {
		case r := <-done:
			if r.err != nil || r.ret != int64(len(msg)) || string(r.data) != string(msg) {
				t.Fatalf("%s: read = %d %q, %v; want %q", kind, r.ret, r.data, r.err, msg)
			}
		case <-ctx.Done():
			t.Fatalf("%s: the worker's read never returned", kind)
		}
		if err := w.Close(ctx); err != nil {
			t.Errorf("%s: close: %v", kind, err)
		}
	}
}

// workerLog collects a VM's console and call trace, written from several
// goroutines.
type workerLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *workerLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *workerLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
