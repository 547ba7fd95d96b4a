package luaapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/netswitch"
	"github.com/provium/provium/internal/network"
	"github.com/provium/provium/internal/wire/boot"
)

const (
	networkType = "provium.network"
	linkType    = "provium.link"
)

// netObj is the Lua object of a network of this file.
type netObj struct {
	n  *network.Network
	ud *lua.LUserData
}

// linkObj is net:link(a, b): the two directions between two members.
type linkObj struct {
	net  *netObj
	a, b *vmObj
}

// network is provium.network(name) -> net.
func (rt *script) network(L *lua.LState) int {
	name := L.CheckString(1)
	call := fmt.Sprintf("provium.network(%q)", name)
	if name == "" {
		L.ArgError(1, "a network needs a name")
	}
	n, err := rt.host(L, call).Network(name)
	if err != nil {
		L.RaiseError("%s: %v", call, err)
	}
	rt.res.Touched = true
	L.Push(rt.addNetwork(L, n).ud)
	return 1
}

func (rt *script) addNetwork(L *lua.LState, n *network.Network) *netObj {
	o := &netObj{n: n}
	o.ud = L.NewUserData()
	o.ud.Value = o
	L.SetMetatable(o.ud, L.GetTypeMetatable(networkType))
	rt.nets = append(rt.nets, o)
	return o
}

func (rt *script) networkMetatable(L *lua.LState) {
	methods := L.NewTable()
	L.SetFuncs(methods, rt.guardAll(map[string]lua.LGFunction{
		"partition": rt.netPartition,
		"heal":      rt.netHeal,
		"link":      rt.netLink,
		"capture":   rt.netCapture,
	}))
	rt.methods[networkType] = methods
	mt := L.NewTypeMetatable(networkType)
	L.SetFuncs(mt, rt.guardAll(map[string]lua.LGFunction{
		"__index": func(L *lua.LState) int {
			o := checkSelf[*netObj](L, "net", "__index")
			key := L.Get(2)
			if m := methods.RawGet(key); m != lua.LNil {
				L.Push(m)
				return 1
			}
			if k, ok := key.(lua.LString); ok && netFields[string(k)] != nil {
				L.Push(netFields[string(k)](o))
				return 1
			}
			L.Push(lua.LNil)
			return 1
		},
		"__tostring": func(L *lua.LState) int {
			o := checkSelf[*netObj](L, "net", "__tostring")
			L.Push(lua.LString(fmt.Sprintf("network %s (%s)", o.n.Name(), o.n.Prefix())))
			return 1
		},
	}))
	lmt := L.NewTypeMetatable(linkType)
	lmethods := L.NewTable()
	L.SetFuncs(lmethods, rt.guardAll(map[string]lua.LGFunction{"set": rt.linkSet}))
	rt.methods[linkType] = lmethods
	lmt.RawSetString("__index", lmethods)
	lmt.RawSetString("__tostring", L.NewFunction(rt.guard("__tostring", func(L *lua.LState) int {
		l := checkSelf[*linkObj](L, "link", "__tostring")
		L.Push(lua.LString(fmt.Sprintf("link %s-%s on %s", l.a.name(), l.b.name(), l.net.n.Name())))
		return 1
	})))
}

// netFields are the values a network shows besides its methods.
var netFields = map[string]func(o *netObj) lua.LValue{
	"name":   func(o *netObj) lua.LValue { return lua.LString(o.n.Name()) },
	"prefix": func(o *netObj) lua.LValue { return lua.LString(o.n.Prefix().String()) },
}

func checkNet(L *lua.LState, method string) *netObj {
	return checkSelf[*netObj](L, "net", method)
}

// memberOf returns v's place on o, raising an error that names both
// when v is not on it.
func (o *netObj) memberOf(L *lua.LState, call string, v *vmObj) *network.Member {
	for _, m := range v.members {
		if m.Network() == o.n {
			return m
		}
	}
	L.RaiseError("%s: %s is not on network %s (boot it with networks = {net})", call, v.name(), o.n.Name())
	return nil
}

