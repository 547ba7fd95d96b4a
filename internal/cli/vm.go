package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/provium/provium/internal/fixture"
	"github.com/provium/provium/internal/harness"
	"github.com/provium/provium/internal/luaapi"
	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/pool"
	"github.com/provium/provium/internal/printable"
	"github.com/provium/provium/internal/repl"
	"github.com/provium/provium/internal/runner"
)

// debugFlags are the debugger and live-output options shared by test,
// shell and repl.
type debugFlags struct {
	gdb, gdbWait bool
	console      bool
}

func (d *debugFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&d.gdb, "gdb", false, "")
	fs.BoolVar(&d.gdbWait, "gdb-wait", false, "")
	fs.BoolVar(&d.console, "console", false, "")
}

// machineDebug is what --gdb and --gdb-wait ask of every VM: the gdb line
// is printed by note as soon as QEMU listens.
func (d debugFlags) machineDebug(note func(format string, args ...any)) machine.Debug {
	if !d.gdb && !d.gdbWait {
		return machine.Debug{}
	}
	return machine.Debug{
		GDB:  true,
		Wait: d.gdbWait,
		OnListen: func(name, addr, gdb string) {
			if d.gdbWait {
				note("provium: %s waits for gdb on %s (continue it in gdb):\n  %s\n", name, addr, gdb)
			} else {
				note("provium: %s: gdbstub on %s:\n  %s\n", name, addr, gdb)
			}
		},
	}
}

// harnessConfig is the harness configuration of shell and repl: the
// debugger's and the console's lines go to note.
func (d debugFlags) harnessConfig(note func(format string, args ...any)) harness.Config {
	cfg := harness.Config{Debug: d.machineDebug(note)}
	if d.console {
		cfg.Console = func(_, vm, line string) { note("%s", consoleLine(vm, line)) }
	}
	return cfg
}

// notes returns how shell and repl tell the user things on standard
// error: on a terminal, which may be raw by the time QEMU says where gdb
// goes, with lines ended for it.
func notes(interactive bool) func(format string, args ...any) {
	var w io.Writer = os.Stderr
	if interactive {
		w = repl.RawWriter(os.Stderr)
	}
	return func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
}

// sessionFile is the file an interactive command's host runs as: the
// test file it was given, or one beside the fixture it resumes, or one
// in startDir.
func sessionFile(startDir string, t vmTarget, testFile string) (string, error) {
	switch {
	case testFile != "":
		file, err := filepath.Abs(testFile)
		if err == nil {
			_, err = os.Stat(file)
		}
		return file, err
	case t.fixture != "":
		return fixtureHome(startDir, t.fixture)
	}
	return filepath.Join(startDir, "interactive"), nil
}

// consoleLine shows a console line of vm as text on a terminal.
func consoleLine(vm, line string) string {
	return fmt.Sprintf("[%s] %s\n", vm, printable.Line(line))
}

// vmTarget is what an interactive command runs in: a profile's VM, or a
// fixture's.
type vmTarget struct {
	profile string // "" with fixture
	fixture string // a name, or the path of a fixture script
}

func (t vmTarget) String() string {
	if t.fixture != "" {
		return "fixture " + t.fixture
	}
	return "profile " + t.profile
}

// session is the run of an interactive command: a run directory with its
// log, a harness, and a host as a file's, in the project's directory.
type session struct {
	runDir  *runner.RunDir
	logPath string
	log     *os.File
	h       *harness.Harness
	host    luaapi.Host
	close   func()
	stderr  io.Writer
}

// openSession prepares the machinery of an interactive command in
// startDir. file is what the host runs as: fixtures are looked up from
// its directory.
func openSession(command, startDir, file string, stderr io.Writer, cfg harness.Config) (*session, error) {
	rd, err := runner.NewRunDir(runner.DefaultBase(), time.Now())
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(rd.Path, command+".log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		os.RemoveAll(rd.Path)
		return nil, err
	}
	cfg.StartDir, cfg.RunDir = startDir, rd.Path
	cfg.Pool = pool.NewAuto(autoReserveMiB)
	cfg.Notes = stderr
	h, err := harness.New(cfg)
	if err != nil {
		log.Close()
		os.RemoveAll(rd.Path)
		return nil, err
	}
	host, closeHost := h.Host(file, log)
	return &session{runDir: rd, logPath: logPath, log: log, h: h, host: host, close: closeHost, stderr: stderr}, nil
}

