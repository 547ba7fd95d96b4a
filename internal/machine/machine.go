// Package machine is a VM as tests see it: a QEMU process booted from a
// profile with Provium's shim in its initramfs, and a session with the agent
// inside. It boots, snapshots, resumes, powers off and kills, and reports
// every failure with the console tail.
package machine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/provium/provium/internal/cache"
	"github.com/provium/provium/internal/client"
	"github.com/provium/provium/internal/kernelimage"
	"github.com/provium/provium/internal/memfile"
	"github.com/provium/provium/internal/profile"
	"github.com/provium/provium/internal/qemu"
	"github.com/provium/provium/internal/result"
	"github.com/provium/provium/internal/symbolize"
	"github.com/provium/provium/internal/wire"
	"github.com/provium/provium/internal/wire/boot"
)

// Deadlines of the lifecycle.
const (
	DefaultBootTimeout = 30 * time.Second // up to a working agent; a profile or vm:boot may set another
	ShutdownTimeout    = 10 * time.Second
	ResumeTimeout      = 30 * time.Second
)

// State is where a VM is in its life.
type State string

// States a VM goes through.
const (
	StateCreated  State = "created"
	StateRunning  State = "running"
	StateShutDown State = "shut down"
	StateKilled   State = "killed"
	StateDead     State = "dead" // QEMU exited on its own
)

// Sentinel errors.
var (
	ErrState      = errors.New("VM is in the wrong state")
	ErrBootFailed = errors.New("VM did not boot")
)

// Config is what a VM needs from the world around it.
type Config struct {
	Name    string // in messages and logs, e.g. "minimal#1"
	Profile *profile.Profile
	Dir     string    // private scratch directory, removed when the VM stops
	Log     io.Writer // console and call trace; may be nil
	// OnStop runs once when the VM stops, however it stops (pool release).
	OnStop func()
	// OnReady runs when the VM is up, booted or resumed, after d.
	OnReady func(resumed bool, d time.Duration)
	// NICSockets carry the frames of a resumed VM's network cards, one
	// per NIC of its shape (a boot takes them from its options).
	NICSockets []*os.File
	// Debug gives the VM a gdbstub (debug.go).
	Debug Debug
	// OnConsole, if set, hears each line of the serial console as it
	// comes, as the guest wrote it.
	OnConsole func(line string)
	// RAMDir, if set, makes the VM's RAM an unnamed file there, mapped
	// shared (package memfile), so that Snapshot saves a template: the
	// devices' state, and the file as the RAM. It must be on the file
	// system the snapshot goes to.
	RAMDir string
	// Standby, if set, is a QEMU that has loaded the snapshot a Resume
	// restores (PrepareResume): the resume takes it over instead of
	// starting one. A standby that cannot serve this resume is closed,
	// and the VM resumes without it.
	Standby *Standby
}

// Shape is everything a snapshot needs to be restored: the same kernel,
// initramfs, command line and hardware.
type Shape struct {
	Kernel    string         `json:"kernel"`
	Initrd    string         `json:"initrd"`
	Append    []string       `json:"append"`
	MemoryMiB int            `json:"memory_mib"`
	CPUs      int            `json:"cpus"`
	Disks     []Disk         `json:"disks,omitempty"`
	NICs      []NIC          `json:"nics,omitempty"` // without their sockets
	Transport boot.Transport `json:"transport"`
}

// qemuConfig is the QEMU that runs the shape, reaching the agent through
// transport, its network cards carried by sockets (one per NIC).
func (s Shape) qemuConfig(transport qemu.Device, sockets []*os.File) qemu.Config {
	devices := []qemu.Device{transport}
	for _, d := range s.Disks {
		devices = append(devices, qemu.Disk{Path: d.Path, Format: d.Format, ReadOnly: d.ReadOnly})
	}
	for i, n := range s.NICs {
		devices = append(devices, qemu.NIC{ID: strconv.Itoa(i), MAC: n.MAC, Socket: sockets[i]})
	}
	return qemu.Config{
		Kernel:    s.Kernel,
		Initrd:    s.Initrd,
		Append:    s.Append,
		MemoryMiB: s.MemoryMiB,
		CPUs:      s.CPUs,
		Devices:   devices,
	}
}

