package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Fixtures as memory templates: a fixture's RAM is a file of its cache
// entry, and a resume maps it privately instead of reading a stream.

// fxVMRecord is what these tests read of a VM in an entry's manifest.
type fxVMRecord struct {
	Kind   string `json:"kind"`
	Size   int64  `json:"size"`
	Memory *struct {
		Size      int64  `json:"size"`
		Allocated int64  `json:"allocated"`
		Hash      string `json:"hash"`
	} `json:"memory"`
}

// fxEntryDir is the directory of the one cached entry of fixture name.
func fxEntryDir(t *testing.T, cache, name string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(cache, "fixtures", name+"-*", "manifest.json"))
	if len(m) != 1 {
		t.Fatalf("want one cached entry of %q, found %v", name, m)
	}
	return filepath.Dir(m[0])
}

// fxVMs reads the VMs of the one cached entry of fixture name.
func fxVMs(t *testing.T, cache, name string) []fxVMRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fxEntryDir(t, cache, name), "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man struct {
		VMs []fxVMRecord `json:"vms"`
	}
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatal(err)
	}
	return man.VMs
}

// fxTemplate fails unless the one cached entry of name is a template,
// and returns its first VM's RAM file.
func fxTemplate(t *testing.T, cache, name string) string {
	t.Helper()
	vms := fxVMs(t, cache, name)
	if len(vms) == 0 || vms[0].Kind != "template" || vms[0].Memory == nil {
		t.Fatalf("the entry of %q is not a template: %+v", name, vms)
	}
	mem := filepath.Join(fxEntryDir(t, cache, name), "vm-0", "memory")
	st, err := os.Stat(mem)
	if err != nil {
		t.Fatal(err)
	}
	var sys syscall.Stat_t
	syscall.Stat(mem, &sys)
	t.Logf("%s: device state %d KiB, RAM file %d MiB long, %d MiB on disk", name, vms[0].Size>>10, st.Size()>>20, sys.Blocks*512>>20)
	if st.Size() != vms[0].Memory.Size || sys.Blocks*512 >= st.Size() {
		t.Errorf("the RAM file is %d bytes long, %d on disk (manifest: %+v): want the guest's RAM, sparse", st.Size(), sys.Blocks*512, *vms[0].Memory)
	}
	return mem
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// A fixture is saved as a template and resumed from it, nested fixtures
// too. A resumed VM that overwrites the fixture's file and fills most of
// its RAM changes nothing of the fixture: a second resume, in the same
// run and in the next, sees the fixture's contents, and the RAM file is
// byte for byte what it was.
func TestFixtureTemplate(t *testing.T) {
	env, builds := fxEnv(t, map[string]string{
		"tests/fixtures/tpl.lua": fxLog("tpl") + `local vm = provium.create("minimal")
vm:boot({memory = "256M"})
vm:mount_vfs()
assert(vm:exec("mkdir -p /mnt/fx && mount -t tmpfs -o size=90% fx /mnt/fx && echo kept > /mnt/fx/file").ok)
`,
		"tests/fixtures/layer.lua": fxLog("layer") + `local vm = provium.fixture("tpl")
vm:write_file("/mnt/fx/layer", "layered")
`,
		"tests/tpl_test.lua": `local vm = provium.fixture("tpl")
test("resumed", function()
  assert_eq("kept\n", vm:read_file("/mnt/fx/file"))
end)
test("writes most of its memory", function()
  -- All the memory the guest has free but 24 MiB: a tmpfs filled to the
  -- brim panics it.
  local r = vm:exec("echo changed > /mnt/fx/file && n=$(awk '/MemAvailable/ {print int($2 / 1024) - 24}' /proc/meminfo) && dd if=/dev/urandom of=/mnt/fx/fill bs=1M count=$n 2>/dev/null && echo $n")
  assert(r.ok, r.stderr)
  print("filled " .. r.stdout.trim() .. " MiB of the guest's memory")
  assert(tonumber(r.stdout.trim()) > 150, "too little memory free")
  assert_eq("changed\n", vm:read_file("/mnt/fx/file"))
end)
test("a second resume has the fixture's contents", function()
  local again = provium.fixture("tpl")
  assert_eq("kept\n", again:read_file("/mnt/fx/file"))
  assert(not again:exec("test -e /mnt/fx/fill").ok)
  again:kill()
end)
test("a nested fixture", function()
  local l = provium.fixture("layer")
  assert_eq("kept\n", l:read_file("/mnt/fx/file"))
  assert_eq("layered", l:read_file("/mnt/fx/layer"))
  l:kill()
end)
`,
	})
	events := fxJSONRun(t, env, "tests/")
	fxWantBuilds(t, builds, "first run", map[string]int{"tpl": 1, "layer": 1})
	for _, e := range events {
		if e.Event == "vm_resumed" || e.Event == "fixture_built" {
			t.Logf("%s %s", e.Event, e.Name)
		}
	}
	mem := fxTemplate(t, env.Cache, "tpl")
	fxTemplate(t, env.Cache, "layer")
	before, err := os.Stat(mem)
	if err != nil {
		t.Fatal(err)
	}
	sum := fileSum(t, mem)

	// The next run resumes both from the cache, writes as much again,
	// and the RAM file has not changed.
	fxJSONRun(t, env, "tests/")
	fxWantBuilds(t, builds, "second run", map[string]int{"tpl": 1, "layer": 1})
	after, err := os.Stat(mem)
	if err != nil {
		t.Fatal(err)
	}
	if fileSum(t, mem) != sum || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("resumed VMs changed the fixture's RAM file (modified %v, was %v)", after.ModTime(), before.ModTime())
	}
	workersNoQEMU(t, env)
}

