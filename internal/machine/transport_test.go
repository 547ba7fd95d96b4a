package machine

import (
	"slices"
	"strings"
	"testing"
)

func TestChooseTransportOverride(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"virtio-serial", TransportSerial},
		{"vsock", TransportVsock},
	} {
		t.Setenv("PROVIUM_TRANSPORT", tc.env)
		if got := ChooseTransport(); got != tc.want {
			t.Errorf("PROVIUM_TRANSPORT=%s: got %s", tc.env, got)
		}
	}
}

func TestVsockDeviceTellsTheGuestItsPort(t *testing.T) {
	tr, err := newTransport(TransportVsock)
	if err != nil {
		t.Fatal(err)
	}
	d := tr.device()
	if !slices.Contains(d.KernelArgs(), "provium.transport=vsock") || !slices.Contains(d.KernelArgs(), "provium.vsock_port=1024") {
		t.Errorf("kernel args %v", d.KernelArgs())
	}
	if args := strings.Join(d.QEMUArgs(), " "); !strings.Contains(args, "vhost-vsock-pci,guest-cid=") {
		t.Errorf("qemu args %s", args)
	}
}

func TestSerialTransportListens(t *testing.T) {
	tr, err := newTransport(TransportSerial)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	args := strings.Join(tr.device().QEMUArgs(), " ")
	if !strings.Contains(args, "abstract=on") || !strings.Contains(args, "name="+PortName) {
		t.Errorf("qemu args %s", args)
	}
}