// end kills what the session still runs; a session that failed keeps its
// log and says where it is.
func (s *session) end(failed bool) {
	s.close()
	s.h.Close()
	s.log.Close()
	if failed {
		fmt.Fprintf(s.stderr, "log: %s\n", s.logPath)
		return
	}
	os.RemoveAll(s.runDir.Path)
}

// start boots the target's VM or resumes its fixture (building it first
// if needed).
func (s *session) start(ctx context.Context, t vmTarget) (luaapi.Machine, error) {
	if t.fixture != "" {
		r, err := s.host.Fixture(ctx, fixtureName(t.fixture))
		if err != nil {
			return nil, err
		}
		// A cluster's first VM is the one the shell opens in; the others
		// run beside it.
		return r.VMs[0].Machine, nil
	}
	m, err := s.host.Create(t.profile)
	if err != nil {
		return nil, err
	}
	if err := m.Boot(ctx, machine.BootOptions{}); err != nil {
		return nil, err
	}
	return m, nil
}

// fixtureName is the name of a fixture given by name or script path.
func fixtureName(arg string) string {
	return strings.TrimSuffix(filepath.Base(arg), ".lua")
}

// fixtureHome returns the file an interactive command runs as, so that
// its host finds the fixture as a test file there would: by name, with
// fixture.Lookup. A script path names the directory above its fixtures
// directory. A bare name is the fixture of a test file in startDir
// (fixtures/NAME.lua there), else the only fixtures/NAME.lua that the
// project's walk finds below it.
func fixtureHome(startDir, arg string) (string, error) {
	home := func(script string) string { return filepath.Join(filepath.Dir(filepath.Dir(script)), "interactive") }
	if strings.ContainsRune(arg, '/') || strings.HasSuffix(arg, ".lua") {
		p := arg
		if !filepath.IsAbs(p) {
			p = filepath.Join(startDir, p)
		}
		p = filepath.Clean(p)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("--fixture %s: %w", arg, err)
		}
		name := fixtureName(p)
		dir := filepath.Dir(home(p))
		if found, err := fixture.Lookup(name, dir, dir); err != nil || found != p {
			return "", fmt.Errorf("--fixture %s: a fixture script is %s/NAME.lua", arg, fixture.ScriptDir)
		}
		return home(p), nil
	}
	if !fixture.ValidName(arg) {
		return "", fmt.Errorf("--fixture %q: not a fixture name", arg)
	}
	if p, err := fixture.Lookup(arg, startDir, startDir); err == nil {
		return home(p), nil
	}
	found, err := runner.FixtureScripts(startDir, arg)
	if err != nil {
		return "", fmt.Errorf("--fixture %s: %w", arg, err)
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("--fixture %s: no %s/%s.lua in or under %s", arg, fixture.ScriptDir, arg, startDir)
	case 1:
		return home(found[0]), nil
	}
	for i, f := range found {
		if rel, err := filepath.Rel(startDir, f); err == nil {
			found[i] = rel
		}
	}
	return "", fmt.Errorf("--fixture %s: %d scripts of that name (%s); give one's path", arg, len(found), strings.Join(found, ", "))
}

// targetArgs reads the [PROFILE | --fixture NAME] of shell and repl.
func targetArgs(rest []string, fixture string) (vmTarget, error) {
	t := vmTarget{fixture: fixture, profile: "default"}
	switch {
	case len(rest) > 1:
		return t, fmt.Errorf("one profile at most, got %s", strings.Join(rest, " "))
	case len(rest) == 1 && fixture != "":
		return t, errors.New("a profile and --fixture do not go together")
	case len(rest) == 1:
		t.profile = rest[0]
	}
	return t, nil
}
