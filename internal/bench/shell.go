package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/cache"
	"github.com/provium/provium/internal/fixture"
	"github.com/provium/provium/internal/harness"
	"github.com/provium/provium/internal/luaapi"
	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/profile"
	"github.com/provium/provium/internal/qemu"
	"github.com/provium/provium/internal/wire"
)

// shellPrompt is the prompt provium shell sets: "[VM DIR]# ".
var shellPrompt = regexp.MustCompile(`\[\S+#\d+ [^\]\r\n]*\][#$] `)

// benchFixture is the fixture the shell figures resume; its name is the
// bench's own, so that its cache entries are told from the user's.
const benchFixture = "provium-bench-shell"

// Shell measures provium shell as a user meets it: the real binary,
// started on a terminal, until its prompt shows. It sets that against
// what the shell wraps, in the same rounds: a cold boot of the profile to
// its first agent op, and a resume of a fixture to its first op against
// provium shell --fixture. Each round runs a reference and its shell one
// after the other, in alternating order, so that the host's drift over
// minutes falls on both; the ratios are the medians of the rounds'.
func Shell(ctx context.Context, out io.Writer, opts Options) error {
	if opts.Profile == "" {
		opts.Profile = "minimal"
	}
	if opts.Boots <= 0 {
		opts.Boots = 5
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	cfg, err := profile.Load(wd)
	if err != nil {
		return err
	}
	p, err := cfg.Get(opts.Profile)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(opts.Dir, "provium-bench-shell-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The fixture lives in a project of its own; the shell names it by
	// path from this directory, so that its profile is this project's.
	script := filepath.Join(dir, "fixtures", benchFixture+".lua")
	if err := os.MkdirAll(filepath.Dir(script), 0o755); err != nil {
		return err
	}
	body := fmt.Sprintf("local vm = provium.create(%q):boot()\nvm:write_file(\"/root/ready\", \"yes\\n\")\n", opts.Profile)
	if err := os.WriteFile(script, []byte(body), 0o644); err != nil {
		return err
	}
	defer forgetFixtures(benchFixture, fixtureDirs(benchFixture))
	h, err := harness.New(harness.Config{StartDir: wd, RunDir: dir, Notes: opts.Log})
	if err != nil {
		return err
	}
	defer h.Close()
	host, closeHost := h.Host(filepath.Join(dir, "bench.lua"), opts.Log)
	defer closeHost()

	newVM := func(name string) machine.Config {
		return machine.Config{Name: name, Profile: p, Dir: filepath.Join(dir, name), Log: opts.Log}
	}
	// Warm what the first of each would pay once: the initramfs cache,
	// and the fixture's build, so that every figure is a resume.
	warm := machine.New(newVM("warm"))
	if err := warm.Boot(ctx, machine.BootOptions{}); err != nil {
		return err
	}
	warm.Kill()
	// After the first op, the resumed guest's first process: what a
	// shell pays on top of the resume (under emulation, none of the
	// guest's code is translated yet after a resume), timed apart from
	// the figure.
	var firstExecs []time.Duration
	// And how many blocks of guest code the new QEMU translated up to
	// the first op, and for the first process: under emulation, most of
	// what the first process costs.
	translates := qemu.Accel() == "tcg"
	var resumeBlocks, execBlocks []int
	blocks := func(m luaapi.Machine) (int, error) {
		if !translates {
			return 0, nil
		}
		t, ok := m.(interface {
			TranslationBlocks(context.Context) (int, error)
		})
		if !ok {
			return 0, fmt.Errorf("%s: cannot count its translation blocks", m.Name())
		}
		return t.TranslationBlocks(ctx)
	}
	resume := func() (time.Duration, error) {
		start := time.Now()
		r, err := host.Fixture(ctx, benchFixture)
		if err != nil {
			return 0, err
		}
		defer func() {
			for _, v := range r.VMs {
				v.Machine.Kill()
			}
		}()
		m := r.VMs[0].Machine
		a := m.Agent()
		if err := a.Ping(ctx); err != nil {
			return 0, err
		}
		d := time.Since(start)
		resumed, err := blocks(m)
		if err != nil {
			return 0, err
		}
		start = time.Now()
		res, err := a.Exec(ctx, wire.Exec{Cmd: "true"}, nil)
		if err == nil && res.ExitCode != 0 {
			err = fmt.Errorf("exit %d", res.ExitCode)
		}
		if err != nil {
			return 0, fmt.Errorf("first exec after the resume: %w", err)
		}
		firstExecs = append(firstExecs, time.Since(start))
		executed, err := blocks(m)
		if err != nil {
			return 0, err
		}
		resumeBlocks, execBlocks = append(resumeBlocks, resumed), append(execBlocks, executed-resumed)
		return d, nil
	}
	if _, err := resume(); err != nil {
		return fmt.Errorf("fixture build: %w", err)
	}
	firstExecs, resumeBlocks, execBlocks = nil, nil, nil

	coldBoot := func(i int) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			vm := machine.New(newVM(fmt.Sprintf("cold%d", i)))
			defer vm.Kill()
			start := time.Now()
			if err := vm.Boot(ctx, machine.BootOptions{}); err != nil {
				return 0, err
			}
			if err := vm.Agent().Ping(ctx); err != nil {
				return 0, err
			}
			return time.Since(start), nil
		}
	}
	shell := func(args ...string) func() (time.Duration, error) {
		return func() (time.Duration, error) { return shellToPrompt(ctx, exe, wd, args...) }
	}
	var boots, shells, resumes, fshells []time.Duration
	var shellRatios, fixtureRatios []float64
	var shellOver, fixtureOver []time.Duration
	for i := range opts.Boots {
		b, s, err := pair(ctx, i, coldBoot(i), shell("shell", opts.Profile))
		if err != nil {
			return err
		}
		r, f, err := pair(ctx, i, resume, shell("shell", "--fixture", script))
		if err != nil {
			return err
		}
		boots, shells = append(boots, b), append(shells, s)
		resumes, fshells = append(resumes, r), append(fshells, f)
		shellRatios = append(shellRatios, float64(s)/float64(b))
		fixtureRatios = append(fixtureRatios, float64(f)/float64(r))
		shellOver, fixtureOver = append(shellOver, s-b), append(fixtureOver, f-r)
	}
	n := len(boots)
	figure := func(label string, d []time.Duration) {
		fmt.Fprintf(out, "%-32s%8.0f ms (median of %d, %.0f-%.0f)\n", label, ms(median(d)), n, ms(slices.Min(d)), ms(slices.Max(d)))
	}
	// A round's ratio and difference set the shell against the reference
	// it ran beside: their medians are the figures to compare.
	ratio := func(label string, r []float64, over []time.Duration) {
		slices.Sort(r)
		fmt.Fprintf(out, "%-32s%8.3f (median of %d rounds, %.3f-%.3f; shell %+.0f ms)\n", label, r[len(r)/2], n, r[0], r[len(r)-1], ms(median(over)))
	}
	figure("cold boot to first op", boots)
	figure("shell to prompt", shells)
	ratio("shell / cold boot", shellRatios, shellOver)
	figure("fixture resume to first op", resumes)
	figure("shell --fixture to prompt", fshells)
	ratio("shell --fixture / resume", fixtureRatios, fixtureOver)
	figure("first exec after the resume", firstExecs)
	if translates {
		// The QEMU of each resume translates the guest's code afresh.
		count := func(label string, c []int) {
			slices.Sort(c)
			fmt.Fprintf(out, "%-32s%8d blocks translated (median of %d, %d-%d)\n", label, c[len(c)/2], len(c), c[0], c[len(c)-1])
		}
		count("resume to first op", resumeBlocks)
		count("first exec after the resume", execBlocks)
	}
	return nil
}