// argVM reads a VM at argument n.
func argVM(L *lua.LState, n int, call string) *vmObj {
	if ud, ok := L.Get(n).(*lua.LUserData); ok {
		if v, ok := ud.Value.(*vmObj); ok {
			return v
		}
	}
	L.ArgError(n, fmt.Sprintf("%s: VM expected, got %s", call, describe(L.Get(n))))
	return nil
}

// netPartition is net:partition({a, b}, {c}, ...): VMs in different
// groups cannot reach each other; a VM in no group reaches no one.
func (rt *script) netPartition(L *lua.LState) int {
	o := checkNet(L, "partition")
	const call = "net:partition"
	var groups [][]*network.Member
	for i := 2; i <= L.GetTop(); i++ {
		t, ok := L.Get(i).(*lua.LTable)
		if !ok {
			L.ArgError(i, fmt.Sprintf("a group of VMs ({a, b}) expected, got %s", describe(L.Get(i))))
		}
		var g []*network.Member
		for j := 1; j <= t.Len(); j++ {
			ud, ok := t.RawGetInt(j).(*lua.LUserData)
			v, _ := func() (*vmObj, bool) {
				if !ok {
					return nil, false
				}
				v, ok := ud.Value.(*vmObj)
				return v, ok
			}()
			if v == nil {
				L.ArgError(i, fmt.Sprintf("group entry %d: VM expected, got %s", j, describe(t.RawGetInt(j))))
			}
			g = append(g, o.memberOf(L, call, v))
		}
		groups = append(groups, g)
	}
	if err := o.n.Partition(groups...); err != nil {
		L.RaiseError("%s: %v", call, err)
	}
	return 0
}

// netHeal is net:heal(): every VM reaches every other again.
func (rt *script) netHeal(L *lua.LState) int {
	checkNet(L, "heal").n.Heal()
	return 0
}

// netLink is net:link(a, b) -> link, whose set impairs both directions.
func (rt *script) netLink(L *lua.LState) int {
	o := checkNet(L, "link")
	const call = "net:link"
	a, b := argVM(L, 2, call), argVM(L, 3, call)
	o.memberOf(L, call, a)
	o.memberOf(L, call, b)
	if a == b {
		L.ArgError(3, "a link joins two different VMs")
	}
	ud := L.NewUserData()
	ud.Value = &linkObj{net: o, a: a, b: b}
	L.SetMetatable(ud, L.GetTypeMetatable(linkType))
	L.Push(ud)
	return 1
}

// linkSet is link:set{delay=, jitter=, loss=, rate=}: the link's
// impairment from now on, in both directions; link:set{} lifts it.
func (rt *script) linkSet(L *lua.LState) int {
	l := checkSelf[*linkObj](L, "link", "set")
	o := checkOpts(L, 2, "delay", "jitter", "loss", "rate")
	imp := network.Impairment{
		Delay:  linkDuration(o, "delay"),
		Jitter: linkDuration(o, "jitter"),
		Loss:   o.number("loss", 0),
	}
	if !(imp.Loss >= 0 && imp.Loss <= 1) {
		o.bad("loss", fmt.Sprintf("%s is not a probability from 0 to 1", formatNumber(imp.Loss)))
	}
	switch r := o.get("rate").(type) {
	case *lua.LNilType:
	case lua.LString:
		bits, err := netswitch.ParseRate(string(r))
		if err != nil {
			o.bad("rate", err.Error()+` (e.g. "10mbit", "512kbit", "1gbit")`)
		}
		imp.RateBitsPerSec = bits
	case lua.LNumber:
		if r < 1 || float64(r) != math.Trunc(float64(r)) || float64(r) > math.MaxInt64/2 {
			o.bad("rate", fmt.Sprintf("%s is not a whole number of bits per second", formatNumber(float64(r))))
		}
		imp.RateBitsPerSec = int64(r)
	default:
		o.bad("rate", `a rate ("10mbit") or bits per second expected, got `+r.Type().String())
	}
	a, b := l.net.memberOf(L, "link:set", l.a), l.net.memberOf(L, "link:set", l.b)
	if err := l.net.n.SetLink(a, b, imp); err != nil {
		L.RaiseError("link:set: %v", err)
	}
	return 0
}