// VM is one virtual machine.
type VM struct {
	cfg     Config
	console *console
	reports *reporter
	kmsg    *kmsgReader // the kernel log through the agent, when the console is quiet

	mu       sync.Mutex
	starting bool // a boot or resume is under way: it handles QEMU's end itself
	state    State
	proc     *qemu.Process
	sess     *client.Session
	shape    Shape
	sockets  []*os.File // the network cards' (Shape.NICs)
	// mem is the file the RAM is in, if it is not QEMU's own; memShared
	// when the guest writes to it (Config.RAMDir).
	mem       *os.File
	memShared bool
	stopOnce  sync.Once
	// runTimeout, when set, is the deadline start gives the boot once
	// the CPUs run: a VM waiting for its debugger has none before.
	runTimeout time.Duration
}

// New returns a VM that is not booted.
func New(cfg Config) *VM {
	vm := &VM{cfg: cfg, state: StateCreated, console: newConsole(cfg.Log, "["+cfg.Name+" console] "), sockets: cfg.NICSockets}
	var sym *symbolize.Symbolizer
	if p := cfg.Profile; p != nil {
		sym = symbolizerFor(p.Vmlinux, p.Modules, vm.logf)
	}
	vm.reports = newReporter(cfg.Name, sym)
	vm.console.onLine = vm.reports.line
	if show := cfg.OnConsole; show != nil {
		vm.console.onLine = func(s string) {
			vm.reports.line(s)
			show(s)
		}
	}
	return vm
}

// Name identifies the VM in messages.
func (vm *VM) Name() string { return vm.cfg.Name }

// State is the VM's lifecycle state.
func (vm *VM) State() State {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.state
}

// Agent is the VM's own agent identity, nil unless running.
func (vm *VM) Agent() *client.Agent {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.state != StateRunning || vm.sess == nil {
		return nil
	}
	return vm.sess.Main()
}

// Session is the connection to the agent, nil unless running.
func (vm *VM) Session() *client.Session {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.sess
}

// QEMUPid is the process ID of the VM's QEMU; 0 when none runs.
func (vm *VM) QEMUPid() int {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.proc == nil {
		return 0
	}
	return vm.proc.Pid()
}

// Shape is the machine shape the VM was started with.
func (vm *VM) Shape() Shape { return vm.shape }

// ConsoleTail returns the last n lines of the serial console.
func (vm *VM) ConsoleTail(n int) []string { return vm.console.Tail(n) }

// CommandLine is the QEMU command line, quoted for a shell.
func (vm *VM) CommandLine() string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.proc == nil {
		return ""
	}
	return vm.proc.CommandLine()
}

// guestError is err with what the VM's console showed last, and the
// panic that ended it, if one did.
func (vm *VM) guestError(err error) error {
	return &result.GuestError{VM: vm.cfg.Name, Err: err, Console: vm.console.Tail(result.TailLines), Reports: vm.Panics()}
}

// Panics returns the kernel panics the VM printed: what ended it, when
// one did.
func (vm *VM) Panics() []result.KernelReport {
	var out []result.KernelReport
	for _, r := range vm.reports.since(0) {
		if r.Kind == "panic" {
			out = append(out, r)
		}
	}
	return out
}

func (vm *VM) tracer() client.Tracer {
	log := vm.cfg.Log
	if log == nil {
		return nil
	}
	var mu sync.Mutex
	return func(ch uint32, op wire.Op, detail string, d time.Duration, err error) {
		status := "ok"
		if err != nil {
			status = "error: " + err.Error()
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(log, "[%s call] ch%d %s %s %.2fms %s\n", vm.cfg.Name, ch, op, detail, float64(d.Microseconds())/1000, status)
	}
}

// Boot starts QEMU and waits for the agent.
func (vm *VM) Boot(ctx context.Context, opts BootOptions) error {
	vm.mu.Lock()
	if vm.state != StateCreated {
		st := vm.state
		vm.mu.Unlock()
		return fmt.Errorf("boot %s: %w (state: %s)", vm.cfg.Name, ErrState, st)
	}
	vm.mu.Unlock()
	start := time.Now()
	p := vm.cfg.Profile
	plan, err := PlanBoot(p, opts, vm.cfg.Log)
	if errors.Is(err, ErrBadOptions) {
		return fmt.Errorf("boot %s: %w", vm.cfg.Name, err) // still bootable with others
	}
	if err != nil {
		vm.stop(StateDead)
		return fmt.Errorf("boot %s: %w", vm.cfg.Name, err)
	}
	if err := os.MkdirAll(vm.cfg.Dir, 0o755); err != nil {
		vm.stop(StateDead)
		return fmt.Errorf("boot %s: %w", vm.cfg.Name, err)
	}
	initrd, err := bootInitrd(p, vm.cfg.Dir, opts, plan.Shape)
	if err != nil {
		vm.stop(StateDead)
		return fmt.Errorf("boot %s: %w", vm.cfg.Name, err)
	}
	vm.shape = plan.Shape
	vm.shape.Initrd = initrd
	vm.sockets = nil
	for _, n := range opts.NICs {
		vm.sockets = append(vm.sockets, n.Socket)
	}
	vm.watchKmsg()
	if vm.cfg.Debug.GDB && vm.cfg.Debug.Wait {
		vm.runTimeout = plan.BootTimeout
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, plan.BootTimeout)
		defer cancel()
	}
	vm.setStarting(true)
	defer vm.setStarting(false)
	err = vm.start(ctx, nil, false)
	if err != nil && plan.TryPVH && earlyExit(err) && vm.console.Empty() {
		// The kernel has a PVH entry that does not come up under this
		// QEMU: it never printed a line. Booting through PVH is only a
		// shortcut, so it must never cost a boot: boot the image, and
		// remember not to try again.
		vm.logf("%s: the kernel's PVH entry did not boot (%v); booting it as a bzImage from now on", vm.cfg.Name, err)
		kernelimage.Remember(plan.Image, cache.Kernels(), false)
		vm.discard()
		vm.shape.Kernel = plan.Image
		err = vm.start(ctx, nil, false)
	} else if err == nil && plan.TryPVH {
		kernelimage.Remember(plan.Image, cache.Kernels(), true)
	}
	if err != nil {
		return vm.bootError("boot", err, plan.BootTimeout)
	}
	if vm.cfg.OnReady != nil {
		vm.cfg.OnReady(false, time.Since(start))
	}
	return nil
}

