package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A fixture cache serves every checkout of a suite: keys name the suite's
// files by content and by paths relative to the project, never by where
// the checkout is, when its files were written, or the run's TMPDIR.

// portableSuite has a fixture that loads a helper and injects a file at
// boot, and one built on it.
var portableSuite = map[string]string{
	"lib/setup.lua": `local M = {}
function M.prepare(vm)
  vm:exec("mkdir -p /srv")
  vm:write_file("/srv/base", "base-v1")
end
return M
`,
	"data/motd.txt": "hello from the host\n",
	"tests/fixtures/base.lua": `local setup = dofile("lib/setup.lua")
local vm = provium.create("minimal")
vm:boot({files = {["/etc/motd"] = "data/motd.txt"}})
setup.prepare(vm)
`,
	"tests/fixtures/layered.lua": `local vm = provium.fixture("base")
vm:write_file("/srv/layer", "layered-v1")
`,
	"tests/portable.lua": `local vm = provium.fixture("layered")
test("the fixtures' state is there", function()
  assert_eq("base-v1", vm:read_file("/srv/base"))
  assert_eq("layered-v1", vm:read_file("/srv/layer"))
  assert_eq("hello from the host\n", vm:read_file("/etc/motd"))
end)
`,
}

// checkout writes the suite into a directory of its own, with its own
// TMPDIR, sharing env's cache; every file gets a modification time of its
// own, as a fresh clone would.
func checkout(t *testing.T, env *Env, name string, files map[string]string) *Env {
	t.Helper()
	c := *env
	c.Dir = filepath.Join(t.TempDir(), name, "suite")
	c.Tmp = t.TempDir()
	for p, content := range files {
		c.Write(p, content)
	}
	return &c
}

// resumedOnly fails unless a run built no fixture and resumed one.
func resumedOnly(t *testing.T, when string, events []fxEvent) {
	t.Helper()
	if got := fxBuiltEvents(events); len(got) != 0 {
		t.Errorf("%s: fixtures built: %v, want every one resumed", when, got)
	}
	resumed := 0
	for _, e := range events {
		if e.Event == "vm_resumed" {
			resumed++
		}
	}
	if resumed != 1 {
		t.Errorf("%s: %d vm_resumed events, want 1 (layered)", when, resumed)
	}
}

func TestCacheServesAnotherCheckout(t *testing.T) {
	env := NewEnv(t, nil)
	a := checkout(t, env, "a", portableSuite)
	events := fxJSONRun(t, a, "tests/")
	if got := fxBuiltEvents(events); got["base"] != 1 || got["layered"] != 1 {
		t.Fatalf("first checkout: fixtures built %v, want base and layered once", got)
	}

	// Another directory, another TMPDIR, files written later: a resume.
	b := checkout(t, env, "b", portableSuite)
	resumedOnly(t, "second checkout", fxJSONRun(t, b, "tests/"))

	// A checkout whose helper differs is rebuilt from there, not resumed.
	changed := map[string]string{}
	for p, c := range portableSuite {
		changed[p] = c
	}
	changed["lib/setup.lua"] = strings.Replace(portableSuite["lib/setup.lua"], `vm:exec("mkdir -p /srv")`, `vm:exec("mkdir -p /srv /opt")`, 1)
	c := checkout(t, env, "c", changed)
	if got := fxBuiltEvents(fxJSONRun(t, c, "tests/")); got["base"] != 1 || got["layered"] != 1 {
		t.Errorf("a checkout with another helper: fixtures built %v, want base and layered rebuilt", got)
	}
	workersNoQEMU(t, env)
}

