package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/profile"
	"github.com/provium/provium/internal/wire"
)

// A run keeps a QEMU that has loaded a template fixture's state ready for
// the fixture's next resume (machine.Standby).

// Files that resume one template fixture one after the other: each after
// the first takes over the QEMU made ready while the one before ran, and
// finds the fixture as it was saved, not as the file before left it. No
// QEMU is left once the run ends, the one still waiting included.
func TestFixtureStandby(t *testing.T) {
	files := map[string]string{
		"tests/fixtures/warm.lua": `local vm = provium.create("minimal"):boot()
vm:write_file("/tmp/kept", "kept")
`,
	}
	for _, f := range []string{"a", "b", "c"} {
		// The sleep leaves the next file's standby time to get ready.
		files["tests/"+f+"_test.lua"] = `local vm = provium.fixture("warm")
test("fresh fixture", function()
  assert_eq("kept", vm:read_file("/tmp/kept"))
  assert(not vm:exec("test -e /tmp/left").ok, "a file left by an earlier resume")
  vm:write_file("/tmp/left", "` + f + `")
  vm:exec("sleep 4")
end)
`
	}
	env := NewEnv(t, files)
	logOf := func(file string) string { return env.FileLog("tests/" + file + "_test.lua") }
	const claimed = "which had loaded the snapshot ahead of need"

	env.Run("test", "-v", "-p", "1", "tests/").MustPass(t)
	if strings.Contains(logOf("a"), claimed) {
		t.Error("the first resume of the run found a standby QEMU")
	}
	for _, f := range []string{"b", "c"} {
		if log := logOf(f); !strings.Contains(log, claimed) {
			t.Errorf("%s did not resume in a standby QEMU:\n%s", f, log)
		}
	}
	if left := qemuProcesses(t, env.Cache); len(left) > 0 {
		t.Errorf("QEMU processes left after the run: %v", left)
	}

	env.Extra = append(env.Extra, "PROVIUM_FIXTURE_STANDBY=off")
	env.Run("test", "-v", "-p", "1", "tests/").MustPass(t)
	for _, f := range []string{"a", "b", "c"} {
		if strings.Contains(logOf(f), claimed) {
			t.Errorf("%s resumed in a standby QEMU with PROVIUM_FIXTURE_STANDBY=off", f)
		}
	}
}

