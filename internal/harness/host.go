package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/provium/provium/internal/fixture"
	"github.com/provium/provium/internal/luaapi"
	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/network"
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
	// live is set for a test file's host, not a fixture build's: its
	// VMs get the run's debugger and live console.
	live bool
	// ramDir is set for a fixture build that saves memory templates:
	// its VMs' RAM is a file there (machine.Config.RAMDir).
	ramDir string

	mu   sync.Mutex
	vms  []*hostVM
	uses []fixture.Use
	nets []*network.Network // the file's, created or resumed, in order
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
	var debug machine.Debug
	var onConsole func(string)
	if fh.live {
		debug = fh.h.cfg.Debug
		if show := fh.h.cfg.Console; show != nil {
			onConsole = func(line string) { show(fh.file, name, line) }
		}
	}
	return machine.Config{
		Debug:     debug,
		OnConsole: onConsole,
		Name:      name,
		Dir:       fh.h.vmDir(name),
		Log:       fh.log,
		RAMDir:    fh.ramDir,
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
func (fh *fileHost) Fixture(ctx context.Context, name string) (*luaapi.Resumed, error) {
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
		r, err := fh.resume(ctx, e)
		if err == nil {
			fh.mu.Lock()
			fh.uses = append(fh.uses, fixture.Use{Name: name, Script: fh.h.fixtures.Ref(script), Key: e.Key})
			fh.mu.Unlock()
			return r, nil
		}
		if attempt > 0 || ctx.Err() != nil || !errors.Is(err, machine.ErrBootFailed) {
			return nil, err
		}
		fmt.Fprintf(fh.log, "[fixture %s] snapshot did not restore, rebuilding: %v\n", name, err)
		fh.h.standbys.drop(e.Key)
		fh.h.fixtures.Invalidate(e)
	}
}