// watchKmsg reads the kernel log through the agent when the VM's kernel
// command line keeps warnings off the console.
func (vm *VM) watchKmsg() {
	if quietConsole(vm.shape.Append) {
		vm.kmsg = newKmsgReader(vm.reports)
	}
}

// setStarting marks a boot or resume under way; at its end, a QEMU that
// exited meanwhile leaves the VM dead, as watch would have.
func (vm *VM) setStarting(on bool) {
	vm.mu.Lock()
	vm.starting = on
	proc, state := vm.proc, vm.state
	vm.mu.Unlock()
	if on || proc == nil || state != StateRunning {
		return
	}
	select {
	case <-proc.Done():
		vm.stop(StateDead)
	default:
	}
}

// earlyExit reports whether a start failed because QEMU exited.
func earlyExit(err error) bool { return errors.Is(err, qemu.ErrExited) }

// discard ends the QEMU of a failed start so that the VM can start again:
// unlike stop, it keeps the VM's directory and its place in the pool.
func (vm *VM) discard() {
	vm.mu.Lock()
	proc, sess, mem := vm.proc, vm.sess, vm.mem
	vm.proc, vm.sess, vm.state, vm.mem = nil, nil, StateCreated, nil
	vm.mu.Unlock()
	if sess != nil {
		sess.Close()
	}
	if proc != nil {
		proc.Kill()
		proc.Wait()
	}
	if mem != nil {
		mem.Close()
	}
}

func (vm *VM) logf(format string, args ...any) {
	if vm.cfg.Log != nil {
		fmt.Fprintf(vm.cfg.Log, "[%s] "+format+"\n", append([]any{vm.cfg.Name}, args...)...)
	}
}

// newShape is the machine a profile boots with opts: its kernel command
// line tells the guest's init and agent what package boot says they need.
func newShape(p *profile.Profile, opts BootOptions, transport boot.Transport, kernel, initrd string) Shape {
	params := boot.Params{Init: p.Init, Transport: transport, Port: boot.PortName, VsockPort: boot.VsockPort, Hostname: opts.Hostname}
	var nics []NIC
	for _, n := range opts.NICs {
		// Check has parsed it.
		nic, _ := boot.ParseNIC(n.MAC + "," + n.Addr)
		params.NICs = append(params.NICs, nic)
		nics = append(nics, NIC{MAC: n.MAC, Addr: n.Addr})
	}
	if params.Init == "" {
		params.Init = boot.DefaultInit
	}
	disks := opts.Disks
	if p.Rootfs != "" {
		// The profile's disk image comes first, so it is /dev/vda, and
		// read-only: every boot starts from the same image.
		disks = append([]Disk{{Path: p.Rootfs, Format: imageFormat(p.Rootfs), ReadOnly: true}}, disks...)
		params.Root = "/dev/vda"
	}
	return Shape{
		Kernel: kernel, Initrd: initrd,
		// The profile's own arguments come last, so they win.
		Append:    append(params.Args(), boot.Split(p.Append)...),
		MemoryMiB: opts.MemoryMiB, CPUs: opts.CPUs, Disks: disks,
		NICs: nics, Transport: transport,
	}
}

