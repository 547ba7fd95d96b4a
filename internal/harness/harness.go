// Package harness connects the Lua bindings to real VMs: for each test file
// it provides a luaapi.Host that knows the profiles, the resource pool, the
// fixtures and the file's log.
package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/provium/provium/internal/cache"
	"github.com/provium/provium/internal/fixture"
	"github.com/provium/provium/internal/luaapi"
	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/pool"
	"github.com/provium/provium/internal/profile"
	"github.com/provium/provium/internal/qemu"
	"github.com/provium/provium/internal/result"
	"github.com/provium/provium/internal/size"
)

// Config is what every file of one run shares.
type Config struct {
	StartDir string     // where provium started: profiles lookup, dofile base
	RunDir   string     // runner.DefaultBase()/run-<id>
	Pool     *pool.Pool // gates boots and resumes; nil: no gate
	NoCache  bool       // bypass the persistent fixture cache
	// BuildTimeout bounds each fixture build; 0 for none.
	BuildTimeout time.Duration
	// Notes, if set, hears what the user may want to know once in a run
	// (a read-only fixture cache).
	Notes io.Writer

	// Standbys is how many QEMUs to keep ready for the next resumes of
	// each template fixture VM (standby.go): as many as files run at
	// once, for runs of many files. $PROVIUM_FIXTURE_STANDBY=off keeps
	// none.
	Standbys int

	// Debug gives the VMs of the files a gdbstub; fixture builds have
	// none, so that --gdb-wait never holds up a snapshot.
	Debug machine.Debug
	// Print, if set, hears each line a file's print() writes.
	Print func(file, line string)
	// Console, if set, hears each console line of every VM of the files.
	Console func(file, vm, line string)
	// OnFailure, if set, runs when a sub-test fails, with the VMs of the
	// file still running; the file goes on when it returns.
	OnFailure func(ctx context.Context, file string, st result.Subtest, vms []*machine.VM)
}

// Harness runs files against real VMs.
type Harness struct {
	cfg      Config
	profiles *profile.Config
	fixtures *fixture.Manager
	seq      atomic.Int64

	shared   sharedMemory // what template-resumed VMs hold of their own
	standbys standbys

	mu   sync.Mutex
	live map[*machine.VM]bool
	emit func(result.Event) // for fixture builds, which belong to no file

	// run is the harness's life: fixture builds belong to it rather than
	// to the file that asked first, and end with it.
	run    context.Context
	endRun context.CancelCauseFunc
}

// New prepares a harness. A broken provium.toml is an error here, before
// any file runs.
func New(cfg Config) (*Harness, error) {
	profiles, err := profile.Load(cfg.StartDir)
	if err != nil {
		return nil, err
	}
	build, err := BuildID()
	if err != nil {
		return nil, err
	}
	root := cache.Fixtures()
	if cfg.NoCache {
		root = filepath.Join(cfg.RunDir, "fixtures")
	}
	max, err := CacheMax()
	if err != nil {
		return nil, err
	}
	h := &Harness{cfg: cfg, profiles: profiles, live: map[*machine.VM]bool{}}
	h.run, h.endRun = context.WithCancelCause(context.Background())
	h.standbys = standbys{per: cfg.Standbys, pool: cfg.Pool, run: h.run}
	if cfg.Debug.GDB || os.Getenv("PROVIUM_FIXTURE_STANDBY") == "off" {
		h.standbys.per = 0
	}
	h.fixtures = &fixture.Manager{
		Root:         root,
		Project:      cfg.StartDir,
		BuildID:      build,
		MaxBytes:     max,
		Build:        h.buildFixture,
		Plan:         h.plan,
		Scratch:      filepath.Join(cfg.RunDir, "fixtures"),
		Run:          h.run,
		BuildTimeout: cfg.BuildTimeout,
		OnBuilt:      h.fixtureBuilt,
		Log:          cfg.Notes,
		Templates:    h.templates,
	}
	return h, nil
}

// Fixtures is the harness's fixture manager.
func (h *Harness) Fixtures() *fixture.Manager { return h.fixtures }

var buildID struct {
	once sync.Once
	id   string
	err  error
}

// BuildID identifies the provium build by the content of its binary, so a
// new build never resumes snapshots of an old agent. The hash is the
// cache's, remembered by the binary's fingerprint, so that a command
// does not read the whole binary before its first VM starts.
func BuildID() (string, error) {
	buildID.once.Do(func() {
		exe, err := machine.AgentBinary()
		if err != nil {
			buildID.err = err
			return
		}
		sum, err := cache.Hash(exe)
		if err != nil {
			buildID.err = fmt.Errorf("hash provium binary: %w", err)
			return
		}
		buildID.id = sum[:16]
	})
	return buildID.id, buildID.err
}