// settleTime is the pause before each measurement of a pair. The memory
// of a VM that just ended goes back to the host a moment later (a host
// that is itself a VM takes free pages back after about two seconds):
// a VM started at once finds its memory cheaper, one started later
// dearer, and without the pause that would fall on one side of a pair
// by the order of the two.
const settleTime = 3 * time.Second

// pair runs a reference and what is measured against it, the reference
// first in even rounds and second in odd ones, each after settleTime.
func pair(ctx context.Context, round int, ref, measured func() (time.Duration, error)) (time.Duration, time.Duration, error) {
	var r, m time.Duration
	run := func(f func() (time.Duration, error)) (time.Duration, error) {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(settleTime):
		}
		return f()
	}
	var err error
	if round%2 == 1 {
		if m, err = run(measured); err != nil {
			return 0, 0, err
		}
	}
	if r, err = run(ref); err != nil {
		return 0, 0, err
	}
	if round%2 == 0 {
		if m, err = run(measured); err != nil {
			return 0, 0, err
		}
	}
	return r, m, nil
}

// shellToPrompt starts provium (exe) with args in dir, on a terminal of
// its own, and returns the time until its prompt shows; then it leaves
// the shell and waits for the command to end.
func shellToPrompt(ctx context.Context, exe, dir string, args ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	ptm, pts, err := openPty(24, 80)
	if err != nil {
		return 0, err
	}
	defer ptm.Close()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Dir = dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	// A session of its own, with the terminal as its controlling one, as
	// a login shell has it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	start := time.Now()
	err = cmd.Start()
	pts.Close()
	if err != nil {
		return 0, err
	}
	prompt := make(chan time.Duration, 1)
	var screen bytes.Buffer
	read := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		shown := false
		for {
			n, err := ptm.Read(buf)
			screen.Write(buf[:n])
			if !shown && shellPrompt.Match(screen.Bytes()) {
				shown = true
				prompt <- time.Since(start)
			}
			if err != nil {
				// EIO once the last process with the terminal ends.
				read <- err
				return
			}
		}
	}()
	var d time.Duration
	select {
	case d = <-prompt:
	case <-read:
		cmd.Wait()
		return 0, fmt.Errorf("provium %s ended before its prompt:\n%s", strings.Join(args, " "), screen.String())
	case <-ctx.Done():
		cmd.Process.Kill()
		cmd.Wait()
		<-read
		return 0, fmt.Errorf("provium %s: no prompt in 3 minutes:\n%s", strings.Join(args, " "), screen.String())
	}
	if _, err := ptm.Write([]byte("exit\r")); err != nil {
		return 0, err
	}
	err = cmd.Wait()
	<-read
	if err != nil {
		return 0, fmt.Errorf("provium %s: %w:\n%s", strings.Join(args, " "), err, screen.String())
	}
	return d, nil
}

