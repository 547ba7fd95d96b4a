package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Fixtures (SPEC §7, and the persistent cache of §10). Every fixture script
// here appends its name to the host file $BUILD_LOG when it runs (fixture
// scripts are Lua on the host), so a test sees exactly which fixtures were
// built by a run and which were resumed from the cache.

// fxLog is the Lua line that records a build of fixture name.
func fxLog(name string) string {
	return `local log = assert(io.open(os.getenv("BUILD_LOG"), "a")) log:write("` + name + `\n") log:close()
`
}

// fxEnv is a project with files whose fixtures log their builds to a file
// of its own; it returns that file too.
func fxEnv(t *testing.T, files map[string]string) (*Env, string) {
	t.Helper()
	env := NewEnv(t, files)
	buildLog := filepath.Join(t.TempDir(), "builds.log")
	env.Extra = append(env.Extra, "BUILD_LOG="+buildLog)
	return env, buildLog
}

// fxBuilds counts the builds of each fixture so far.
func fxBuilds(t *testing.T, buildLog string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(buildLog)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, l := range strings.Fields(string(b)) {
		n[l]++
	}
	return n
}

// fxWantBuilds fails unless the fixtures were built want times in all.
func fxWantBuilds(t *testing.T, buildLog, when string, want map[string]int) {
	t.Helper()
	got := fxBuilds(t, buildLog)
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: fixture %q built %d times in all, want %d (all: %v)", when, name, got[name], w, got)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: unexpected fixture %q built (all: %v)", when, name, got)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// fxEvent is one --json event line, as far as these tests look at it.
type fxEvent struct {
	Event  string `json:"event"`
	File   string `json:"file"`
	Name   string `json:"name"`
	Status string `json:"status"`
}