// A template's RAM file or device state that is damaged, or a RAM file
// that is gone, is detected and the fixture rebuilt, never resumed, with a
// line in the log that says so.
func TestFixtureTemplateDamaged(t *testing.T) {
	env, builds := fxEnv(t, map[string]string{
		"tests/fixtures/snap.lua": fxLog("snap") + `local vm = provium.create("minimal")
vm:boot({memory = "256M"})
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

	damage := []struct {
		what string
		do   func(dir string)
	}{
		{"a page of the RAM file overwritten", func(dir string) {
			mem := filepath.Join(dir, "vm-0", "memory")
			f, err := os.OpenFile(mem, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// The first page past 64 MiB that holds data.
			page := make([]byte, 4096)
			for off := int64(64 << 20); ; off += 4096 {
				if _, err := f.ReadAt(page, off); err != nil {
					t.Fatalf("no data in the RAM file past 64 MiB: %v", err)
				}
				if !bytes.Equal(page, make([]byte, 4096)) {
					f.WriteAt(bytes.Repeat([]byte{0xa5}, 4096), off)
					return
				}
			}
		}},
		{"256 bytes of the device state overwritten", func(dir string) {
			snap := filepath.Join(dir, "vm-0", "snapshot")
			st, _ := os.Stat(snap)
			f, err := os.OpenFile(snap, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt(bytes.Repeat([]byte{0xa5}, 256), st.Size()/2)
			f.Close()
		}},
		{"the RAM file removed", func(dir string) {
			if err := os.Remove(filepath.Join(dir, "vm-0", "memory")); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for i, d := range damage {
		fxTemplate(t, env.Cache, "snap")
		d.do(fxEntryDir(t, env.Cache, "snap"))
		r := env.Run("test", "tests/")
		r.MustPass(t)
		fxWantBuilds(t, builds, "after "+d.what, map[string]int{"snap": 2 + i})
		if !strings.Contains(r.Stdout+r.Stderr, "fails its check") {
			t.Errorf("after %s: the log does not say why the fixture was rebuilt", d.what)
		}
	}
	workersNoQEMU(t, env)
}

// SIGKILL of provium while a template is being built leaves no entry, no
// file (the RAM file has no name until the snapshot is complete) and no
// QEMU; the next run builds the fixture and passes.
func TestFixtureTemplateKilledDuringBuild(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	env, builds := fxEnv(t, map[string]string{
		"tests/fixtures/slow.lua": fxLog("slow") + `local vm = provium.create("minimal")
vm:boot({memory = "256M"})
vm:write_file("/tmp/slow", "done")
if os.getenv("HOLD") == "1" then
  local f = assert(io.open(os.getenv("READY"), "w")) f:write("ready") f:close()
  vm:exec("sleep 600")
end
`,
		"tests/slow_test.lua": `local vm = provium.fixture("slow")
test("resumed", function() assert_eq("done", vm:read_file("/tmp/slow")) end)
`,
	})
	extra := env.Extra
	env.Extra = append(append([]string{}, extra...), "HOLD=1", "READY="+ready)
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
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("provium ended before the build got going (%v):\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	procs := qemuProcesses(t, env.Cache)
	if len(procs) != 1 {
		t.Fatalf("QEMU processes of the build: %v", procs)
	}
	if cmdline, _ := os.ReadFile("/proc/" + procs[0] + "/cmdline"); !bytes.Contains(cmdline, []byte("memory-backend-file")) {
		t.Errorf("the build's QEMU has no memory file: %q", cmdline)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	deadline := time.Now().Add(5 * time.Second)
	for len(qemuProcesses(t, env.Cache)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("QEMU processes left after provium was killed: %v", qemuProcesses(t, env.Cache))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Nothing but lock files, and no process holding a file of the cache
	// that has lost its name.
	fixtures := filepath.Join(env.Cache, "fixtures")
	filepath.WalkDir(fixtures, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != fixtures && !strings.HasSuffix(p, ".lock") {
			t.Errorf("the killed build left %s", p)
		}
		return nil
	})
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && strings.HasPrefix(l, env.Cache) {
			t.Errorf("%s is still open: %s", fd, l)
		}
	}
	if r := env.Run("fixture", "list"); !strings.Contains(r.Stdout, "no cached fixtures") {
		t.Errorf("fixture list after the kill:\n%s", r.Stdout)
	}

	env.Extra = extra
	env.Run("test", "tests/").MustPass(t)
	fxWantBuilds(t, builds, "run after the kill", map[string]int{"slow": 2})
	fxTemplate(t, env.Cache, "slow")
	workersNoQEMU(t, env)
}

// With PROVIUM_FIXTURE_TEMPLATES=off every fixture is a migration stream
// as before templates, the run log says so, and the fixture tests pass
// that way too.
func TestFixturesAsStreams(t *testing.T) {
	t.Setenv("PROVIUM_FIXTURE_TEMPLATES", "off")
	t.Run("Kind", func(t *testing.T) {
		env, _ := fxEnv(t, map[string]string{
			"tests/fixtures/plain.lua": `provium.create("minimal"):boot():write_file("/tmp/plain", "plain")
`,
			"tests/plain_test.lua": `local vm = provium.fixture("plain")
test("resumed", function() assert_eq("plain", vm:read_file("/tmp/plain")) end)
`,
		})
		r := env.Run("test", "tests/")
		r.MustPass(t)
		if !strings.Contains(r.Stdout+r.Stderr, "saved as migration streams, not memory templates: PROVIUM_FIXTURE_TEMPLATES=off") {
			t.Error("the run log does not say why fixtures are streams")
		}
		vms := fxVMs(t, env.Cache, "plain")
		if len(vms) != 1 || vms[0].Kind != "stream" || vms[0].Memory != nil {
			t.Errorf("the entry is not a stream: %+v", vms)
		}
		if m, _ := filepath.Glob(filepath.Join(env.Cache, "fixtures", "*", "vm-0", "memory")); len(m) != 0 {
			t.Errorf("a stream entry has a RAM file: %v", m)
		}
	})
	for _, tc := range []struct {
		name string
		test func(*testing.T)
	}{
		{"CacheAcrossRuns", TestFixtureCacheAcrossRuns},
		{"ListCleanNoCache", TestFixtureListCleanNoCache},
		{"ScriptError", TestFixtureScriptError},
		{"KilledDuringSnapshot", TestFixtureKilledDuringSnapshot},
		{"CorruptSnapshot", TestFixtureCorruptSnapshot},
		{"BootInputsRebuild", TestFixtureBootInputsRebuild},
		{"ReadOnlyCache", TestFixtureReadOnlyCache},
		{"ExportImport", TestFixtureExportImport},
		{"CacheServesAnotherCheckout", TestCacheServesAnotherCheckout},
		{"ClusterFixture", TestClusterFixture},
		{"ResumeSetsTheClock", TestFixtureResumeSetsTheClock},
	} {
		t.Run(tc.name, tc.test)
	}
}

// The pool holds a template-resumed VM at what it is measured to hold of
// its own, not its whole RAM, and the next resume of the fixture is
// admitted on that estimate.
func TestFixtureTemplatePool(t *testing.T) {
	env := NewEnv(t, map[string]string{
		"tests/fixtures/small.lua": `local vm = provium.create("minimal")
vm:boot({memory = "512M"})
vm:write_file("/tmp/kept", "kept")
`,
		"tests/pool_test.lua": `local first = provium.fixture("small")
first:exec("sleep 2.5")
local second = provium.fixture("small")
test("both resumed", function()
  assert_eq("kept", first:read_file("/tmp/kept"))
  assert_eq("kept", second:read_file("/tmp/kept"))
end)
`,
	})
	r := env.Run("test", "-v", "tests/")
	if r.Code != 0 {
		t.Fatalf("provium test: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	log := env.FileLog("tests/pool_test.lua")
	held := regexp.MustCompile(`holds (\d+) MiB of its own; the pool holds (\d+) MiB for it`).FindStringSubmatch(log)
	admitted := regexp.MustCompile(`the pool holds (\d+) MiB of 512 for it`).FindAllStringSubmatch(log, -1)
	if held == nil || len(admitted) != 2 {
		t.Fatalf("the log does not show the measured resumes:\n%s", log)
	}
	own, _ := strconv.Atoi(held[1])
	charged, _ := strconv.Atoi(held[2])
	second, _ := strconv.Atoi(admitted[1][1])
	if own <= 0 || charged >= 512 || second >= 512 || admitted[0][1] != "512" {
		t.Errorf("first resume admitted at %s MiB, measured %d MiB of its own and held at %d; the second admitted at %d (of 512)",
			admitted[0][1], own, charged, second)
	}
	t.Logf("a template-resumed VM of 512 MiB holds %d MiB of its own; the next was admitted at %d MiB", own, second)
}
