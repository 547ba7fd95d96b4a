package machine

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/provium/provium/internal/profile"
	"github.com/provium/provium/internal/wire/boot"
)

func TestChooseTransportOverride(t *testing.T) {
	for _, want := range []boot.Transport{boot.VirtioSerial, boot.Vsock} {
		t.Setenv("PROVIUM_TRANSPORT", string(want))
		if got := ChooseTransport(); got != want {
			t.Errorf("PROVIUM_TRANSPORT=%s: got %s", want, got)
		}
	}
}

// The kernel command line the host hands QEMU is read back by the guest's
// own parser as what the host meant, for each transport and for a profile
// that boots a disk and adds arguments of its own.
func TestKernelCommandLineReadsBackInTheGuest(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "disk.img")
	os.WriteFile(disk, make([]byte, 512), 0o644)
	for _, tc := range []struct {
		name      string
		profile   profile.Profile
		transport boot.Transport
		want      boot.Params
	}{
		{"virtio-serial, default init", profile.Profile{Name: "p"}, boot.VirtioSerial,
			boot.Params{Init: boot.DefaultInit, Transport: boot.VirtioSerial, Port: boot.PortName, VsockPort: boot.VsockPort}},
		{"vsock, own init, disk root", profile.Profile{Name: "p", Init: "/usr/lib/systemd/systemd", Rootfs: disk, Append: `quiet systemd.unit="rescue.target"`}, boot.Vsock,
			boot.Params{Init: "/usr/lib/systemd/systemd", Transport: boot.Vsock, Port: boot.PortName, VsockPort: boot.VsockPort, Root: "/dev/vda"}},
		{"the profile's arguments win", profile.Profile{Name: "p", Append: "provium.init=/bin/sh"}, boot.VirtioSerial,
			boot.Params{Init: "/bin/sh", Transport: boot.VirtioSerial, Port: boot.PortName, VsockPort: boot.VsockPort}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := newTransport(tc.transport)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.close()
			shape := newShape(&tc.profile, BootOptions{}.WithDefaults(), tc.transport, "/k", "/i")
			cmdline := shape.qemuConfig(tr.device(), nil).KernelCommandLine()
			got, errs := boot.Parse(cmdline)
			if !reflect.DeepEqual(got, tc.want) || len(errs) != 0 {
				t.Errorf("the guest reads %q as %+v (errors %v), want %+v", cmdline, got, errs, tc.want)
			}
			if !strings.Contains(" "+cmdline+" ", " rdinit="+boot.InitPath+" ") {
				t.Errorf("%q does not run the shim's init", cmdline)
			}
		})
	}
}

func TestSerialTransportListens(t *testing.T) {
	tr, err := newTransport(boot.VirtioSerial)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	args := strings.Join(tr.device().QEMUArgs(), " ")
	if !strings.Contains(args, "abstract=on") || !strings.Contains(args, "name="+boot.PortName) {
		t.Errorf("qemu args %s", args)
	}
}

// A boot's hostname and network cards reach the guest's init as the
// host planned them, and the shape keeps the cards without their sockets.
func TestNetworkReachesGuest(t *testing.T) {
	opts := BootOptions{Hostname: "server", NICs: []NIC{{MAC: "52:54:00:01:00:02", Addr: "10.1.0.2/24", Socket: os.Stdin}}}.WithDefaults()
	if err := opts.Check(); err != nil {
		t.Fatal(err)
	}
	shape := newShape(&profile.Profile{}, opts, boot.VirtioSerial, "/k", "/i")
	got, errs := boot.Parse(strings.Join(shape.Append, " "))
	if len(errs) != 0 || got.Hostname != "server" || len(got.NICs) != 1 || got.NICs[0].String() != "52:54:00:01:00:02,10.1.0.2/24" {
		t.Errorf("the guest reads %q as %+v (errors %v)", shape.Append, got, errs)
	}
	if len(shape.NICs) != 1 || shape.NICs[0].Socket != nil {
		t.Errorf("shape NICs = %+v, want the card without its socket", shape.NICs)
	}
	if needsOf(shape) != (needs{net: true}) {
		t.Errorf("needs = %+v, want the network driver", needsOf(shape))
	}
	for _, bad := range []BootOptions{
		{Hostname: "no_underscores"},
		{NICs: []NIC{{MAC: "52:54:00:01:00:02", Addr: "10.1.0.2"}}},
		{NICs: []NIC{{MAC: "not-a-mac", Addr: "10.1.0.2/24"}}},
	} {
		if err := bad.Check(); !errors.Is(err, ErrBadOptions) {
			t.Errorf("Check(%+v) = %v, want ErrBadOptions", bad, err)
		}
	}
}