func (vm *VM) bootError(what string, err error, timeout time.Duration) error {
	vm.Kill()
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, client.ErrTimeout) {
		err = fmt.Errorf("no agent after %s (a slow kernel needs a longer boot_timeout, in its profile or vm:boot's options)", timeout)
	}
	if errors.Is(err, qemu.ErrExited) && vm.console.Empty() {
		err = fmt.Errorf("%w; the console stayed empty", err)
	}
	return vm.guestError(fmt.Errorf("%s %s: %w: %w", what, vm.cfg.Name, ErrBootFailed, err))
}

// start launches QEMU for vm.shape (restoring from incoming when set, a
// template's state when template is) and opens the agent session.
func (vm *VM) start(ctx context.Context, incoming *os.File, template bool) error {
	tr, err := newTransport(vm.shape.Transport)
	if err != nil {
		return err
	}
	defer tr.close()
	if len(vm.sockets) != len(vm.shape.NICs) {
		return fmt.Errorf("%d network cards, %d sockets for them", len(vm.shape.NICs), len(vm.sockets))
	}
	if vm.mem == nil && vm.cfg.RAMDir != "" {
		// A boot, or the resume of a stream snapshot, into a template.
		mem, err := memfile.Create(vm.cfg.RAMDir, int64(vm.shape.MemoryMiB)<<20)
		if err != nil {
			return err
		}
		vm.mu.Lock()
		vm.mem, vm.memShared = mem, true
		vm.mu.Unlock()
	}
	cfg := vm.shape.qemuConfig(tr.device(), vm.sockets)
	cfg.Console, cfg.Incoming, cfg.Template = vm.console, incoming, template
	cfg.Memory, cfg.MemoryShared = vm.mem, vm.memShared
	gdbAddr := ""
	var proc *qemu.Process
	for attempt := 0; ; attempt++ {
		if vm.cfg.Debug.GDB {
			if gdbAddr, err = freeLocalAddr(); err != nil {
				return err
			}
			cfg.GDB, cfg.Paused = "tcp:"+gdbAddr, vm.cfg.Debug.Wait
		}
		proc, err = qemu.Start(ctx, cfg)
		if err != nil && vm.cfg.Debug.GDB && attempt < 2 && earlyExit(err) {
			continue // another process took the port
		}
		if err != nil {
			return err
		}
		break
	}
	vm.adopt(proc)

	if gdbAddr != "" && vm.cfg.Debug.OnListen != nil {
		vmlinux := ""
		if p := vm.cfg.Profile; p != nil {
			vmlinux = p.Vmlinux
		}
		vm.cfg.Debug.OnListen(vm.cfg.Name, gdbAddr, GDBCommand(vmlinux, gdbAddr))
	}
	waitGDB := gdbAddr != "" && vm.cfg.Debug.Wait
	if incoming != nil {
		if err := proc.WaitIncoming(ctx); err != nil {
			return fmt.Errorf("restore snapshot: %w", err)
		}
	}
	if waitGDB {
		if err := waitDebugger(ctx, proc); err != nil {
			return err
		}
		if vm.runTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, vm.runTimeout)
			defer cancel()
		}
	}
	return vm.run(ctx, tr, incoming != nil && !waitGDB)
}

// adopt makes proc the VM's QEMU.
func (vm *VM) adopt(proc *qemu.Process) {
	vm.mu.Lock()
	vm.proc = proc
	vm.state = StateRunning
	vm.mu.Unlock()
	go vm.watch(proc)
	if vm.cfg.Log != nil {
		fmt.Fprintf(vm.cfg.Log, "[%s] %s\n", vm.cfg.Name, proc.CommandLine())
	}
}