// fxJSONRun runs provium test --json and requires a passing run; it
// returns the events.
func fxJSONRun(t *testing.T, env *Env, args ...string) []fxEvent {
	t.Helper()
	r := env.Run(append([]string{"test", "--json"}, args...)...)
	var events []fxEvent
	sc := bufio.NewScanner(strings.NewReader(r.Stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e fxEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("bad event line %q: %v", sc.Text(), err)
		}
		events = append(events, e)
	}
	if r.Code != 0 || len(events) == 0 || events[len(events)-1].Event != "run_finished" || events[len(events)-1].Status != "ok" {
		t.Fatalf("want a passing run, got exit %d:\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	return events
}

// fxBuiltEvents counts the fixture_built events of each fixture.
func fxBuiltEvents(events []fxEvent) map[string]int {
	n := map[string]int{}
	for _, e := range events {
		if e.Event == "fixture_built" {
			n[e.Name]++
		}
	}
	return n
}

// fxEntries lists the complete entries of the persistent cache: the
// directories under fixtures/ that hold a manifest or a (first VM's)
// snapshot.
func fxEntries(t *testing.T, cache string) []string {
	t.Helper()
	var out []string
	dirs, _ := os.ReadDir(filepath.Join(cache, "fixtures"))
	for _, d := range dirs {
		if !d.IsDir() || strings.Contains(d.Name(), ".building-") {
			continue
		}
		for _, f := range []string{"manifest.json", "vm-0/snapshot"} {
			if _, err := os.Stat(filepath.Join(cache, "fixtures", d.Name(), f)); err == nil {
				out = append(out, d.Name()+"/"+f)
			}
		}
	}
	return out
}

// fxSnapshot is the snapshot file of the one cached entry of fixture name.
func fxSnapshot(t *testing.T, cache, name string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(cache, "fixtures", name+"-*", "vm-*", "snapshot"))
	if len(m) != 1 {
		t.Fatalf("want one cached snapshot of %q, found %v", name, m)
	}
	return m[0]
}

// The suite of TestFixtureCacheAcrossRuns: base loads a helper with dofile,
// layered is built on base, other is unrelated. Two files resume them in
// parallel; the markers they expect come from the environment, so that
// after an edit they check the new state, not a stale one.
var fxCacheSuite = map[string]string{
	"lib/base_setup.lua": `-- Loaded by tests/fixtures/base.lua with dofile: an input of the base fixture.
local M = {marker = "base-v1"}
function M.setup(vm)
  vm:mount_vfs()
  assert(vm:exec("hostname fixture-host && mkdir -p /mnt/fx && mount -t tmpfs fx /mnt/fx && echo kept > /mnt/fx/file").ok)
  vm:write_file("/tmp/fixture-marker", M.marker)
end
return M
`,
	"tests/fixtures/base.lua": fxLog("base") + `local setup = dofile("lib/base_setup.lua")
local vm = provium.create("minimal")
vm:boot()
setup.setup(vm)
`,
	"tests/fixtures/layered.lua": fxLog("layered") + `local vm = provium.fixture("base")
vm:write_file("/tmp/layer-marker", "layered-v1")
`,
	"tests/fixtures/other.lua": fxLog("other") + `local vm = provium.create("minimal")
vm:boot()
vm:write_file("/tmp/other-marker", "other")
`,
	"tests/base_test.lua": `local a = provium.fixture("base")
local b = provium.fixture("base")

test("resumed VMs carry the fixture's state", function()
  for _, vm in ipairs({a, b}) do
    assert_eq(os.getenv("BASE_MARKER"), vm:read_file("/tmp/fixture-marker"))
    assert_eq("fixture-host", vm:exec("hostname").stdout.trim(), "the kernel's hostname")
    assert_contains(vm:exec("cat /proc/mounts").stdout, "fx /mnt/fx tmpfs ", "the fixture's mount")
    assert_eq("kept\n", vm:read_file("/mnt/fx/file"))
  end
end)

test("resumed VMs are independent", function()
  a:write_file("/tmp/mine", "a")
  b:write_file("/tmp/mine", "b")
  assert(a:exec("hostname changed-in-a && umount /mnt/fx").ok)
  assert_eq("a", a:read_file("/tmp/mine"))
  assert_eq("b", b:read_file("/tmp/mine"))
  assert_eq("fixture-host", b:exec("hostname").stdout.trim())
  assert_eq("kept\n", b:read_file("/mnt/fx/file"))
end)

provium.shutdown_all()
`,
	"tests/layered_test.lua": `local c = provium.fixture("layered")
test("fixtures nest", function()
  assert_eq(os.getenv("BASE_MARKER"), c:read_file("/tmp/fixture-marker"))
  assert_eq(os.getenv("LAYER_MARKER"), c:read_file("/tmp/layer-marker"))
  assert_eq("fixture-host", c:exec("hostname").stdout.trim())
  assert_eq("kept\n", c:read_file("/mnt/fx/file"))
end)

local o = provium.fixture("other")
test("an unrelated fixture has none of base's state", function()
  assert_eq("other", o:read_file("/tmp/other-marker"))
  assert(not o:exec("test -e /tmp/fixture-marker").ok)
end)

provium.shutdown_all()
`,
}

// A second run resumes every fixture from the persistent cache without
// building anything. Editing a fixture script rebuilds that fixture and the
// fixtures built on it; editing a helper file a script loaded with dofile
// does the same; an unrelated fixture is never rebuilt. Builds are
// reported as fixture_built events.
func TestFixtureCacheAcrossRuns(t *testing.T) {
	env, builds := fxEnv(t, fxCacheSuite)
	env.Extra = append(env.Extra, "BASE_MARKER=base-v1", "LAYER_MARKER=layered-v1")

	// First run: every fixture is built once, though both files want base
	// at the same time.
	events := fxJSONRun(t, env, "tests/")
	fxWantBuilds(t, builds, "first run", map[string]int{"base": 1, "layered": 1, "other": 1})
	if got := fxBuiltEvents(events); got["base"] != 1 || got["layered"] != 1 || got["other"] != 1 || len(got) != 3 {
		t.Errorf("first run: fixture_built events %v, want one each of base, layered, other", got)
	}

	// Second run: everything resumes from the cache.
	events = fxJSONRun(t, env, "tests/")
	fxWantBuilds(t, builds, "second run", map[string]int{"base": 1, "layered": 1, "other": 1})
	if got := fxBuiltEvents(events); len(got) != 0 {
		t.Errorf("second run: fixture_built events %v, want none", got)
	}
	resumed := 0
	for _, e := range events {
		if e.Event == "vm_resumed" {
			resumed++
		}
	}
	if resumed != 4 {
		t.Errorf("second run: %d vm_resumed events, want 4 (base twice, layered, other)", resumed)
	}

	// Edit the layered script: only layered is rebuilt.
	env.Write("tests/fixtures/layered.lua", strings.Replace(fxCacheSuite["tests/fixtures/layered.lua"], "layered-v1", "layered-v2", 1))
	env.Extra = append(env.Extra, "LAYER_MARKER=layered-v2")
	env.Run("test", "tests/").MustPass(t)
	fxWantBuilds(t, builds, "after editing layered.lua", map[string]int{"base": 1, "layered": 2, "other": 1})

	// Edit the helper base.lua loads: base and layered are rebuilt.
	env.Write("lib/base_setup.lua", strings.Replace(fxCacheSuite["lib/base_setup.lua"], "base-v1", "base-v2", 1))
	env.Extra = append(env.Extra, "BASE_MARKER=base-v2")
	events = fxJSONRun(t, env, "tests/")
	fxWantBuilds(t, builds, "after editing base's helper", map[string]int{"base": 2, "layered": 3, "other": 1})
	if got := fxBuiltEvents(events); got["base"] != 1 || got["layered"] != 1 || len(got) != 2 {
		t.Errorf("after editing base's helper: fixture_built events %v, want one each of base and layered", got)
	}

	// And the run after that builds nothing again.
	env.Run("test", "tests/").MustPass(t)
	fxWantBuilds(t, builds, "run after the edits", map[string]int{"base": 2, "layered": 3, "other": 1})
	workersNoQEMU(t, env)
}

// provium fixture list shows each cached fixture with its key, size and
// age; test --no-cache builds afresh and leaves the persistent cache as it
// was; fixture clean empties it, and the next run builds again.
func TestFixtureListCleanNoCache(t *testing.T) {
	env, builds := fxEnv(t, map[string]string{
		"tests/fixtures/plain.lua": fxLog("plain") + `local vm = provium.create("minimal")
vm:boot()
vm:write_file("/tmp/plain", "plain")
`,
		"tests/plain_test.lua": `local vm = provium.fixture("plain")
test("resumed", function() assert_eq("plain", vm:read_file("/tmp/plain")) end)
`,
	})
	r := env.Run("fixture", "list")
	if r.Code != 0 || !strings.Contains(r.Stdout, "no cached fixtures") {
		t.Fatalf("list of an empty cache: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	env.Run("test", "tests/").MustPass(t)
	fxWantBuilds(t, builds, "first run", map[string]int{"plain": 1})

	r = env.Run("fixture", "list")
	if r.Code != 0 {
		t.Fatalf("fixture list: exit %d\n%s", r.Code, r.Stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("fixture list: want a header and one entry:\n%s", r.Stdout)
	}
	for _, col := range []string{"NAME", "KEY", "VMS", "SIZE", "AGE"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("fixture list header lacks %s: %q", col, lines[0])
		}
	}
	// name, a hex key, one VM, a size in M or G, an age in seconds
	row := regexp.MustCompile(`^plain\s+([0-9a-f]{16,})\s+1\s+([0-9.]+[MG])\s+((\d+m)?\d+s)\s`)
	m := row.FindStringSubmatch(lines[1])
	if m == nil {
		t.Fatalf("fixture list entry %q does not show name, key, size and age", lines[1])
	}
	key := m[1]
	// The script as the project names it: the entry serves any checkout.
	if !strings.HasSuffix(strings.TrimSpace(lines[1]), " tests/fixtures/plain.lua") {
		t.Errorf("fixture list entry does not name the script: %q", lines[1])
	}
	entries := fxEntries(t, env.Cache)
	snap := fxSnapshot(t, env.Cache, "plain")
	before, err := os.Stat(snap)
	if err != nil {
		t.Fatal(err)
	}

	// --no-cache: built again, and the cache is untouched.
	env.Run("test", "--no-cache", "tests/").MustPass(t)
	fxWantBuilds(t, builds, "--no-cache run", map[string]int{"plain": 2})
	after, err := os.Stat(snap)
	if err != nil || !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size() {
		t.Errorf("--no-cache changed the cached snapshot: %v -> %v (%v)", before.ModTime(), after, err)
	}
	if got := fxEntries(t, env.Cache); strings.Join(got, " ") != strings.Join(entries, " ") {
		t.Errorf("--no-cache changed the cache entries: %v -> %v", entries, got)
	}
	if r := env.Run("fixture", "list"); !strings.Contains(r.Stdout, key) {
		t.Errorf("after --no-cache, the cached entry %s is gone:\n%s", key, r.Stdout)
	}

	// The cache still serves a normal run.
	env.Run("test", "tests/").MustPass(t)
	fxWantBuilds(t, builds, "run after --no-cache", map[string]int{"plain": 2})

	// clean empties it.
	r = env.Run("fixture", "clean")
	if r.Code != 0 || !strings.Contains(r.Stdout, "removed 1 ") {
		t.Fatalf("fixture clean: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if got := fxEntries(t, env.Cache); len(got) != 0 {
		t.Errorf("after clean the cache still has %v", got)
	}
	if r := env.Run("fixture", "list"); !strings.Contains(r.Stdout, "no cached fixtures") {
		t.Errorf("list after clean:\n%s", r.Stdout)
	}
	env.Run("test", "tests/").MustPass(t)
	fxWantBuilds(t, builds, "run after clean", map[string]int{"plain": 3})
	workersNoQEMU(t, env)
}

// An error in a fixture script fails every file that asked for the
// fixture, directly or through another fixture, with the fixture's error
// and, when the script had booted a VM, that VM's console tail. The
// fixture is tried once, and the run ends.
func TestFixtureScriptError(t *testing.T) {
	env, builds := fxEnv(t, map[string]string{
		"tests/fixtures/broken.lua": fxLog("broken") + `local vm = provium.create("minimal")
vm:boot()
vm:mount_vfs()
vm:exec("echo provium-fixture-console-mark > /dev/kmsg")
error("the fixture broke on purpose")
`,
		"tests/fixtures/nested.lua": fxLog("nested") + `local vm = provium.fixture("broken")
vm:write_file("/tmp/never", "x")
`,
		"tests/fixtures/novm.lua": fxLog("novm") + `error("no VM for you")
`,
		"tests/t1.lua": `local vm = provium.fixture("broken")
test("never runs", function() assert(false) end)
`,
		"tests/t2.lua": `local vm = provium.fixture("broken")
`,
		"tests/t3.lua": `local vm = provium.fixture("nested")
`,
		"tests/t4.lua": `local vm = provium.fixture("novm")
`,
		"tests/t5.lua": `test("a file without fixtures", function() assert_eq(2, 1 + 1) end)
`,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := env.Command(ctx, "test", "tests/")
	out, _ := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the run did not end:\n%s", out)
	}
	t.Logf("provium test tests/ -> exit %d\n%s", cmd.ProcessState.ExitCode(), out)
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	text := string(out)
	if !strings.Contains(text, "FAIL: 1 passed, 4 failed") {
		t.Errorf("want 1 passed and 4 failed")
	}
	for _, f := range []string{"t1", "t2", "t3"} {
		b := fxFileBlock(text, "tests/"+f+".lua")
		for _, want := range []string{"FAIL", `fixture "broken"`, "the fixture broke on purpose", "--- console", "provium-fixture-console-mark"} {
			if !strings.Contains(b, want) {
				t.Errorf("%s: report lacks %q:\n%s", f, want, b)
			}
		}
	}
	if b := fxFileBlock(text, "tests/t3.lua"); !strings.Contains(b, `fixture "nested"`) {
		t.Errorf("t3: report does not name the nested fixture:\n%s", b)
	}
	b := fxFileBlock(text, "tests/t4.lua")
	if !strings.Contains(b, "no VM for you") || strings.Contains(b, "--- console") {
		t.Errorf("t4: want the fixture's error and no console (no VM was booted):\n%s", b)
	}
	if b := fxFileBlock(text, "tests/t5.lua"); !strings.Contains(b, "ok") {
		t.Errorf("t5: want ok:\n%s", b)
	}
	fxWantBuilds(t, builds, "the run", map[string]int{"broken": 1, "nested": 1, "novm": 1})
	if got := fxEntries(t, env.Cache); len(got) != 0 {
		t.Errorf("failed fixtures left cache entries: %v", got)
	}
	workersNoQEMU(t, env)
}

// fxFileBlock is the report of one file: its line and the indented lines
// under it.
func fxFileBlock(out, file string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "  "+file+" ... ") {
			continue
		}
		block := []string{l}
		for _, m := range lines[i+1:] {
			if !strings.HasPrefix(m, "    ") {
				break
			}
			block = append(block, m)
		}
		return strings.Join(block, "\n")
	}
	return ""
}

// SIGKILL of provium while it writes a fixture snapshot leaves no cache
// entry a later run would resume and no QEMU process; the later run builds
// the fixture again and passes.
func TestFixtureKilledDuringSnapshot(t *testing.T) {
	env, builds := fxEnv(t, map[string]string{
		// A bigger guest with some non-zero memory, so that its snapshot
		// takes a moment (filling memory is slow under emulation).
		"tests/fixtures/big.lua": fxLog("big") + `local vm = provium.create("minimal")
vm:boot({memory = "1G"})
assert(vm:exec("head -c 1048576 /dev/urandom > /tmp/chunk && for i in $(seq 32); do cat /tmp/chunk; done > /tmp/big").ok)
`,
		"tests/big_test.lua": `local vm = provium.fixture("big")
test("resumed", function() assert_eq("33554432", vm:exec("wc -c < /tmp/big").stdout.trim()) end)
`,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := env.Command(ctx, "test", "tests/")
	out := &workerLog{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	// Wait for the snapshot to be under way: its temporary file exists and
	// has data, then kill provium at once.
	fixtures := filepath.Join(env.Cache, "fixtures")
	var partial string
	var size int64
	for partial == "" {
		m, _ := filepath.Glob(filepath.Join(fixtures, "*.building-*", "vm-*", ".snapshot.*.tmp"))
		for _, p := range m {
			if st, err := os.Stat(p); err == nil && st.Size() > 0 {
				partial, size = p, st.Size()
			}
		}
		if partial != "" {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("provium ended before the snapshot was seen (%v):\n%s", err, out.String())
		case <-time.After(2 * time.Millisecond):
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	t.Logf("killed provium with %s at %d bytes; output so far:\n%s", filepath.Base(partial), size, out.String())
	if got := fxBuilds(t, builds)["big"]; got != 1 {
		t.Fatalf("the fixture was built %d times before the kill", got)
	}

	// No QEMU outlives provium...
	deadline := time.Now().Add(5 * time.Second)
	for len(qemuProcesses(t, env.Cache)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("QEMU processes left after provium was killed: %v", qemuProcesses(t, env.Cache))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// ... and the cache holds no entry: at most the partial build, which
	// nothing lists or resumes.
	if got := fxEntries(t, env.Cache); len(got) != 0 {
		t.Errorf("a killed snapshot left cache entries: %v", got)
	}
	if r := env.Run("fixture", "list"); !strings.Contains(r.Stdout, "no cached fixtures") {
		t.Errorf("fixture list after the kill:\n%s", r.Stdout)
	}

	// The next run builds the fixture again and passes.
	env.Run("test", "tests/").MustPass(t)
	fxWantBuilds(t, builds, "run after the kill", map[string]int{"big": 2})
	if got := fxEntries(t, env.Cache); len(got) != 2 {
		t.Errorf("after a complete build the cache has %v, want a manifest and a snapshot", got)
	}
	// What the killed build left is swept by fixture clean.
	env.Run("fixture", "clean")
	if left, _ := filepath.Glob(filepath.Join(fixtures, "*")); len(left) != 0 {
		t.Errorf("fixture clean left %v", left)
	}
	workersNoQEMU(t, env)
}

// A cached snapshot whose bytes were damaged but whose size is unchanged is
// detected and rebuilt, never resumed: once with a zeroed megabyte in the
// middle, once with a few bytes overwritten inside the guest's memory
// image.
func TestFixtureCorruptSnapshot(t *testing.T) {
	env, builds := fxEnv(t, map[string]string{
		"tests/fixtures/snap.lua": fxLog("snap") + `local vm = provium.create("minimal")
vm:boot()
vm:write_file("/tmp/snap", "intact")
`,
		"tests/snap_test.lua": `local vm = provium.fixture("snap")
test("resumed", function()
  assert_eq("intact", vm:read_file("/tmp/snap"))
  assert(vm:exec("true").ok)
end)
`,
	})
	env.Run("test", "tests/").MustPass(t)
	fxWantBuilds(t, builds, "first run", map[string]int{"snap": 1})
	env.Run("test", "tests/").MustPass(t)
	fxWantBuilds(t, builds, "second run", map[string]int{"snap": 1})

	// A template's snapshot is the devices' state only, a few hundred
	// KiB: the zeroed stretch is at most half of it.
	damage := []struct {
		what string
		at   func(size int64) int64
		data func(size int64) []byte
	}{
		{"a zeroed megabyte in the middle", func(size int64) int64 { return max(0, size/2-1<<19) }, func(size int64) []byte { return make([]byte, min(1<<20, size/2)) }},
		{"256 bytes overwritten", func(size int64) int64 { return size * 3 / 4 }, func(int64) []byte { return []byte(strings.Repeat("\xa5", 256)) }},
	}
	for i, d := range damage {
		snap := fxSnapshot(t, env.Cache, "snap")
		st, err := os.Stat(snap)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(snap, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(d.data(st.Size()), d.at(st.Size())); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if st2, _ := os.Stat(snap); st2.Size() != st.Size() {
			t.Fatalf("the damage changed the size")
		}
		env.Run("test", "tests/").MustPass(t)
		fxWantBuilds(t, builds, "after "+d.what, map[string]int{"snap": 2 + i})
	}
	workersNoQEMU(t, env)
}

// A resumed guest's clock is the host's, not the time its snapshot was
// taken: the second run resumes, from the cache, a fixture saved seconds
// before it.
func TestFixtureResumeSetsTheClock(t *testing.T) {
	env, builds := fxEnv(t, map[string]string{
		"tests/fixtures/clock.lua": fxLog("clock") + `provium.create("minimal"):boot()
`,
		"tests/clock_test.lua": `local vm = provium.fixture("clock")
test("the guest's clock is the host's", function()
  local guest = tonumber(vm:exec("date +%s").stdout.trim())
  local host = os.time()
  assert(math.abs(guest - host) <= 1, "guest clock " .. guest .. ", host " .. host)
end)
`,
	})
	env.Run("test", "tests/").MustPass(t)
	time.Sleep(4 * time.Second)
	env.Run("test", "tests/").MustPass(t)
	fxWantBuilds(t, builds, "second run", map[string]int{"clock": 1})
}