// openPty opens a new terminal pair of rows by cols: the controlling
// side, read without blocking a thread, and the terminal itself.
func openPty(rows, cols uint16) (ptm, pts *os.File, err error) {
	ptm, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open a terminal: %w", err)
	}
	// Fd would put the file in blocking mode; the ioctls go through the
	// raw descriptor instead.
	rc, err := ptm.SyscallConn()
	if err != nil {
		ptm.Close()
		return nil, nil, err
	}
	var n uint32
	var ioctlErr error
	err = rc.Control(func(fd uintptr) {
		if ioctlErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioctlErr != nil {
			return
		}
		n, ioctlErr = unix.IoctlGetUint32(int(fd), unix.TIOCGPTN)
	})
	if err = errors.Join(err, ioctlErr); err != nil {
		ptm.Close()
		return nil, nil, fmt.Errorf("open a terminal: %w", err)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		ptm.Close()
		return nil, nil, fmt.Errorf("open a terminal: %w", err)
	}
	if err := unix.IoctlSetWinsize(int(pts.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		ptm.Close()
		pts.Close()
		return nil, nil, fmt.Errorf("terminal size: %w", err)
	}
	return ptm, pts, nil
}

// fixtureDirs lists the cache entries of fixture name.
func fixtureDirs(name string) map[string]bool {
	dirs := map[string]bool{}
	for _, e := range fixture.List(cache.Fixtures()) {
		if e.Name == name {
			dirs[e.Dir] = true
		}
	}
	return dirs
}

// forgetFixtures drops the cache entries of fixture name that were not
// there before, and the locks of its builds: the bench made them, and
// their scripts are gone with it.
func forgetFixtures(name string, before map[string]bool) {
	for dir := range fixtureDirs(name) {
		if !before[dir] {
			cache.Remove(dir)
		}
	}
	locks, _ := filepath.Glob(filepath.Join(cache.Fixtures(), name+"-*.build.lock"))
	for _, l := range locks {
		if unlock, ok := cache.TryLock(strings.TrimSuffix(l, ".lock")); ok {
			os.Remove(l)
			unlock()
		}
	}
}
