package luaapi

import (
	"errors"
	"fmt"

	lua "github.com/yuin/gopher-lua"

	"github.com/provium/provium/internal/network"
	"github.com/provium/provium/internal/result"
)

// module builds the provium module table; Run installs it both as the
// global provium and for require("provium").
func (rt *script) module(L *lua.LState) *lua.LTable {
	mod := L.NewTable()
	for name, fn := range map[string]lua.LGFunction{
		"create":        rt.create,
		"network":       rt.network,
		"fixture":       rt.fixture,
		"shutdown_all":  rt.shutdownAll,
		"pack":          luaPack,
		"unpack":        luaUnpack,
		"kernel_ignore": rt.kernelIgnore,
	} {
		mod.RawSetString(name, L.NewFunction(rt.guard("provium."+name, fn)))
	}
	rt.names(L, mod)
	return mod
}

func (rt *script) host(L *lua.LState, call string) Host {
	if rt.opts.Host == nil {
		L.RaiseError("%s: no VM host is configured for this run", call)
	}
	return rt.opts.Host
}

// create is provium.create(profile) -> vm, not booted.
func (rt *script) create(L *lua.LState) int {
	profile := L.CheckString(1)
	call := fmt.Sprintf("provium.create(%q)", profile)
	m, err := rt.host(L, call).Create(profile)
	if err != nil {
		L.RaiseError("%s: %v", call, err)
	}
	rt.created[profile]++
	v := rt.addVM(L, m)
	v.defaultHostname = defaultHostname(profile, rt.created[profile])
	L.Push(v.ud)
	return 1
}

// fixture is provium.fixture(name) -> vm, nets: a running VM resumed from
// the fixture, or for a fixture of several VMs a table of them by
// hostname; nets is a table of the fixture's networks by name. The
// host's error carries the fixture's own failure and console.
func (rt *script) fixture(L *lua.LState) int {
	name := L.CheckString(1)
	call := fmt.Sprintf("provium.fixture(%q)", name)
	rt.res.Touched = true
	fx, err := rt.host(L, call).Fixture(rt.ctx, name)
	if err != nil {
		if rt.ctx.Err() != nil {
			L.RaiseError("%s: %s", call, rt.stopped())
		}
		if ge := result.Guest(err); ge != nil {
			rt.raiseGuest(L, fmt.Sprintf("%s: %v", call, err), ge)
		}
		L.RaiseError("%s: %v", call, err)
	}
	nets := L.NewTable()
	byNet := map[*network.Network]*netObj{}
	for _, n := range fx.Networks {
		o := rt.addNetwork(L, n)
		byNet[n] = o
		nets.RawSetString(n.Name(), o.ud)
	}
	vms := L.NewTable()
	var last *vmObj
	for _, r := range fx.VMs {
		v := rt.addVM(L, r.Machine)
		v.hostname, v.members = r.Hostname, r.Members
		if r.Hostname != "" {
			vms.RawSetString(r.Hostname, v.ud)
		}
		last = v
	}
	if len(fx.VMs) == 1 {
		L.Push(last.ud)
	} else {
		L.Push(vms)
	}
	L.Push(nets)
	return 2
}

// shutdownAll is provium.shutdown_all(): every VM of this file, even when
// one of them fails to shut down.
func (rt *script) shutdownAll(L *lua.LState) int {
	var errs []error
	for _, v := range rt.vms {
		if err := v.m.Shutdown(rt.ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", v.m.Name(), err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		L.RaiseError("provium.shutdown_all: %v", err)
	}
	return 0
}