// linkDuration reads a delay: "50ms", "1.5s", or a number of seconds.
func linkDuration(o *opts, key string) time.Duration {
	switch v := o.get(key).(type) {
	case *lua.LNilType:
		return 0
	case lua.LString:
		d, err := time.ParseDuration(string(v))
		if err != nil || d < 0 {
			o.bad(key, fmt.Sprintf("%q is not a duration (e.g. \"50ms\", \"1.5s\")", string(v)))
		}
		return d
	case lua.LNumber:
		return o.seconds(key, 0)
	default:
		o.bad(key, "a duration (\"50ms\") or seconds expected, got "+v.Type().String())
	}
	return 0
}

// netCapture is net:capture(path): a pcap of the network from now on,
// complete when the file ends.
func (rt *script) netCapture(L *lua.LState) int {
	o := checkNet(L, "capture")
	path := rt.resolve(L.CheckString(2))
	if err := o.n.Capture(path); err != nil {
		L.RaiseError("net:capture: %v", err)
	}
	return 0
}

// ip is vm:ip(net?) -> "10.N.0.x": the VM's address on net, or on its
// only network.
func (rt *script) ip(L *lua.LState) int {
	v := checkVM(L, "ip")
	if L.GetTop() < 2 {
		if len(v.members) != 1 {
			L.RaiseError("vm:ip on %s: the VM is on %d networks: say which (vm:ip(net))", v.name(), len(v.members))
		}
		L.Push(lua.LString(v.members[0].Addr().Addr().String()))
		return 1
	}
	o, ok := L.Get(2).(*lua.LUserData)
	n, _ := o.Value.(*netObj)
	if !ok || n == nil {
		L.ArgError(2, "network expected, got "+describe(L.Get(2)))
	}
	L.Push(lua.LString(n.memberOf(L, "vm:ip", v).Addr().Addr().String()))
	return 1
}

// bootNetworks reads boot's networks and hostname options.
func (rt *script) bootNetworks(o *opts) (hostname string, nets []*netObj) {
	hostname = o.str("hostname", "")
	if hostname != "" && !boot.ValidHostname(hostname) {
		o.bad("hostname", fmt.Sprintf("%q is not a hostname (1 to 63 letters, digits and inner hyphens)", hostname))
	}
	v := o.get("networks")
	if v == lua.LNil {
		return hostname, nil
	}
	t, ok := v.(*lua.LTable)
	if !ok {
		o.bad("networks", "list of networks expected, got "+v.Type().String())
	}
	for i := 1; i <= t.Len(); i++ {
		ud, ok := t.RawGetInt(i).(*lua.LUserData)
		var n *netObj
		if ok {
			n, _ = ud.Value.(*netObj)
		}
		if n == nil {
			o.bad("networks", fmt.Sprintf("entry %d: network (provium.network) expected, got %s", i, describe(t.RawGetInt(i))))
		}
		for _, m := range nets {
			if m == n {
				o.bad("networks", fmt.Sprintf("network %s is listed twice", n.n.Name()))
			}
		}
		nets = append(nets, n)
	}
	return hostname, nets
}

