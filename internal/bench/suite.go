package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// suiteFixture is the fixture the suite's files share, named for the
// bench so that its cache entries are told from the user's.
const suiteFixture = "provium-bench-suite"

// Suite writes a suite of n small files that each resume one shared fixture,
// runs it with provium's default settings and prints files per minute.
func Suite(ctx context.Context, out io.Writer, n int) error {
	dir, err := os.MkdirTemp("", "provium-suite-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	defer forgetFixtures(suiteFixture, fixtureDirs(suiteFixture))
	if err := os.MkdirAll(filepath.Join(dir, "tests", "fixtures"), 0o755); err != nil {
		return err
	}
	fixture := "local vm = provium.create(\"minimal\"):boot()\nvm:write_file(\"/tmp/ready\", \"yes\")\n"
	if err := os.WriteFile(filepath.Join(dir, "tests", "fixtures", suiteFixture+".lua"), []byte(fixture), 0o644); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		body := fmt.Sprintf(`local vm = provium.fixture(%q)
test("state", function()
  assert_eq("yes", vm:read_file("/tmp/ready"))
  assert(vm:exec("echo %d > /tmp/n").ok)
  assert_eq("%d", vm:exec("cat /tmp/n").stdout.trim())
end)
vm:shutdown()
`, suiteFixture, i, i)
		if err := os.WriteFile(filepath.Join(dir, "tests", fmt.Sprintf("t%02d.lua", i)), []byte(body), 0o644); err != nil {
			return err
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	run := func(env ...string) (time.Duration, error) {
		cmd := exec.CommandContext(ctx, exe, "test", "-q", "tests")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
		start := time.Now()
		err := cmd.Run()
		return time.Since(start), err
	}
	// The ways a run can resume the fixture, each set explicitly so that
	// the caller's environment does not blur them.
	ways := []struct{ name, templates, standby string }{
		{"stream", "off", "off"},
		{"template", "on", "off"},
		{"template + standby", "on", "on"},
	}
	env := func(i int) []string {
		return []string{"PROVIUM_FIXTURE_TEMPLATES=" + ways[i].templates, "PROVIUM_FIXTURE_STANDBY=" + ways[i].standby}
	}
	// The first runs build the fixture into the cache, as a stream and
	// as a template; the others are what a suite costs from then on,
	// each way in turn, twice, since the host's speed drifts.
	var built [2]time.Duration
	for i := range built {
		if built[i], err = run(env(i)...); err != nil {
			return fmt.Errorf("suite run with fixture build, %s: %w", ways[i].name, err)
		}
	}
	warm := make([][]time.Duration, len(ways))
	for range 2 {
		for i, w := range ways {
			d, err := run(env(i)...)
			if err != nil {
				return fmt.Errorf("suite run, %s: %w", w.name, err)
			}
			warm[i] = append(warm[i], d)
		}
	}
	perMin := func(d time.Duration) float64 { return float64(n) / d.Minutes() }
	for i := range built {
		fmt.Fprintf(out, "suite of %d files, %-18s fixture built  %6.1f s  (%.0f files/min)\n", n, ways[i].name, built[i].Seconds(), perMin(built[i]))
	}
	for i, w := range ways {
		fmt.Fprintf(out, "suite of %d files, %-18s fixture cached %6.1f s, %6.1f s  (%.0f, %.0f files/min)\n",
			n, w.name, warm[i][0].Seconds(), warm[i][1].Seconds(), perMin(warm[i][0]), perMin(warm[i][1]))
	}
	return nil
}
