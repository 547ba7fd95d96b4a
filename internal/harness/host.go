package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/provium/provium/internal/fixture"
	"github.com/provium/provium/internal/luaapi"
	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/pool"
	"github.com/provium/provium/internal/result"
)

// fileHost is the luaapi.Host of one file or fixture script.
type fileHost struct {
	h     *Harness
	file  string
	log   io.Writer
	emit  func(result.Event)
	chain []string // fixture scripts being built around this one

	mu   sync.Mutex
	vms  []*hostVM
	uses []fixture.Use
}

func (h *Harness) newHost(file string, log io.Writer, emit func(result.Event), chain []string) *fileHost {
	abs, err := filepath.Abs(file)
	if err != nil {
		abs = file
	}
	return &fileHost{h: h, file: abs, log: log, emit: emit, chain: chain}
}

// hostVM is a machine.VM whose boot takes its share of the resource pool.
type hostVM struct {
	*machine.VM
	host    *fileHost
	profile string // the profile it was created from; "" if resumed

	mu      sync.Mutex
	release func()
	started time.Time // when the boot or resume that made it ready began
	// origin is how the VM's machine was first booted: by vm:boot, or
	// by the fixture it was resumed from.
	origin fixture.Boot
}

func (v *hostVM) setRelease(f func()) {
	v.mu.Lock()
	v.release = f
	v.mu.Unlock()
}

func (v *hostVM) releasePool() {
	v.mu.Lock()
	f := v.release
	v.release = nil
	v.mu.Unlock()
	if f != nil {
		f()
	}
}

// Boot waits for room in the pool, then boots.
func (v *hostVM) Boot(ctx context.Context, opts machine.BootOptions) error {
	if v.State() != machine.StateCreated {
		return v.VM.Boot(ctx, opts) // the VM names its state
	}
	opts = opts.WithDefaults()
	if err := opts.Check(); err != nil {
		return fmt.Errorf("boot %s: %w", v.Name(), err)
	}
	if err := v.acquire(ctx, opts.MemoryMiB, opts.CPUs); err != nil {
		return fmt.Errorf("boot %s: %w", v.Name(), err)
	}
	v.host.h.track(v.VM, true)
	v.mu.Lock()
	v.origin = v.host.h.fixtures.BootOf(v.profile, opts)
	v.mu.Unlock()
	return v.VM.Boot(ctx, opts)
}

func (v *hostVM) acquire(ctx context.Context, mem, cpus int) error {
	p := v.host.h.cfg.Pool
	if p == nil {
		return nil
	}
	rel, err := p.Acquire(ctx, mem, cpus)
	if err != nil {
		return err
	}
	v.setRelease(rel)
	return nil
}

func (fh *fileHost) machineConfig(name string, v *hostVM) machine.Config {
	return machine.Config{
		Name: name,
		Dir:  fh.h.vmDir(name),
		Log:  fh.log,
		OnStop: func() {
			v.releasePool()
			fh.h.track(v.VM, false)
			// The event carries the VM's lifetime, from the start of
			// its boot or resume; none if it never became ready.
			v.mu.Lock()
			started := v.started
			v.mu.Unlock()
			var life time.Duration
			if !started.IsZero() {
				life = time.Since(started)
			}
			fh.emit(result.Event{Kind: result.VMShutdown, File: fh.file, Name: name, Duration: life})
		},
		OnReady: func(resumed bool, d time.Duration) {
			v.mu.Lock()
			v.started = time.Now().Add(-d)
			v.mu.Unlock()
			kind := result.VMBooted
			if resumed {
				kind = result.VMResumed
			}
			fh.emit(result.Event{Kind: kind, File: fh.file, Name: name, Duration: d})
		},
	}
}

// Create returns a VM of the named profile, not booted.
func (fh *fileHost) Create(name string) (luaapi.Machine, error) {
	p, err := fh.h.profiles.Get(name)
	if err != nil {
		return nil, err
	}
	vmName := fmt.Sprintf("%s#%d", name, fh.h.seq.Add(1))
	v := &hostVM{host: fh, profile: name}
	cfg := fh.machineConfig(vmName, v)
	cfg.Profile = p
	v.VM = machine.New(cfg)
	fh.add(v)
	return v, nil
}

func (fh *fileHost) add(v *hostVM) {
	fh.mu.Lock()
	fh.vms = append(fh.vms, v)
	fh.mu.Unlock()
}

