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
	run := func() (time.Duration, error) {
		cmd := exec.CommandContext(ctx, exe, "test", "-q", "tests")
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
		start := time.Now()
		err := cmd.Run()
		return time.Since(start), err
	}
	// The first run builds the fixture into the cache; the second is what
	// a suite costs from then on.
	first, err := run()
	if err != nil {
		return fmt.Errorf("suite run with fixture build: %w", err)
	}
	warm, err := run()
	if err != nil {
		return fmt.Errorf("suite run: %w", err)
	}
	fmt.Fprintf(out, "suite of %d files, fixture built  %8.1f s  (%.0f files/min)\n", n, first.Seconds(), float64(n)/first.Minutes())
	fmt.Fprintf(out, "suite of %d files, fixture cached %8.1f s  (%.0f files/min)\n", n, warm.Seconds(), float64(n)/warm.Minutes())
	return nil
}
