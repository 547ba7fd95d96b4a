package luaapi

import (
	"fmt"
	"path/filepath"

	lua "github.com/yuin/gopher-lua"

	"github.com/provium/provium/internal/client"
	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/network"
)

const vmType = "provium.vm"

// vmObj is the Lua object for a VM of this file.
type vmObj struct {
	m        Machine
	ud       *lua.LUserData
	nworkers int // workers spawned so far, to name them
	// reportsSeen counts the VM's kernel reports a scope has taken.
	reportsSeen int
	// hostname is the guest's hostname as the VM's boot set it: the
	// boot option, else, on a network, defaultHostname.
	hostname        string
	defaultHostname string
	members         []*network.Member // its places on networks, in card order
}

func (v *vmObj) kind() string { return "vm" }
func (v *vmObj) name() string { return v.m.Name() }
func (v *vmObj) vm() *vmObj   { return v }

func (v *vmObj) agent() (*client.Agent, error) {
	st := v.m.State()
	if st != machine.StateRunning {
		return nil, &stateError{"VM is not running", st}
	}
	a := v.m.Agent()
	if a == nil {
		// Stopped between the two calls.
		return nil, &stateError{"VM is not running", v.m.State()}
	}
	return a, nil
}

// vmMetatable builds the VM's method table: the agent methods plus the
// lifecycle ones only a VM has.
func (rt *script) vmMetatable(L *lua.LState) {
	methods := L.NewTable()
	L.SetFuncs(methods, rt.guardAll(rt.agentMethods()))
	L.SetFuncs(methods, rt.guardAll(map[string]lua.LGFunction{
		"boot":     rt.boot,
		"shutdown": rt.shutdown,
		"kill":     rt.kill,
		"spawn":    rt.spawn,
		"ip":       rt.ip,

		"kernel_reports": rt.kernelReports,
	}))
	rt.methods[vmType] = methods
	mt := L.NewTypeMetatable(vmType)
	L.SetFuncs(mt, rt.guardAll(map[string]lua.LGFunction{
		"__index": func(L *lua.LState) int {
			v := checkVM(L, "__index")
			key := L.Get(2)
			if m := methods.RawGet(key); m != lua.LNil {
				L.Push(m)
				return 1
			}
			if k, ok := key.(lua.LString); ok && vmFields[string(k)] != nil {
				L.Push(vmFields[string(k)](v))
				return 1
			}
			L.Push(lua.LNil)
			return 1
		},
		"__tostring": func(L *lua.LState) int {
			v := checkVM(L, "__tostring")
			L.Push(lua.LString(fmt.Sprintf("vm %s (%s)", v.m.Name(), string(v.m.State()))))
			return 1
		},
	}))
}

// vmFields are the values a VM shows besides its methods.
var vmFields = map[string]func(v *vmObj) lua.LValue{
	"name":  func(v *vmObj) lua.LValue { return lua.LString(v.m.Name()) },
	"state": func(v *vmObj) lua.LValue { return lua.LString(string(v.m.State())) },
	"hostname": func(v *vmObj) lua.LValue {
		if v.hostname == "" {
			return lua.LNil
		}
		return lua.LString(v.hostname)
	},
}

func checkVM(L *lua.LState, method string) *vmObj { return checkSelf[*vmObj](L, "vm", method) }

// checkSelf returns the object a method was called on, or raises an
// argument error that shows the colon call the user meant.
func checkSelf[T any](L *lua.LState, kind, method string) T {
	if ud, ok := L.Get(1).(*lua.LUserData); ok {
		if v, ok := ud.Value.(T); ok {
			return v
		}
	}
	L.ArgError(1, fmt.Sprintf("%s expected, got %s (call it as %s:%s(...))", kind, L.Get(1).Type(), kind, method))
	var zero T
	return zero
}

// addVM wraps a machine the host made for this file.
func (rt *script) addVM(L *lua.LState, m Machine) *vmObj {
	v := &vmObj{m: m}
	v.ud = L.NewUserData()
	v.ud.Value = v
	L.SetMetatable(v.ud, L.GetTypeMetatable(vmType))
	rt.vms = append(rt.vms, v)
	rt.res.Touched = true
	rt.use(v)
	return v
}

// boot is vm:boot(opts?) -> vm.
func (rt *script) boot(L *lua.LState) int {
	v := checkVM(L, "boot")
	rt.use(v)
	bo, nets := rt.bootOptions(L, 2)
	if st := v.m.State(); st != machine.StateCreated {
		rt.fail(L, v, "boot", &stateError{"VM cannot boot", st})
	}
	if len(nets) > 0 && bo.Hostname == "" {
		// A VM on a network always has a hostname: the others find it
		// by name.
		bo.Hostname = v.defaultHostname
	}
	v.hostname = bo.Hostname
	if len(nets) > 0 {
		if err := rt.join(v, v.hostname, nets, &bo); err != nil {
			rt.fail(L, v, "boot", err)
		}
	}
	if err := v.m.Boot(rt.ctx, bo); err != nil {
		for _, m := range v.members {
			m.Leave()
		}
		v.members = nil
		rt.fail(L, v, "boot", err)
	}
	if len(nets) > 0 {
		if err := rt.checkAddresses(v); err != nil {
			rt.fail(L, v, "boot", err)
		}
		rt.updateHosts(L, v)
	}
	L.Push(v.ud)
	return 1
}