// CacheMax is $PROVIUM_FIXTURE_CACHE_MAX in bytes: a size such as "20G"
// or "512M", or a plain number of bytes; 0 when unset.
func CacheMax() (int64, error) {
	v := strings.TrimSpace(os.Getenv("PROVIUM_FIXTURE_CACHE_MAX"))
	if v == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
		return n, nil
	}
	n, err := size.ParseMiB(v)
	if err != nil || n <= 0 || strings.IndexFunc(v, func(r rune) bool { return r >= 'A' }) < 0 {
		return 0, fmt.Errorf("PROVIUM_FIXTURE_CACHE_MAX=%q: want a size such as 20G or 512M, or a number of bytes", v)
	}
	return int64(n) << 20, nil
}

// templates tells whether fixtures can be memory templates: not with
// $PROVIUM_FIXTURE_TEMPLATES=off, and only if QEMU can save them.
func (h *Harness) templates() error {
	if v := os.Getenv("PROVIUM_FIXTURE_TEMPLATES"); v == "off" {
		return errors.New("PROVIUM_FIXTURE_TEMPLATES=off")
	}
	return qemu.Templates(h.run)
}

// plan works out the boot a fixture's manifest describes, in this
// checkout on this machine.
func (h *Harness) plan(b fixture.Boot) (machine.Plan, error) {
	p, err := h.profiles.Get(b.Profile)
	if err != nil {
		return machine.Plan{}, err
	}
	return machine.PlanBoot(p, h.fixtures.Options(b), nil)
}

// RunFile runs one Lua file. log receives the file's console output and call
// trace; emit receives VM and sub-test events.
func (h *Harness) RunFile(ctx context.Context, file string, log io.Writer, emit func(result.Event)) *result.File {
	if emit == nil {
		emit = func(result.Event) {}
	}
	host := h.newHost(file, log, emit, nil)
	host.live = true
	defer host.killAll()
	var print func(string)
	if h.cfg.Print != nil {
		print = func(line string) { h.cfg.Print(file, line) }
	}
	var onFailure func(result.Subtest)
	if h.cfg.OnFailure != nil {
		onFailure = func(st result.Subtest) { h.cfg.OnFailure(ctx, file, st, host.running()) }
	}
	return luaapi.Run(ctx, luaapi.Options{
		Print:     print,
		OnFailure: onFailure,
		Path:      file,
		StartDir:  h.cfg.StartDir,
		Host:      host,
		Log:       log,
		OnSubtest: func(s result.Subtest) {
			ev := result.Event{Kind: result.SubtestEnded, File: file, Name: s.Name, Status: s.Status.String(), Duration: s.Duration}
			if f := s.Failure; f != nil {
				ev.Message, ev.Location = f.Message, f.Location
				if f.Guest != nil {
					ev.Console = result.Tail(f.Guest.Console)
				}
			}
			emit(ev)
		},
		OnReport: func(r result.KernelReport, subtest string) {
			emit(result.Event{Kind: result.KernelSeen, File: file, Name: subtest, Report: &r})
		},
	})
}

type emitKey struct{}

// withEmit makes emit where the events of a fixture built for ctx go.
func withEmit(ctx context.Context, emit func(result.Event)) context.Context {
	return context.WithValue(ctx, emitKey{}, emit)
}

// emitFrom is the emit of withEmit, else def, else one that drops events.
func emitFrom(ctx context.Context, def func(result.Event)) func(result.Event) {
	if emit, ok := ctx.Value(emitKey{}).(func(result.Event)); ok && emit != nil {
		return emit
	}
	if def != nil {
		return def
	}
	return func(result.Event) {}
}

// fixtureBuilt reports a fixture snapshot that was built, rather than
// found in the cache, to the file that asked for it.
func (h *Harness) fixtureBuilt(ctx context.Context, name string, d time.Duration) {
	emitFrom(ctx, h.emit)(result.Event{Kind: result.FixtureBuilt, Name: name, Duration: d})
}

// Close stops the fixture builds still running and kills every VM the
// harness still has.
func (h *Harness) Close() {
	h.endRun(errors.New("the run ended"))
	h.standbys.close()
	h.mu.Lock()
	vms := make([]*machine.VM, 0, len(h.live))
	for vm := range h.live {
		vms = append(vms, vm)
	}
	h.mu.Unlock()
	for _, vm := range vms {
		vm.Kill()
	}
}

func (h *Harness) track(vm *machine.VM, live bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if live {
		h.live[vm] = true
	} else {
		delete(h.live, vm)
	}
}

func (h *Harness) vmDir(name string) string {
	return filepath.Join(h.cfg.RunDir, "vm", fmt.Sprintf("%s-%d", name, time.Now().UnixNano()))
}

// Host returns the host of an interactive command (a shell, a REPL) as if
// it were test file file: its VMs boot and resume as a file's do, with the
// run's debugger and live console. close kills what it made.
func (h *Harness) Host(file string, log io.Writer) (host luaapi.Host, close func()) {
	fh := h.newHost(file, log, func(result.Event) {}, nil)
	fh.live = true
	return fh, fh.killAll
}
