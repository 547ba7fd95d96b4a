package e2e

// End-to-end tests of the runner: the resource pool, --fail-fast,
// --rerun-failed, per-file timeouts, Ctrl-C, sharding, the JSON and JUnit
// reports, the failure report and its logs, and a suite of many small files
// under the default settings.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// luaNote defines note(s) in a test file: it appends a line to the host
// file $E2E_TRACE, so that tests see what files did and in which order
// without timing anything.
const luaNote = `local function note(s)
  local f = assert(io.open(os.getenv("E2E_TRACE"), "a"))
  f:write(s .. "\n")
  f:close()
end
`

// withTrace points $E2E_TRACE of env's runs at a fresh file and returns a
// function that reads its lines (none while it does not exist).
func withTrace(t *testing.T, env *Env) (path string, lines func() []string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "trace")
	env.Extra = append(env.Extra, "E2E_TRACE="+path)
	return path, func() []string {
		data, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return strings.Fields(strings.ReplaceAll(string(data), " ", "_"))
	}
}

// lineOf is the 1-based number of the first line of src that contains s.
func lineOf(t *testing.T, src, s string) int {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("%q not in the source", s)
	return 0
}

// runnerEvent is one line of --json output.
type runnerEvent struct {
	Event    string  `json:"event"`
	File     string  `json:"file"`
	Name     string  `json:"name"`
	Status   string  `json:"status"`
	Message  string  `json:"message"`
	Location string  `json:"location"`
	Log      string  `json:"log"`
	Seconds  float64 `json:"seconds"`
	Time     string  `json:"time"`
	Summary  *struct {
		Passed      int  `json:"passed"`
		Failed      int  `json:"failed"`
		Skipped     int  `json:"skipped"`
		NotRun      int  `json:"not_run"`
		Interrupted bool `json:"interrupted"`
	} `json:"summary"`
}

// parseEvents reads --json output: every line must be one JSON object.
func parseEvents(t *testing.T, out string) []runnerEvent {
	t.Helper()
	var events []runnerEvent
	for i, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("line %d of --json output is not a JSON object: %v\n%s", i+1, err, line)
		}
		var e runnerEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if e.Event == "" || e.Time == "" {
			t.Fatalf("line %d has no event or time: %s", i+1, line)
		}
		events = append(events, e)
	}
	return events
}

// eventIndex is the position of the first event of kind for file (any
// file if ""), or -1.
func eventIndex(events []runnerEvent, kind, file string) int {
	return slices.IndexFunc(events, func(e runnerEvent) bool {
		return e.Event == kind && (file == "" || e.File == file)
	})
}

// latestRun is the run directory env's last completed run left.
func latestRun(t *testing.T, env *Env) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(filepath.Join(env.Tmp, "provium-runs-"+strconv.Itoa(os.Getuid()), "latest"))
	if err != nil {
		t.Fatalf("no latest run: %v", err)
	}
	return dir
}