// run lets the VM's QEMU go on (cont, when its guest was restored and
// waits paused) and opens the session with the agent it reaches
// through tr.
func (vm *VM) run(ctx context.Context, tr transport, cont bool) error {
	proc := vm.proc
	if cont {
		if err := proc.Cont(ctx); err != nil {
			return fmt.Errorf("continue after restore: %w", err)
		}
	}
	conn, err := tr.connect(ctx, proc)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-proc.Done():
			cancel()
		case <-sctx.Done():
		}
	}()
	sess, err := client.Open(sctx, conn, vm.tracer())
	if err != nil {
		// A connection reset is often QEMU's exit seen first: give its
		// end a moment to be reaped, so the error says what happened.
		select {
		case <-proc.Done():
			return proc.Exit()
		case <-time.After(time.Second):
		}
		return err
	}
	vm.mu.Lock()
	vm.sess = sess
	vm.mu.Unlock()
	// A booted guest read its clock from the RTC, to the second; a resumed
	// one has the time of its snapshot. Either way, it gets the host's.
	if err := sess.SetClock(ctx, time.Now()); err != nil {
		vm.logf("the guest's clock is not the host's: %v", err)
	}
	if port, ok := tr.device().(qemu.VirtioSerialPort); ok {
		go watchPort(proc, sess, port.ID())
	}
	return nil
}

// agentLostGrace is how long a new agent may take to announce itself
// after the guest closed the port of the one that died (the guest's init
// restarts it at once); past it, the session is dead.
const agentLostGrace = 10 * time.Second

// watchPort tells the session when the guest closes the agent's port: the
// agent died. A virtio-serial stream does not end when the guest side
// closes, so QEMU's event is how the host hears of it.
func watchPort(proc *qemu.Process, sess *client.Session, id string) {
	events, stop := proc.Subscribe()
	defer stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Name != "VSERPORT_CHANGE" {
				continue
			}
			var c qemu.PortChange
			if json.Unmarshal(ev.Data, &c) == nil && c.ID == id && !c.Open {
				sess.PortClosed(agentLostGrace)
			}
		case <-sess.Done():
			return
		}
	}
}

// watch marks the VM dead when QEMU exits by itself.
func (vm *VM) watch(proc *qemu.Process) {
	<-proc.Done()
	vm.mu.Lock()
	mine := vm.proc == proc && vm.state == StateRunning && !vm.starting
	vm.mu.Unlock()
	vm.reports.end() // the console has ended
	if mine {
		if vm.cfg.Log != nil {
			fmt.Fprintf(vm.cfg.Log, "[%s] %v\n", vm.cfg.Name, proc.Exit())
		}
		vm.stop(StateDead)
	}
}

// stop moves the VM to a final state and releases what it holds.
func (vm *VM) stop(state State) {
	vm.mu.Lock()
	if vm.state == StateRunning || vm.state == StateCreated {
		vm.state = state
	}
	proc, sess, mem := vm.proc, vm.sess, vm.mem
	vm.mu.Unlock()
	if sess != nil {
		sess.Close()
	}
	if proc != nil {
		proc.Kill()
		proc.Wait()
	}
	vm.stopOnce.Do(func() {
		if mem != nil {
			// Unnamed unless a snapshot linked it: closed, it is gone.
			mem.Close()
		}
		if vm.cfg.OnStop != nil {
			vm.cfg.OnStop()
		}
		os.RemoveAll(vm.cfg.Dir)
	})
}

// Shutdown powers the guest off and waits up to ShutdownTimeout for QEMU to
// exit, then kills it. Shutting down a stopped VM does nothing.
func (vm *VM) Shutdown(ctx context.Context) error {
	vm.mu.Lock()
	state, proc, sess := vm.state, vm.proc, vm.sess
	if state == StateRunning {
		// From here QEMU's exit is expected, not a death.
		vm.state = StateShutDown
	}
	vm.mu.Unlock()
	if state != StateRunning {
		if state == StateCreated {
			vm.stop(StateShutDown)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, ShutdownTimeout)
	defer cancel()
	if sess != nil {
		// The agent may power off before its reply gets out; either way
		// we wait for QEMU below.
		sess.PowerOff(ctx)
	}
	select {
	case <-proc.Done():
	case <-ctx.Done():
	}
	vm.stop(StateShutDown)
	return nil
}

// Kill stops QEMU at once.
func (vm *VM) Kill() error {
	vm.stop(StateKilled)
	return nil
}

// imageFormat tells qcow2 images (by their magic) from raw ones.
func imageFormat(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "raw"
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err == nil && string(magic) == "QFI\xfb" {
		return "qcow2"
	}
	return "raw"
}

// TranslationBlocks returns how many blocks of guest code the VM's QEMU
// has translated so far (see qemu.Process.TranslationBlocks).
func (vm *VM) TranslationBlocks(ctx context.Context) (int, error) {
	vm.mu.Lock()
	proc := vm.proc
	vm.mu.Unlock()
	if proc == nil {
		return 0, fmt.Errorf("%s: no QEMU: %w", vm.cfg.Name, ErrState)
	}
	return proc.TranslationBlocks(ctx)
}