// join puts v on nets before its boot, under hostname; the boot options
// get a network card per network. On error nothing is joined.
func (rt *script) join(v *vmObj, hostname string, nets []*netObj, bo *machine.BootOptions) error {
	var joined []*network.Member
	for _, n := range nets {
		m, err := n.n.Join(hostname, v.name())
		if err != nil {
			for _, j := range joined {
				j.Leave()
			}
			return err
		}
		joined = append(joined, m)
	}
	for _, m := range joined {
		bo.NICs = append(bo.NICs, machine.NIC{MAC: m.MAC(), Addr: m.Addr().String(), Socket: m.Socket()})
	}
	v.members = joined
	return nil
}

// defaultHostname is the hostname of the n-th VM of a profile in this
// file, e.g. "minimal-2": the same in every run, so that a fixture's key,
// which covers the kernel command line, does not change with the order
// in which files start.
func defaultHostname(profile string, n int) string {
	var b strings.Builder
	for _, r := range strings.ToLower(profile) {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if name == "" {
		name = "vm"
	}
	suffix := fmt.Sprintf("-%d", n)
	if len(name)+len(suffix) > 63 {
		name = strings.TrimRight(name[:63-len(suffix)], "-")
	}
	return name + suffix
}

// guestNetTimeout bounds each call a boot on a network makes to set up
// or check the guests' view of it.
const guestNetTimeout = 30 * time.Second

// checkAddresses makes sure the guest's init gave each of v's cards its
// address: a card left without one would fail the test later, far from
// the cause, which the guest's init printed on its console.
func (rt *script) checkAddresses(v *vmObj) error {
	a, err := v.agent()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(rt.ctx, guestNetTimeout)
	defer cancel()
	trie, err := a.ReadFile(ctx, "/proc/net/fib_trie")
	if err != nil {
		return fmt.Errorf("check network addresses: %w", err)
	}
	local := localAddresses(string(trie))
	for _, m := range v.members {
		if ip := m.Addr().Addr().String(); !local[ip] {
			return fmt.Errorf("network %s: the guest has no address %s on its card %s (its console may say why)", m.Network().Name(), ip, m.MAC())
		}
	}
	return nil
}

// localAddresses reads the guest's own IPv4 addresses from
// /proc/net/fib_trie, where each is a "|-- ADDR" line followed by one
// that says "/32 host LOCAL".
func localAddresses(trie string) map[string]bool {
	out := map[string]bool{}
	lines := strings.Split(trie, "\n")
	for i := 0; i+1 < len(lines); i++ {
		_, addr, ok := strings.Cut(lines[i], "|-- ")
		if ok && strings.Contains(lines[i+1], "host LOCAL") {
			out[strings.TrimSpace(addr)] = true
		}
	}
	return out
}

// updateHosts lists every member of v's networks in the hosts table of
// every running VM of this file on those networks, v included: a VM that
// joins is known by name to those already there, and knows them.
func (rt *script) updateHosts(L *lua.LState, v *vmObj) {
	touched := map[*network.Network]bool{}
	for _, m := range v.members {
		touched[m.Network()] = true
	}
	for _, w := range rt.vms {
		var nets []*network.Network
		shares := false
		for _, m := range w.members {
			nets = append(nets, m.Network())
			shares = shares || touched[m.Network()]
		}
		if !shares || w.m.State() != machine.StateRunning {
			continue
		}
		if err := rt.writeHosts(w, nets); err != nil {
			if w == v {
				rt.fail(L, v, "boot", err)
			}
			rt.logf("[network] %s: %v", w.name(), err)
		}
	}
}

func (rt *script) writeHosts(v *vmObj, nets []*network.Network) error {
	a, err := v.agent()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(rt.ctx, guestNetTimeout)
	defer cancel()
	old, err := a.ReadFile(ctx, guestnetHosts)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("read %s: %w", guestnetHosts, err)
	}
	if err := a.WriteFile(ctx, guestnetHosts, []byte(network.HostsFile(string(old), nets)), 0); err != nil {
		return fmt.Errorf("write %s: %w", guestnetHosts, err)
	}
	return nil
}

// guestnetHosts is the guest's hosts table.
const guestnetHosts = "/etc/hosts"