// Fixture resumes fixture name, building it first if needed. A snapshot
// that does not restore is dropped and built again, once.
func (fh *fileHost) Fixture(ctx context.Context, name string) (luaapi.Machine, error) {
	script, err := fh.h.fixtures.Find(name, filepath.Dir(fh.file))
	if err != nil {
		return nil, err
	}
	chain := append(append([]string{}, fh.chain...), fh.file)
	for attempt := 0; ; attempt++ {
		e, err := fh.h.fixtures.Get(withEmit(withChain(ctx, chain), fh.emit), name, script, chain)
		if err != nil {
			return nil, err
		}
		v, err := fh.resume(ctx, e)
		if err == nil {
			fh.mu.Lock()
			fh.uses = append(fh.uses, fixture.Use{Name: name, Script: fh.h.fixtures.Ref(script), Key: e.Key})
			fh.mu.Unlock()
			return v, nil
		}
		if attempt > 0 || ctx.Err() != nil || !errors.Is(err, machine.ErrBootFailed) {
			return nil, err
		}
		fmt.Fprintf(fh.log, "[fixture %s] snapshot did not restore, rebuilding: %v\n", name, err)
		fh.h.fixtures.Invalidate(e)
	}
}

func (fh *fileHost) resume(ctx context.Context, e *fixture.Entry) (*hostVM, error) {
	vmName := fmt.Sprintf("%s#%d", e.Name, fh.h.seq.Add(1))
	v := &hostVM{host: fh, origin: e.Boot}
	if err := v.acquire(ctx, e.Shape.MemoryMiB, e.Shape.CPUs); err != nil {
		return nil, fmt.Errorf("fixture %q: %w", e.Name, err)
	}
	cfg := fh.machineConfig(vmName, v)
	// The profile says how to read the VM's kernel reports.
	cfg.Profile, _ = fh.h.profiles.Get(e.Boot.Profile)
	vm, err := machine.Resume(ctx, cfg, e.Snapshot, e.Shape)
	if err != nil {
		v.releasePool()
		return nil, err
	}
	v.VM = vm
	fh.h.track(vm, true)
	fh.add(v)
	return v, nil
}

// killAll stops every VM of the file that is still up.
func (fh *fileHost) killAll() {
	fh.mu.Lock()
	vms := fh.vms
	fh.mu.Unlock()
	for _, v := range vms {
		v.Kill()
	}
}

type chainKey struct{}

func withChain(ctx context.Context, chain []string) context.Context {
	return context.WithValue(ctx, chainKey{}, chain)
}

// buildFixture runs a fixture script and hands its last VM to the fixture
// manager for the snapshot; every other VM the script made is killed.
func (h *Harness) buildFixture(ctx context.Context, name, script string) (*fixture.Built, error) {
	chain, _ := ctx.Value(chainKey{}).([]string)
	logPath := filepath.Join(h.cfg.RunDir, "fixture-"+name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600) // guest output

	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	// The build's events go to the file that asked for the fixture.
	emit := emitFrom(ctx, h.emit)
	host := h.newHost(script, logFile, emit, chain)
	// The build's VMs belong to the build, not to the file that asked
	// for it: that file's end must not take them back from the pool.
	ctx = pool.WithoutScope(ctx)
	res := luaapi.Run(ctx, luaapi.Options{Path: script, StartDir: h.cfg.StartDir, Host: host, Log: logFile, Fixture: true})
	var last *hostVM
	host.mu.Lock()
	if n := len(host.vms); n > 0 {
		last = host.vms[n-1]
	}
	vms := host.vms
	uses := host.uses
	host.mu.Unlock()
	for _, v := range vms {
		if v != last {
			v.Kill()
		}
	}
	if res.Status == result.Failed {
		if last != nil {
			last.Kill()
		}
		return nil, buildError(res, logPath)
	}
	if last == nil {
		return nil, errors.New("the script created no VM")
	}
	if last.State() != machine.StateRunning {
		return nil, fmt.Errorf("its last VM %s is not running (state: %s)", last.Name(), last.State())
	}
	os.Remove(logPath)
	last.mu.Lock()
	origin := last.origin
	last.mu.Unlock()
	return &fixture.Built{VM: last.VM, Boot: origin, Loaded: res.Loaded, Uses: uses}, nil
}

// buildError is the error of a fixture script that failed: its first
// failure, with the console of the VM it involved, for every file that
// asked for the fixture.
func buildError(res *result.File, logPath string) error {
	failures := res.Failures()
	if len(failures) == 0 {
		return fmt.Errorf("failed (log: %s)", logPath)
	}
	f := failures[0]
	err := fmt.Errorf("%s (log: %s)", f.Message, logPath)
	guest := f.Guest
	if guest == nil {
		guest = res.Console
	}
	if guest != nil {
		return &result.GuestError{VM: guest.VM, Err: err, Console: guest.Console}
	}
	return err
}
