package boot

import (
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, cmdline string
		want          Params
		errs          int
	}{
		{"defaults", "console=ttyS0 quiet\n", Defaults(), 0},
		{"all set", `console=ttyS0 provium.init=/bin/myinit provium.transport=vsock provium.port=p1 provium.vsock_port=2048 provium.root=/dev/vda rdinit=/provium/init`,
			Params{Init: "/bin/myinit", Transport: Vsock, Port: "p1", VsockPort: 2048, Root: "/dev/vda"}, 0},
		{"quoted value", `provium.init="/opt/my init" x`, Params{Init: "/opt/my init", Transport: VirtioSerial, Port: PortName, VsockPort: VsockPort}, 0},
		{"bad values keep defaults and are reported", "provium.transport=carrier-pigeon provium.vsock_port=http provium.vsock_port=0 provium.init=", Defaults(), 3},
		{"init arguments are not parameters", "quiet -- provium.transport=vsock", Defaults(), 0},
		{"networks", "provium.hostname=alpha provium.nic=52:54:00:01:00:01,10.1.0.1/24 provium.nic=52:54:00:02:00:03,10.2.0.3/24",
			withNet(Defaults(), "alpha", "52:54:00:01:00:01,10.1.0.1/24", "52:54:00:02:00:03,10.2.0.3/24"), 0},
		{"bad network values are reported", "provium.hostname=-x provium.hostname=a.b provium.nic=zz,10.1.0.1/24 provium.nic=52:54:00:01:00:01,10.1.0.1 provium.nic=52:54:00:01:00:01,fe80::1/64 provium.nic=x", Defaults(), 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, errs := Parse(tc.cmdline)
			if !reflect.DeepEqual(got, tc.want) || len(errs) != tc.errs {
				t.Errorf("Parse(%q) = %+v, %v; want %+v with %d errors", tc.cmdline, got, errs, tc.want, tc.errs)
			}
		})
	}
}

func TestArgsReadBack(t *testing.T) {
	for _, p := range []Params{
		Defaults(),
		{Init: "/usr/lib/systemd/systemd", Transport: Vsock, Port: PortName, VsockPort: 4000, Root: "/dev/vda"},
		{Init: "/opt/my init", Transport: VirtioSerial, Port: "a port", VsockPort: 1},
		withNet(Defaults(), "server-1", "52:54:00:01:00:01,10.1.0.1/24"),
	} {
		args := p.Args()
		if args[0] != "rdinit="+InitPath {
			t.Errorf("Args(%+v) does not start the shim's init: %q", p, args)
		}
		got, errs := Parse(strings.Join(args, " "))
		if !reflect.DeepEqual(got, p) || len(errs) != 0 {
			t.Errorf("Parse(Args(%+v)) = %+v, %v", p, got, errs)
		}
	}
}

func withNet(p Params, hostname string, nics ...string) Params {
	p.Hostname = hostname
	for _, s := range nics {
		mac, addr, _ := strings.Cut(s, ",")
		hw, _ := net.ParseMAC(mac)
		p.NICs = append(p.NICs, NIC{MAC: hw, Addr: netip.MustParsePrefix(addr)})
	}
	return p
}

func TestSplit(t *testing.T) {
	got := Split("  a=1\tb=\"x y\" \"c=3 4\" d= \"\"\n")
	want := []string{"a=1", "b=x y", "c=3 4", "d=", ""}
	if !slices.Equal(got, want) {
		t.Errorf("Split = %q, want %q", got, want)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "provium.init=/x", `provium.init="a b" -- x`, "provium.vsock_port=99999999999", "\"\"\"", "provium.transport=vsock provium.root=/dev/vda", "provium.nic=52:54:00:01:00:01,10.1.0.1/24 provium.hostname=a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, _ := Parse(s)
		if p.Transport != VirtioSerial && p.Transport != Vsock {
			t.Fatalf("Parse(%q) chose transport %q", s, p.Transport)
		}
		if p.Init == "" || p.Port == "" || p.VsockPort == 0 {
			t.Fatalf("Parse(%q) = %+v: a parameter lost its default", s, p)
		}
		// What the guest understood, the host can say again: values
		// without a double quote survive a round trip.
		if !strings.Contains(p.Init+p.Port+p.Root, `"`) {
			if back, errs := Parse(strings.Join(p.Args(), " ")); !reflect.DeepEqual(back, p) || len(errs) != 0 {
				t.Fatalf("Parse(Args(Parse(%q))) = %+v, %v; want %+v", s, back, errs, p)
			}
		}
	})
}