// bootOptions reads vm:boot's options. Relative host paths resolve
// against the start directory, like dofile.
func (rt *script) bootOptions(L *lua.LState, n int) (machine.BootOptions, []*netObj) {
	o := checkOpts(L, n, "memory", "cpus", "files", "disks", "boot_timeout", "networks", "hostname")
	bo := machine.BootOptions{
		MemoryMiB:   o.sizeMiB("memory", machine.DefaultMemoryMiB),
		CPUs:        o.count("cpus", machine.DefaultCPUs),
		BootTimeout: o.seconds("boot_timeout", 0),
	}
	if v := o.get("files"); v != lua.LNil {
		t, ok := v.(*lua.LTable)
		if !ok {
			o.bad("files", "table {[\"/guest/path\"] = \"/host/path\"} expected, got "+v.Type().String())
		}
		bo.Files = map[string]string{}
		t.ForEach(func(k, v lua.LValue) {
			guest, gok := k.(lua.LString)
			host, hok := v.(lua.LString)
			if !gok || !hok {
				o.bad("files", fmt.Sprintf("entries must map a guest path to a host path, got %s = %s", describe(k), describe(v)))
			}
			if !filepath.IsAbs(string(guest)) {
				o.bad("files", fmt.Sprintf("guest path %q is not absolute", string(guest)))
			}
			bo.Files[string(guest)] = rt.resolve(string(host))
		})
	}
	if v := o.get("disks"); v != lua.LNil {
		t, ok := v.(*lua.LTable)
		if !ok {
			o.bad("disks", "list of disks expected, got "+v.Type().String())
		}
		for i := 1; i <= t.Len(); i++ {
			bo.Disks = append(bo.Disks, rt.disk(o, i, t.RawGetInt(i)))
		}
	}
	var nets []*netObj
	bo.Hostname, nets = rt.bootNetworks(o)
	return bo, nets
}

// disk reads one {path, format="raw"|"qcow2", readonly=false}.
func (rt *script) disk(o *opts, i int, v lua.LValue) machine.Disk {
	t, ok := v.(*lua.LTable)
	if !ok {
		o.bad("disks", fmt.Sprintf("disk %d: table expected, got %s", i, v.Type()))
	}
	field := func(name string, pos int) lua.LValue {
		if f := t.RawGetString(name); f != lua.LNil {
			return f
		}
		return t.RawGetInt(pos)
	}
	d := machine.Disk{Format: "raw"}
	path, ok := field("path", 1).(lua.LString)
	if !ok || path == "" {
		o.bad("disks", fmt.Sprintf("disk %d: path missing", i))
	}
	d.Path = rt.resolve(string(path))
	switch f := field("format", 2).(type) {
	case *lua.LNilType:
	case lua.LString:
		if f != "raw" && f != "qcow2" {
			o.bad("disks", fmt.Sprintf("disk %d: format %q is not \"raw\" or \"qcow2\"", i, string(f)))
		}
		d.Format = string(f)
	default:
		o.bad("disks", fmt.Sprintf("disk %d: format must be a string", i))
	}
	switch r := field("readonly", 3).(type) {
	case *lua.LNilType:
	case lua.LBool:
		d.ReadOnly = bool(r)
	default:
		o.bad("disks", fmt.Sprintf("disk %d: readonly must be a boolean", i))
	}
	return d
}

// shutdown is vm:shutdown(): graceful, idempotent.
func (rt *script) shutdown(L *lua.LState) int {
	v := checkVM(L, "shutdown")
	rt.use(v)
	if err := v.m.Shutdown(rt.ctx); err != nil {
		rt.fail(L, v, "shutdown", err)
	}
	return 0
}

// kill is vm:kill(): QEMU stops at once.
func (rt *script) kill(L *lua.LState) int {
	v := checkVM(L, "kill")
	rt.use(v)
	if err := v.m.Kill(); err != nil {
		rt.fail(L, v, "kill", err)
	}
	return 0
}

// spawn is vm:spawn(opts?) -> worker; {thread = true} for a thread worker.
func (rt *script) spawn(L *lua.LState) int {
	v := checkVM(L, "spawn")
	rt.use(v)
	thread := checkOpts(L, 2, "thread").boolean("thread", false)
	a := rt.agentOf(L, v, "spawn")
	wa, reply, err := a.Spawn(rt.ctx, thread)
	if err != nil {
		rt.fail(L, v, "spawn", err)
	}
	v.nworkers++
	w := &workerObj{
		parent: v,
		a:      wa,
		label:  fmt.Sprintf("%s/worker%d", v.m.Name(), v.nworkers),
		thread: thread,
		pid:    reply.PID,
		tid:    reply.TID,
	}
	rt.workers = append(rt.workers, w)
	L.Push(rt.newWorker(L, w))
	return 1
}