// A standby's guest does not run before it is claimed, and a standby
// whose snapshot changed after it loaded it is not used: the VM resumes
// from the files as they are, and the standby's QEMU is ended.
func TestStandbyClaim(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs: skipped with -short")
	}
	for _, kv := range kernelEnv(t) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("PROVIUM_CACHE", t.TempDir())
	t.Setenv("PROVIUM_AGENT", provium)
	profiles, err := profile.Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p, err := profiles.Get("minimal")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var log lockedBuffer
	config := func(name string) machine.Config {
		return machine.Config{Name: name, Profile: p, Dir: filepath.Join(dir, name), Log: &log}
	}
	run := func(vm *machine.VM, cmd string) string {
		t.Helper()
		r, err := vm.Agent().Exec(ctx, wire.Exec{Cmd: cmd}, nil)
		if err != nil || r.ExitCode != 0 {
			t.Fatalf("%s: %q: exit %d, %v\n%s", vm.Name(), cmd, r.ExitCode, err, r.Stderr)
		}
		return strings.TrimSpace(string(r.Stdout))
	}
	uptime := func(vm *machine.VM) float64 {
		t.Helper()
		f, err := strconv.ParseFloat(strings.Fields(run(vm, "cat /proc/uptime"))[0], 64)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}

	snap := filepath.Join(dir, "snapshot")
	os.MkdirAll(snap, 0o755)
	cfg := config("built")
	cfg.RAMDir = snap
	vm := machine.New(cfg)
	if err := vm.Boot(ctx, machine.BootOptions{}); err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	run(vm, "echo kept > /tmp/kept")
	saved := uptime(vm)
	shape, err := vm.Snapshot(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	files := machine.SavedIn(snap)
	if files.Memory == "" {
		t.Fatal("the snapshot is not a template")
	}

	// Claimed after a wait: the guest's clock shows none of it.
	s, err := machine.PrepareResume(ctx, files, shape)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const wait = 4 * time.Second
	time.Sleep(wait)
	cfg = config("claimed")
	cfg.Standby = s
	r, err := machine.Resume(ctx, cfg, files, shape)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Kill()
	if r.QEMUPid() != s.Pid() {
		t.Fatalf("the resume ran in QEMU %d, not in its standby %d\n%s", r.QEMUPid(), s.Pid(), log.String())
	}
	if got := run(r, "cat /tmp/kept"); got != "kept" {
		t.Errorf("/tmp/kept = %q after the claim", got)
	}
	// A standby waits at the lowest CPU priority; claimed, it has the
	// usual one, in every thread.
	stats, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(r.QEMUPid()), "task", "*", "stat"))
	if len(stats) == 0 {
		t.Errorf("no threads of QEMU %d", r.QEMUPid())
	}
	for _, st := range stats {
		b, _ := os.ReadFile(st)
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 16 && f[16] != "0" {
			t.Errorf("claimed QEMU thread %s runs at nice %s", st, f[16])
		}
	}
	ran := uptime(r) - saved
	t.Logf("the guest's uptime went on by %.2f s from the snapshot to just after a claim %v after its standby was ready", ran, wait)
	if ran > wait.Seconds()/2 {
		t.Errorf("the guest's uptime went on by %.2f s from the snapshot to just after its claim: it ran during the %v its standby waited", ran, wait)
	}
	r.Kill()

	// The state file rewritten after the standby loaded it, with the
	// same bytes: the standby is not trusted, the files are.
	s2, err := machine.PrepareResume(ctx, files, shape)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	standbyPid := s2.Pid()
	b, err := os.ReadFile(files.State)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // a modification time of its own
	if err := os.WriteFile(files.State, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg = config("stale")
	cfg.Standby = s2
	r2, err := machine.Resume(ctx, cfg, files, shape)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Kill()
	if r2.QEMUPid() == standbyPid {
		t.Fatalf("the resume used a standby whose state file changed after it loaded it")
	}
	if want := "standby QEMU not used: " + files.State + " changed after it was loaded"; !strings.Contains(log.String(), want) {
		t.Errorf("the log does not say %q:\n%s", want, log.String())
	}
	if err := syscall.Kill(standbyPid, 0); err != syscall.ESRCH {
		t.Errorf("the unused standby's QEMU %d is still there (kill 0: %v)", standbyPid, err)
	}
	if got := run(r2, "cat /tmp/kept"); got != "kept" {
		t.Errorf("/tmp/kept = %q after the resume without its standby", got)
	}
	r2.Kill()
	if left := qemuProcesses(t, dir); len(left) > 0 {
		t.Errorf("QEMU processes left: %v", left)
	}
}

// A standby holds a little of a fixed pool; a VM that needs it gets it:
// the standby is given up, not waited for.
func TestStandbyGivesWayInTheFixedPool(t *testing.T) {
	env := NewEnv(t, map[string]string{
		"tests/fixtures/half.lua": `provium.create("minimal"):boot({memory = "512M"})
`,
		"tests/a_test.lua": `local vm = provium.fixture("half")
test("resumed", function() vm:exec("sleep 4") end)
`,
		"tests/b_test.lua": `local vm = provium.create("minimal")
vm:boot({memory = "1024M"})
test("the whole pool", function() assert(vm:exec("true").ok) end)
`,
	})
	env.Run("test", "-v", "-p", "1", "--mem", "1024", "--timeout", "90s", "tests/").MustPass(t)
	if log := env.FileLog("tests/a_test.lua"); !strings.Contains(log, "is ready for the next resume") {
		t.Errorf("no standby was made ready while a_test.lua ran:\n%s", log)
	}
	if left := qemuProcesses(t, env.Cache); len(left) > 0 {
		t.Errorf("QEMU processes left after the run: %v", left)
	}
}