// waitNoQEMU fails the test unless env's QEMU processes are gone within a
// few seconds.
func waitNoQEMU(t *testing.T, env *Env) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := qemuProcesses(t, env.Cache)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("QEMU processes left behind: %v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Fixed mode: a boot that does not fit the budget waits until another VM
// gives its memory back, and -p defaults to unlimited.
func TestRunnerFixedPool(t *testing.T) {
	vmFile := func(name string) string {
		return luaNote + `local vm = provium.create("minimal"):boot({memory = "512M"})
note("start ` + name + `")
test("runs", function() assert(vm:exec("true").ok) end)
note("stop ` + name + `")
vm:shutdown()
`
	}
	env := NewEnv(t, map[string]string{
		"t/a_first.lua":  vmFile("a"),
		"t/b_second.lua": vmFile("b"),
		"t/c_light.lua":  `test("light", function() assert(true) end)`,
	})
	_, trace := withTrace(t, env)

	r := env.Run("test", "--json", "--mem", "700M", "--cpus", "4", "t/")
	if r.Code != 0 {
		t.Fatalf("want exit 0, got %d:\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	events := parseEvents(t, r.Stdout)
	last := events[len(events)-1]
	if last.Event != "run_finished" || last.Summary == nil || last.Summary.Passed != 3 || last.Summary.Failed != 0 {
		t.Errorf("last event = %+v, want run_finished with 3 passed", last)
	}

	// Two 512M VMs do not fit in 700M: they ran one after the other.
	got := trace()
	if len(got) != 4 {
		t.Fatalf("trace = %q, want the start and stop of two VMs", got)
	}
	for i := 0; i < 4; i += 2 {
		start, stop := got[i], got[i+1]
		if !strings.HasPrefix(start, "start_") || stop != "stop_"+strings.TrimPrefix(start, "start_") {
			t.Fatalf("trace = %q: the VMs' lifetimes overlap", got)
		}
	}

	// Every file started before either VM file finished: -p is unlimited
	// (the default on this host would be 2).
	firstDone := min(eventIndex(events, "file_finished", "t/a_first.lua"), eventIndex(events, "file_finished", "t/b_second.lua"))
	for _, f := range []string{"t/a_first.lua", "t/b_second.lua", "t/c_light.lua"} {
		if i := eventIndex(events, "file_started", f); i < 0 || i > firstDone {
			t.Errorf("%s started at event %d, after the first VM file finished (event %d):\n%s", f, i, firstDone, r.Stdout)
		}
	}
}

// A VM larger than the whole budget fails at once instead of waiting for
// room that can never come, and starts no QEMU.
func TestRunnerVMLargerThanPool(t *testing.T) {
	env := NewEnv(t, map[string]string{
		"t/big.lua": `local vm = provium.create("minimal"):boot({memory = "512M"})
vm:shutdown()
`,
	})
	// Were the boot waiting, the file would time out instead.
	r := env.Run("test", "--mem", "256M", "--timeout", "2m", "t/")
	r.MustFail(t, "t/big.lua:1:", "VM needs 512 MiB but the pool has 256 MiB", "FAIL: 0 passed, 1 failed")
	if strings.Contains(r.Stdout, "timed out") {
		t.Errorf("the boot waited for the pool:\n%s", r.Stdout)
	}
	log, err := os.ReadFile(filepath.Join(latestRun(t, env), "t_big.lua.log"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), "qemu-system") {
		t.Errorf("a QEMU was started for a VM that cannot fit:\n%s", log)
	}
	waitNoQEMU(t, env)
}

// --fail-fast with -p 1: after the first failure no other file starts,
// and those are not counted.
func TestRunnerFailFast(t *testing.T) {
	env := NewEnv(t, map[string]string{
		"t/1_fails.lua": `test("boom", function() error("boom") end)`,
		"t/2_next.lua":  luaNote + `note("ran 2") test("fine", function() end)`,
		"t/3_last.lua":  luaNote + `note("ran 3") test("fine", function() end)`,
	})
	_, trace := withTrace(t, env)

	r := env.Run("test", "-p", "1", "--fail-fast", "t/")
	r.MustFail(t, "t/1_fails.lua ... FAIL", "boom", "stopped after the first failure: 2 files not run", "FAIL: 0 passed, 1 failed")
	if got := trace(); len(got) != 0 {
		t.Errorf("files ran after the failure: %q", got)
	}
	if strings.Contains(r.Stdout, "2_next") || strings.Contains(r.Stdout, "3_last") {
		t.Errorf("files after the failure are reported:\n%s", r.Stdout)
	}

	// Without --fail-fast, the same suite runs to the end.
	r = env.Run("test", "-p", "1", "t/")
	r.MustFail(t, "FAIL: 2 passed, 1 failed")
	if got := trace(); !slices.Equal(got, []string{"ran_2", "ran_3"}) {
		t.Errorf("trace = %q, want both later files run", got)
	}
}

// --rerun-failed runs only what failed in the last completed run, as
// recorded in the run directories under $TMPDIR/provium-runs-<uid>.
func TestRunnerRerunFailed(t *testing.T) {
	env := NewEnv(t, map[string]string{
		"t/bad.lua":  luaNote + `note("ran bad") test("check", function() assert_eq(1, 2) end)`,
		"t/good.lua": luaNote + `note("ran good") test("check", function() assert_eq(1, 1) end)`,
	})
	tracePath, trace := withTrace(t, env)
	runs := filepath.Join(env.Tmp, "provium-runs-"+strconv.Itoa(os.Getuid()))

	r := env.Run("test", "t/")
	r.MustFail(t, "t/bad.lua ... FAIL", "t/good.lua ... ok", "FAIL: 1 passed, 1 failed")
	first := latestRun(t, env)
	if filepath.Dir(first) != runs {
		t.Fatalf("run directory %s is not under %s", first, runs)
	}
	failed, err := os.ReadFile(filepath.Join(first, "failed.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(env.Dir, "t/bad.lua") + "\n"; string(failed) != want {
		t.Errorf("failed.txt = %q, want %q", failed, want)
	}

	os.Remove(tracePath)
	r = env.Run("test", "--rerun-failed")
	r.MustFail(t, "t/bad.lua ... FAIL", "FAIL: 0 passed, 1 failed")
	if strings.Contains(r.Stdout, "good.lua") {
		t.Errorf("--rerun-failed ran a file that passed:\n%s", r.Stdout)
	}
	if got := trace(); !slices.Equal(got, []string{"ran_bad"}) {
		t.Errorf("trace = %q, want only the failed file run", got)
	}
	second := latestRun(t, env)
	if second == first {
		t.Errorf("the rerun did not get a run directory of its own")
	}
	dirs, _ := filepath.Glob(filepath.Join(runs, "run-*"))
	if len(dirs) != 2 {
		t.Errorf("run directories = %q, want 2", dirs)
	}

	// Once fixed, the file passes on the rerun, and then nothing is left.
	env.Write("t/bad.lua", luaNote+`note("ran bad") test("check", function() assert_eq(2, 2) end)`)
	env.Run("test", "--rerun-failed").MustPass(t)
	r = env.Run("test", "--rerun-failed")
	if r.Code != 0 || !strings.Contains(r.Stdout, "no failed files in the last run") {
		t.Errorf("want nothing to rerun, got exit %d:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// --timeout stops a file that spins in Lua or waits on a guest call that
// never returns; it fails saying so, and its VMs are killed then, not when
// provium exits.
func TestRunnerTimeout(t *testing.T) {
	hang := `local vm = provium.create("minimal"):boot({memory = "256M"})
vm:exec("sleep 1000")
`
	spin := `local vm = provium.create("minimal"):boot({memory = "256M"})
local n = 0
while true do n = n + 1 end
`
	// Starts when one of the others has timed out (-p 2) and waits, with
	// its own VM up, until it is the only QEMU of this test.
	check := `local vm = provium.create("minimal"):boot({memory = "256M"})
local function qemus()
  local p = io.popen("pgrep -f '[q]emu-system.*" .. os.getenv("E2E_CACHE") .. "' | wc -l")
  local n = tonumber(p:read("*a"))
  p:close()
  return n
end
test("timed-out VMs are gone", function()
  assert(qemus() >= 1, "this file's own VM is seen")
  wait_until(function() return qemus() == 1 end, {timeout = 30, desc = "the other files' VMs to be killed"})
end)
vm:shutdown()
`
	env := NewEnv(t, map[string]string{"t/a_hang.lua": hang, "t/b_spin.lua": spin, "t/c_check.lua": check})
	env.Extra = append(env.Extra, "E2E_CACHE="+env.Cache)

	r := env.Run("test", "-p", "2", "--timeout", "45s", "t/")
	r.MustFail(t,
		"FAIL: timed out after 45s: t/a_hang.lua:2: vm:exec",
		"FAIL: timed out after 45s: t/b_spin.lua:3:",
		"t/c_check.lua ... ok",
		"FAIL: 1 passed, 2 failed")
	waitNoQEMU(t, env)
}

// Ctrl-C stops the run: the VMs are killed, what finished is reported,
// and provium exits 130.
func TestRunnerInterrupt(t *testing.T) {
	env := NewEnv(t, map[string]string{
		"t/a_quick.lua": `test("quick", function() assert(true) end)`,
		"t/b_sleep.lua": luaNote + `local vm = provium.create("minimal"):boot({memory = "256M"})
note("booted")
vm:exec("sleep 1000")
`,
	})
	_, trace := withTrace(t, env)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := env.Command(ctx, "test", "-p", "2", "t/")
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	// Wait until the quick file is reported and the guest sleeps.
	deadline := time.Now().Add(2 * time.Minute)
	for !(strings.Contains(stdout.String(), "t/a_quick.lua ... ok") &&
		slices.Contains(trace(), "booted") && len(qemuProcesses(t, env.Cache)) > 0) {
		select {
		case err := <-done:
			t.Fatalf("provium ended early (%v):\n%s\n%s", err, stdout.String(), stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the VM did not come up:\n%s\n%s", stdout.String(), stderr.String())
		}
	}
	time.Sleep(500 * time.Millisecond) // let the exec reach the guest
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}

	var err error
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatalf("provium did not stop after SIGINT:\n%s\n%s", stdout.String(), stderr.String())
	}
	t.Logf("provium after SIGINT: %v\n%s%s", err, stdout.String(), stderr.String())
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 130 {
		t.Fatalf("want exit 130, got %v", err)
	}
	out := stdout.String()
	for _, want := range []string{"t/a_quick.lua ... ok", "interrupted: 1 file did not finish", "FAIL: 1 passed, 0 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "b_sleep.lua ...") {
		t.Errorf("the interrupted file is reported as if it had finished")
	}
	waitNoQEMU(t, env)
}

// lockedBuffer is a bytes.Buffer that a running command writes while the
// test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// --shard K/N splits the discovered files so that the N shards cover every
// file exactly once, whatever N.
func TestRunnerShardList(t *testing.T) {
	files := map[string]string{"t/fixtures/base.lua": `-- not a test`}
	for i := 1; i <= 17; i++ {
		dir := "t"
		if i%3 == 0 {
			dir = "t/sub"
		}
		files[fmt.Sprintf("%s/f%02d.lua", dir, i)] = `test("x", function() end)`
	}
	env := NewEnv(t, files)

	list := func(args ...string) []string {
		t.Helper()
		r := env.Run(append([]string{"test", "--list"}, args...)...)
		if r.Code != 0 {
			t.Fatalf("exit %d: %s", r.Code, r.Stderr)
		}
		return strings.Fields(r.Stdout)
	}
	all := list("t/")
	if len(all) != 17 || !slices.IsSorted(all) || slices.Contains(all, "t/fixtures/base.lua") {
		t.Fatalf("--list = %q, want the 17 tests sorted", all)
	}
	for n := 1; n <= 4; n++ {
		seen := map[string]int{}
		sizes := []int{}
		for k := 1; k <= n; k++ {
			shard := list("--shard", fmt.Sprintf("%d/%d", k, n), "t/")
			sizes = append(sizes, len(shard))
			for _, f := range shard {
				seen[f]++
			}
		}
		for _, f := range all {
			if seen[f] != 1 {
				t.Errorf("N=%d: %s is in %d shards", n, f, seen[f])
			}
		}
		if len(seen) != len(all) {
			t.Errorf("N=%d: the shards list %d files, want %d", n, len(seen), len(all))
		}
		if slices.Max(sizes)-slices.Min(sizes) > 1 {
			t.Errorf("N=%d: shard sizes %v are uneven", n, sizes)
		}
	}
}

// The JUnit shapes, as a CI system reads them.
type (
	junitDoc struct {
		XMLName  xml.Name     `xml:"testsuites"`
		Tests    int          `xml:"tests,attr"`
		Failures int          `xml:"failures,attr"`
		Errors   int          `xml:"errors,attr"`
		Suites   []junitSuite `xml:"testsuite"`
	}
	junitSuite struct {
		Name      string      `xml:"name,attr"`
		Tests     int         `xml:"tests,attr"`
		Failures  int         `xml:"failures,attr"`
		Skipped   int         `xml:"skipped,attr"`
		Time      string      `xml:"time,attr"`
		Cases     []junitCase `xml:"testcase"`
		SystemOut string      `xml:"system-out"`
	}
	junitCase struct {
		Name      string `xml:"name,attr"`
		Classname string `xml:"classname,attr"`
		Time      string `xml:"time,attr"`
		Failure   *struct {
			Message string `xml:"message,attr"`
			Type    string `xml:"type,attr"`
			Body    string `xml:",chardata"`
		} `xml:"failure"`
		Skipped *struct {
			Message string `xml:"message,attr"`
		} `xml:"skipped"`
	}
)

func readJUnit(t *testing.T, path string) junitDoc {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc junitDoc
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, data)
	}
	return doc
}

func (d junitDoc) suite(t *testing.T, name string) junitSuite {
	t.Helper()
	for _, s := range d.Suites {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no testsuite %q in %+v", name, d)
	return junitSuite{}
}

func (s junitSuite) testcase(t *testing.T, name string) junitCase {
	t.Helper()
	for _, c := range s.Cases {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no testcase %q in suite %s", name, s.Name)
	return junitCase{}
}

// One suite run as two shards with --junit: the failure report on the
// console, the kept and deleted logs, the JUnit files read back by an XML
// parser and merged, and shards whose counts add up.
func TestRunnerReportsAndShards(t *testing.T) {
	alpha := `local vm = provium.create("minimal"):boot({memory = "256M"})
test("passes", function() assert(vm:exec("true").ok) end)
test("fails", function()
  vm:exec("echo console-marker-7f3a > /dev/kmsg; sleep 1")
  local r = vm:exec("echo 41")
  assert_eq("42\n", r.stdout.value)
end)
test("later", function() todo("not yet") end)
vm:shutdown()
`
	beta := `local vm = provium.create("minimal"):boot({memory = "256M"})
test("passes", function() assert(vm:exec("true").ok) end)
vm:shutdown()
`
	// Sorted alpha, beta, delta, gamma: shard 1/2 runs alpha and delta,
	// 2/2 beta and gamma; each shard boots one VM.
	env := NewEnv(t, map[string]string{
		"t/alpha.lua": alpha,
		"t/beta.lua":  beta,
		"t/delta.lua": `test("passes", function() end) test("later", function() todo("also not yet") end)`,
		"t/gamma.lua": `test("passes", function() end)`,
	})
	failLine := lineOf(t, alpha, `assert_eq("42\n"`)
	where := fmt.Sprintf("t/alpha.lua:%d:", failLine)
	junit1, junit2 := filepath.Join(t.TempDir(), "shard1.xml"), filepath.Join(t.TempDir(), "shard2.xml")

	r1 := env.Run("test", "--shard", "1/2", "--junit", junit1, "t/")
	r1.MustFail(t, "t/alpha.lua ... FAIL", "t/delta.lua ... ok", "FAIL: 1 passed, 1 failed")
	run1 := latestRun(t, env)
	r2 := env.Run("test", "--shard", "2/2", "--junit", junit2, "t/")
	r2.MustPass(t)
	if !strings.Contains(r2.Stdout, "ok: 2 passed, 0 failed") {
		t.Errorf("shard 2/2 did not run beta and gamma:\n%s", r2.Stdout)
	}
	run2 := latestRun(t, env)
	for _, f := range []string{"beta", "gamma"} {
		if strings.Contains(r1.Stdout, f) {
			t.Errorf("shard 1/2 ran %s", f)
		}
	}
	for _, f := range []string{"alpha", "delta"} {
		if strings.Contains(r2.Stdout, f) {
			t.Errorf("shard 2/2 ran %s", f)
		}
	}

	t.Run("failure report", func(t *testing.T) {
		out := r1.Stdout
		for _, want := range []string{
			"· passes ... ok",
			"· fails ... FAIL: " + where + ` expected "42\n", got "41\n"`,
			"\t" + where + " in function",
			"· later ... todo: not yet",
			"--- console (last 20 lines) ---",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("report lacks %q:\n%s", want, out)
			}
		}
		tail := consoleTailOf(out)
		if len(tail) != 20 {
			t.Fatalf("console tail has %d lines, want 20: %q", len(tail), tail)
		}
		if !slices.ContainsFunc(tail, func(l string) bool { return strings.Contains(l, "console-marker-7f3a") }) {
			t.Errorf("the console tail lacks what the guest printed just before the failure: %q", tail)
		}

		// The failed file's log is kept, with the whole console and the
		// trace of the agent calls; the passing files' logs are gone.
		logPath := filepath.Join(run1, "t_alpha.lua.log")
		if !strings.Contains(out, "Failed test logs:\n  t/alpha.lua  → "+logPath) {
			t.Errorf("report does not point at %s:\n%s", logPath, out)
		}
		data, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		log := string(data)
		consoleLines := regexp.MustCompile(`(?m)^\[minimal#\d+ console\] `).FindAllStringIndex(log, -1)
		if len(consoleLines) <= 20 || !strings.Contains(log, "console] [    0.000000] Linux version") {
			t.Errorf("the log does not keep the whole console (%d lines):\n%s", len(consoleLines), log)
		}
		for _, l := range tail {
			if !strings.Contains(log, strings.TrimSpace(l)) {
				t.Errorf("console line %q is not in the log", l)
			}
		}
		calls := regexp.MustCompile(`(?m)^\[minimal#\d+ call\] ch\d+ exec "echo 41" \d+\.\d+ms ok$`)
		if !calls.MatchString(log) {
			t.Errorf("the log has no trace of the exec call with its duration:\n%s", log)
		}
		if !strings.Contains(log, "--- result ---") || !strings.Contains(log, where) {
			t.Errorf("the log lacks the file's report")
		}
		for _, gone := range []string{filepath.Join(run1, "t_delta.lua.log"), filepath.Join(run2, "t_beta.lua.log"), filepath.Join(run2, "t_gamma.lua.log")} {
			if _, err := os.Stat(gone); !os.IsNotExist(err) {
				t.Errorf("the log of a passing file is kept: %s (%v)", gone, err)
			}
		}
	})

	t.Run("junit", func(t *testing.T) {
		doc1, doc2 := readJUnit(t, junit1), readJUnit(t, junit2)
		if doc1.Tests != 5 || doc1.Failures != 1 || doc1.Errors != 0 || len(doc1.Suites) != 2 {
			t.Errorf("shard 1: tests=%d failures=%d errors=%d suites=%d, want 5, 1, 0, 2", doc1.Tests, doc1.Failures, doc1.Errors, len(doc1.Suites))
		}
		a := doc1.suite(t, "t/alpha.lua")
		if a.Tests != 3 || a.Failures != 1 || a.Skipped != 1 {
			t.Errorf("alpha: tests=%d failures=%d skipped=%d, want 3, 1, 1", a.Tests, a.Failures, a.Skipped)
		}
		if c := a.testcase(t, "passes"); c.Failure != nil || c.Skipped != nil || c.Classname != "t/alpha.lua" {
			t.Errorf("alpha passes = %+v", c)
		}
		if c := a.testcase(t, "later"); c.Skipped == nil || c.Skipped.Message != "not yet" || c.Failure != nil {
			t.Errorf("alpha later = %+v, want skipped with the todo reason", c)
		}
		fail := a.testcase(t, "fails")
		if fail.Failure == nil {
			t.Fatalf("alpha fails has no failure")
		}
		if !strings.HasPrefix(fail.Failure.Message, where) || !strings.Contains(fail.Failure.Message, `expected "42\n", got "41\n"`) {
			t.Errorf("failure message = %q, want it to start with %s", fail.Failure.Message, where)
		}
		if !strings.Contains(fail.Failure.Body, "stack traceback:") {
			t.Errorf("failure body lacks the traceback:\n%s", fail.Failure.Body)
		}
		// An assertion is not the guest's failure: the suite shows the
		// VM's console once, for all of its failures.
		for _, want := range []string{"--- console (last 20 lines) ---", "console-marker-7f3a"} {
			if !strings.Contains(a.SystemOut, want) {
				t.Errorf("alpha's output lacks %q:\n%s", want, a.SystemOut)
			}
		}
		d := doc1.suite(t, "t/delta.lua")
		if d.Tests != 2 || d.Failures != 0 || d.Skipped != 1 {
			t.Errorf("delta: tests=%d failures=%d skipped=%d, want 2, 0, 1", d.Tests, d.Failures, d.Skipped)
		}
		if doc2.Tests != 2 || doc2.Failures != 0 || len(doc2.Suites) != 2 {
			t.Errorf("shard 2: tests=%d failures=%d suites=%d, want 2, 0, 2", doc2.Tests, doc2.Failures, len(doc2.Suites))
		}

		// Merged, the shards' testcases keep distinct identities, though
		// every file has a sub-test named "passes".
		ids := map[string]int{}
		for _, doc := range []junitDoc{doc1, doc2} {
			for _, s := range doc.Suites {
				for _, c := range s.Cases {
					if c.Classname != s.Name {
						t.Errorf("testcase %q of %s has classname %q", c.Name, s.Name, c.Classname)
					}
					if _, err := strconv.ParseFloat(c.Time, 64); err != nil {
						t.Errorf("testcase %q time %q: %v", c.Name, c.Time, err)
					}
					ids[c.Classname+"\x00"+c.Name]++
				}
			}
		}
		if len(ids) != 7 {
			t.Errorf("merged: %d distinct testcases, want 7", len(ids))
		}
		for id, n := range ids {
			if n != 1 {
				t.Errorf("testcase %q appears %d times", id, n)
			}
		}
	})
}

// consoleTailOf returns the console lines of the first console section of
// a report.
func consoleTailOf(report string) []string {
	var tail []string
	sc := bufio.NewScanner(strings.NewReader(report))
	in := false
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.Contains(l, "--- console (last 20 lines) ---"):
			if in {
				return tail
			}
			in = true
		case in && strings.HasPrefix(l, "    ") && !strings.HasPrefix(l, "    · ") && !strings.HasPrefix(l, "    FAIL"):
			tail = append(tail, l)
		case in:
			return tail
		}
	}
	return tail
}

// --json prints one event object per line: the run, each file, its VMs and
// its sub-tests, with durations.
func TestRunnerJSON(t *testing.T) {
	env := NewEnv(t, map[string]string{
		"t/events.lua": `local vm = provium.create("minimal"):boot({memory = "256M"})
test("works", function() assert(vm:exec("true").ok) end)
test("later", function() todo("soon") end)
vm:shutdown()
`,
	})
	r := env.Run("test", "--json", "t/")
	if r.Code != 0 {
		t.Fatalf("want exit 0, got %d:\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	events := parseEvents(t, r.Stdout)
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, e.Event)
	}
	want := []string{"run_started", "file_started", "vm_booted", "subtest", "subtest", "vm_shutdown", "file_finished", "run_finished"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("events = %q, want %q", kinds, want)
	}
	for _, e := range events[1:7] {
		if e.File != "t/events.lua" {
			t.Errorf("%s event names file %q", e.Event, e.File)
		}
	}
	booted, shutdown := events[2], events[5]
	if !strings.HasPrefix(booted.Name, "minimal#") || shutdown.Name != booted.Name {
		t.Errorf("VM names: booted %q, shut down %q", booted.Name, shutdown.Name)
	}
	if booted.Seconds <= 0 || shutdown.Seconds < booted.Seconds {
		t.Errorf("vm_booted takes %vs and vm_shutdown says the VM lived %vs", booted.Seconds, shutdown.Seconds)
	}
	if s := events[3]; s.Name != "works" || s.Status != "ok" || s.Seconds <= 0 {
		t.Errorf("first subtest = %+v", s)
	}
	if s := events[4]; s.Name != "later" || s.Status != "todo" {
		t.Errorf("second subtest = %+v", s)
	}
	if f := events[6]; f.Status != "ok" || f.Seconds < shutdown.Seconds || f.Log != "" {
		t.Errorf("file_finished = %+v", f)
	}
	end := events[7]
	if end.Status != "ok" || end.Seconds <= 0 || end.Summary == nil || end.Summary.Passed != 1 || end.Summary.Failed != 0 {
		t.Errorf("run_finished = %+v", end)
	}
}

// Forty small files that each resume one shared fixture pass under the
// default settings, and the host keeps memory to spare while they run.
func TestRunnerFixtureSuite(t *testing.T) {
	files := map[string]string{
		"t/fixtures/shared.lua": `local vm = provium.create("minimal"):boot({memory = "256M"})
vm:write_file("/tmp/shared", "from the fixture\n")
`,
	}
	for i := 1; i <= 40; i++ {
		files[fmt.Sprintf("t/f%02d.lua", i)] = fmt.Sprintf(`local vm = provium.fixture("shared")
test("resumed", function()
  assert_eq("from the fixture\n", vm:read_file("/tmp/shared"))
  assert_eq("", vm:exec("cat /tmp/mine 2>/dev/null").stdout.value, "a resume sees no other file's changes")
  vm:write_file("/tmp/mine", "%d")
end)
vm:shutdown()
`, i)
	}
	env := NewEnv(t, files)

	before := readMeminfo(t)
	stop := make(chan struct{})
	sampled := make(chan meminfo)
	go func() {
		low := before
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				sampled <- low
				return
			case <-tick.C:
			}
			m := readMeminfo(t)
			low.availMiB = min(low.availMiB, m.availMiB)
			low.swapUsedMiB = max(low.swapUsedMiB, m.swapUsedMiB)
			low.swapOut = max(low.swapOut, m.swapOut)
		}
	}()
	r := env.Run("test", "t/")
	close(stop)
	low := <-sampled

	r.MustPass(t)
	if !strings.Contains(r.Stdout, "ok: 40 passed, 0 failed") {
		t.Errorf("want all 40 files passed:\n%s", r.Stdout)
	}
	t.Logf("MemAvailable: %d MiB before, %d MiB at the lowest; swap total %d MiB, used %d -> %d MiB at most, pages swapped out %d -> %d",
		before.availMiB, low.availMiB, before.swapTotalMiB, before.swapUsedMiB, low.swapUsedMiB, before.swapOut, low.swapOut)
	if low.availMiB < 1024 {
		t.Errorf("MemAvailable fell to %d MiB while the suite ran", low.availMiB)
	}
	if low.swapOut > before.swapOut {
		t.Errorf("the host swapped out %d pages while the suite ran", low.swapOut-before.swapOut)
	}
	waitNoQEMU(t, env)
}

type meminfo struct {
	availMiB, swapTotalMiB, swapUsedMiB int
	swapOut                             int // pswpout of /proc/vmstat
}

func readMeminfo(t *testing.T) meminfo {
	kb := map[string]int{}
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Error(err)
		return meminfo{}
	}
	for l := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 {
			kb[strings.TrimSuffix(f[0], ":")], _ = strconv.Atoi(f[1])
		}
	}
	m := meminfo{
		availMiB:     kb["MemAvailable"] / 1024,
		swapTotalMiB: kb["SwapTotal"] / 1024,
		swapUsedMiB:  (kb["SwapTotal"] - kb["SwapFree"]) / 1024,
	}
	if data, err := os.ReadFile("/proc/vmstat"); err == nil {
		for l := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "pswpout "); ok {
				m.swapOut, _ = strconv.Atoi(v)
			}
		}
	}
	return m
}