// resume starts every VM of entry e, on networks of this file made again
// as they were: the guests keep their addresses, and find each other on
// the same links.
func (fh *fileHost) resume(ctx context.Context, e *fixture.Entry) (*luaapi.Resumed, error) {
	r := &luaapi.Resumed{}
	nets := map[int]*network.Network{}
	for _, rec := range e.Networks {
		n, err := network.New(rec.Name, rec.Index)
		if err != nil {
			fh.closeAll(r)
			return nil, fmt.Errorf("fixture %q: %w", e.Name, err)
		}
		fh.addNetwork(n)
		nets[rec.Index] = n
		r.Networks = append(r.Networks, n)
	}
	// The VMs resume side by side: a cluster is ready in about the time
	// of one resume.
	r.VMs = make([]luaapi.ResumedVM, len(e.VMs))
	errs := make([]error, len(e.VMs))
	var wg sync.WaitGroup
	for i, ev := range e.VMs {
		vmName := fmt.Sprintf("%s#%d", e.Name, fh.h.seq.Add(1))
		rv := luaapi.ResumedVM{Hostname: ev.Hostname}
		var sockets []*os.File
		for _, nic := range ev.NICs {
			n := nets[nic.Network]
			if n == nil {
				errs[i] = fmt.Errorf("fixture %q: %s's card is on network %d, which the entry lacks", e.Name, ev.Hostname, nic.Network)
				break
			}
			m, err := n.Rejoin(ev.Hostname, vmName, nic.Host)
			if err != nil {
				errs[i] = fmt.Errorf("fixture %q: %w", e.Name, err)
				break
			}
			rv.Members = append(rv.Members, m)
			sockets = append(sockets, m.Socket())
		}
		if errs[i] != nil {
			break
		}
		wg.Go(func() {
			v, err := fh.resumeVM(ctx, e.Name, fmt.Sprintf("%s/%d", e.Key, i), vmName, ev, sockets)
			if err != nil {
				errs[i] = err
				return
			}
			rv.Machine = v
			r.VMs[i] = rv
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		fh.closeAll(r)
		if len(e.VMs) == 1 {
			return nil, errs[0]
		}
		return nil, err
	}
	return r, nil
}

// closeAll undoes a resume that failed part way.
func (fh *fileHost) closeAll(r *luaapi.Resumed) {
	for _, v := range r.VMs {
		if v.Machine != nil {
			v.Machine.Kill()
		}
	}
	for _, n := range r.Networks {
		n.Close()
	}
}

// resumeVM resumes one VM of a fixture; key names it among every
// fixture's VMs.
func (fh *fileHost) resumeVM(ctx context.Context, fixtureName, key, vmName string, ev fixture.EntryVM, sockets []*os.File) (*hostVM, error) {
	v := &hostVM{host: fh, origin: ev.Boot}
	var shared *pool.Measured
	var err error
	if ev.Memory != "" {
		shared, err = v.acquireShared(ctx, key, ev.Shape)
	} else {
		err = v.acquire(ctx, ev.Shape.MemoryMiB, ev.Shape.CPUs)
	}
	if err != nil {
		return nil, fmt.Errorf("fixture %q: %w", fixtureName, err)
	}
	cfg := fh.machineConfig(vmName, v)
	// The profile says how to read the VM's kernel reports.
	cfg.Profile, _ = fh.h.profiles.Get(ev.Boot.Profile)
	cfg.NICSockets = sockets
	saved := machine.Saved{State: ev.Snapshot, Memory: ev.Memory}
	standby := cfg.RAMDir == "" && machine.CanStandby(saved, ev.Shape) == nil
	if standby {
		cfg.Standby = fh.h.standbys.take(key)
	}
	vm, err := machine.Resume(ctx, cfg, saved, ev.Shape)
	if err != nil {
		v.releasePool()
		return nil, err
	}
	if standby {
		fh.h.standbys.prepare(key, saved, ev.Shape, fh.logf)
	}
	v.VM = vm
	fh.h.track(vm, true)
	fh.add(v)
	v.measureShared(key, shared, ev.Shape.MemoryMiB)
	return v, nil
}

// Network makes the file's next network: the N-th is 10.N.0.0/24.
func (fh *fileHost) Network(name string) (*network.Network, error) {
	fh.mu.Lock()
	index := 1
	for _, n := range fh.nets {
		index = max(index, n.Index()+1)
	}
	fh.mu.Unlock()
	if index > network.MaxNetworks {
		return nil, fmt.Errorf("a file has at most %d networks", network.MaxNetworks)
	}
	n, err := network.New(name, index)
	if err != nil {
		return nil, err
	}
	fh.addNetwork(n)
	return n, nil
}

func (fh *fileHost) addNetwork(n *network.Network) {
	fh.mu.Lock()
	fh.nets = append(fh.nets, n)
	fh.mu.Unlock()
}

// running returns the file's VMs that run.
func (fh *fileHost) running() []*machine.VM {
	fh.mu.Lock()
	defer fh.mu.Unlock()
	var out []*machine.VM
	for _, v := range fh.vms {
		if v.VM != nil && v.State() == machine.StateRunning {
			out = append(out, v.VM)
		}
	}
	return out
}

// killAll stops every VM of the file that is still up, then its
// networks, whose captures so are complete.
func (fh *fileHost) killAll() {
	fh.mu.Lock()
	vms := fh.vms
	fh.mu.Unlock()
	for _, v := range vms {
		v.Kill()
	}
	fh.closeNetworks()
}

func (fh *fileHost) closeNetworks() {
	fh.mu.Lock()
	nets := fh.nets
	fh.nets = nil
	fh.mu.Unlock()
	for _, n := range nets {
		if err := n.Close(); err != nil {
			fmt.Fprintf(fh.log, "[network %s] %v\n", n.Name(), err)
		}
	}
}

type chainKey struct{}

func withChain(ctx context.Context, chain []string) context.Context {
	return context.WithValue(ctx, chainKey{}, chain)
}

// buildFixture runs a fixture script and hands its VMs to the fixture
// manager for the snapshot: its last VM, and every VM that shares a
// network with it. Every other VM the script made is killed.
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
	host.ramDir = fixture.TemplateDir(ctx)
	// The build's VMs belong to the build, not to the file that asked
	// for it: that file's end must not take them back from the pool.
	ctx = pool.WithoutScope(ctx)
	res := luaapi.Run(ctx, luaapi.Options{Path: script, StartDir: h.cfg.StartDir, Host: host, Log: logFile, Fixture: true})
	host.mu.Lock()
	vms, uses, nets := host.vms, host.uses, host.nets
	host.mu.Unlock()
	var keep []*hostVM
	if res.Status != result.Failed && len(vms) > 0 {
		keep = cluster(vms, nets)
	}
	for _, v := range vms {
		if !slices.Contains(keep, v) {
			v.Kill()
		}
	}
	if res.Status == result.Failed {
		host.closeNetworks()
		return nil, buildError(res, logPath)
	}
	if len(keep) == 0 {
		host.closeNetworks()
		return nil, errors.New("the script created no VM")
	}
	b := &fixture.Built{Loaded: res.Loaded, Uses: uses, Done: host.closeNetworks}
	used := map[*network.Network]bool{}
	for _, v := range keep {
		if v.State() != machine.StateRunning {
			host.killAll()
			if len(keep) == 1 {
				return nil, fmt.Errorf("its last VM %s is not running (state: %s)", v.Name(), v.State())
			}
			return nil, fmt.Errorf("its VM %s, on a network with its last VM, is not running (state: %s)", v.Name(), v.State())
		}
		v.mu.Lock()
		origin := v.origin
		v.mu.Unlock()
		bv := fixture.BuiltVM{VM: v.VM, Boot: origin}
		for _, m := range membersOf(v, nets) {
			bv.Hostname = m.Hostname()
			bv.NICs = append(bv.NICs, fixture.NIC{Network: m.Network().Index(), Host: m.Host()})
			used[m.Network()] = true
		}
		b.VMs = append(b.VMs, bv)
	}
	for _, n := range nets {
		if used[n] {
			b.Networks = append(b.Networks, fixture.Network{Name: n.Name(), Index: n.Index()})
		}
	}
	os.Remove(logPath)
	return b, nil
}

// cluster is the last of vms and every VM joined to it by networks, in
// creation order.
func cluster(vms []*hostVM, nets []*network.Network) []*hostVM {
	in := map[string]bool{vms[len(vms)-1].Name(): true}
	for grew := true; grew; {
		grew = false
		for _, n := range nets {
			members := n.Members()
			if !slices.ContainsFunc(members, func(m *network.Member) bool { return in[m.VM()] }) {
				continue
			}
			for _, m := range members {
				if !in[m.VM()] {
					in[m.VM()], grew = true, true
				}
			}
		}
	}
	var out []*hostVM
	for _, v := range vms {
		if in[v.Name()] {
			out = append(out, v)
		}
	}
	return out
}

// membersOf returns v's places on nets, in the order of its network
// cards (its shape's).
func membersOf(v *hostVM, nets []*network.Network) []*network.Member {
	byMAC := map[string]*network.Member{}
	for _, n := range nets {
		for _, m := range n.Members() {
			if m.VM() == v.Name() {
				byMAC[m.MAC()] = m
			}
		}
	}
	var out []*network.Member
	for _, nic := range v.Shape().NICs {
		if m := byMAC[nic.MAC]; m != nil {
			out = append(out, m)
		}
	}
	return out
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