func TestFixtureExportImport(t *testing.T) {
	env := NewEnv(t, nil)
	a := checkout(t, env, "a", portableSuite)
	fxJSONRun(t, a, "tests/")
	archive := filepath.Join(t.TempDir(), "fixtures.tar.gz")
	r := a.Run("fixture", "export", archive, "layered")
	if r.Code != 0 || !strings.Contains(r.Stdout, "exported base") || !strings.Contains(r.Stdout, "exported layered") {
		t.Fatalf("export of layered (and base, which it resumed): exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if st, err := os.Stat(archive); err != nil || st.Size() == 0 {
		t.Fatalf("no archive: %v", err)
	}

	// Another checkout with an empty cache of its own.
	b := checkout(t, env, "b", portableSuite)
	b.Cache = t.TempDir()
	r = b.Run("fixture", "import", archive)
	if r.Code != 0 || strings.Count(r.Stdout, "imported ") != 2 {
		t.Fatalf("import: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	resumedOnly(t, "after import", fxJSONRun(t, b, "tests/"))
	if r := b.Run("fixture", "import", archive); r.Code != 0 || strings.Count(r.Stdout, "already in the cache") != 2 {
		t.Errorf("a second import: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// Imported into a checkout whose fixture script differs: rebuilt.
	changed := map[string]string{}
	for p, c := range portableSuite {
		changed[p] = c
	}
	changed["tests/fixtures/layered.lua"] = portableSuite["tests/fixtures/layered.lua"] + "-- edited\n"
	c := checkout(t, env, "c", changed)
	c.Cache = t.TempDir()
	c.Run("fixture", "import", archive)
	if got := fxBuiltEvents(fxJSONRun(t, c, "tests/")); got["layered"] != 1 || got["base"] != 0 {
		t.Errorf("an edited layered.lua after import: fixtures built %v, want layered alone rebuilt", got)
	}
	workersNoQEMU(t, env)
}

// clusterSuite has a fixture of two VMs on a network.
var clusterSuite = map[string]string{
	"tests/fixtures/pair.lua": `local net = provium.network("lan")
local a = provium.create("minimal")
a:boot({networks = {net}, hostname = "alpha"})
local b = provium.create("minimal")
b:boot({networks = {net}, hostname = "beta"})
a:write_file("/tmp/role", "alpha")
`,
	"tests/pair.lua": `local vms, nets = provium.fixture("pair")
test("the cluster resumes whole, on its network", function()
  assert_eq("alpha", vms.alpha:read_file("/tmp/role"))
  assert_eq("10.1.0.2", vms.beta:ip(nets.lan))
  local r = vms.alpha:exec("ping -c 1 -W 5 beta")
  assert(r.ok, "alpha cannot reach beta: " .. tostring(r.stdout) .. tostring(r.stderr))
end)
`,
}

// A cluster fixture travels too: every VM's snapshot, resumed on networks
// made again with the same addresses.
func TestClusterFixtureServesAnotherCheckout(t *testing.T) {
	env := NewEnv(t, nil)
	a := checkout(t, env, "a", clusterSuite)
	if got := fxBuiltEvents(fxJSONRun(t, a, "tests/")); got["pair"] != 1 {
		t.Fatalf("first checkout: fixtures built %v, want pair once", got)
	}
	b := checkout(t, env, "b", clusterSuite)
	if got := fxBuiltEvents(fxJSONRun(t, b, "tests/")); len(got) != 0 {
		t.Errorf("second checkout: fixtures built %v, want pair resumed", got)
	}
	archive := filepath.Join(t.TempDir(), "pair.tar")
	if r := a.Run("fixture", "export", archive); r.Code != 0 {
		t.Fatalf("export: exit %d\n%s", r.Code, r.Stderr)
	}
	c := checkout(t, env, "c", clusterSuite)
	c.Cache = t.TempDir()
	if r := c.Run("fixture", "import", archive); r.Code != 0 || !strings.Contains(r.Stdout, "imported pair") {
		t.Fatalf("import: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if got := fxBuiltEvents(fxJSONRun(t, c, "tests/")); len(got) != 0 {
		t.Errorf("after import: fixtures built %v, want pair resumed", got)
	}
	workersNoQEMU(t, env)
}
