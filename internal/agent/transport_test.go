package agent

import (
	"bytes"
	"io"
	"log"
	"os"
	"path/filepath"
	"testing"
)

func TestFindPort(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	for port, name := range map[string]string{
		"vport0p0": "org.qemu.guest_agent.0",
		"vport1p1": "org.provium.agent",
	} {
		os.MkdirAll(filepath.Join(sys, port), 0o755)
		os.WriteFile(filepath.Join(sys, port, "name"), []byte(name+"\n"), 0o644)
	}
	got, err := findPort(sys, dev, "org.provium.agent")
	if err != nil || got != filepath.Join(dev, "vport1p1") {
		t.Errorf("findPort = %q, %v", got, err)
	}
	if _, err := findPort(sys, dev, "other"); err == nil {
		t.Error("findPort found a port that is not there")
	}

	// openPort waits for the device node.
	os.WriteFile(filepath.Join(dev, "vport1p1"), nil, 0o644)
	f, err := openPort(sys, dev, "org.provium.agent", openWait)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := openPort(sys, dev, "other", 0); err == nil {
		t.Error("openPort opened a port that is not there")
	}
}

// disconnectedPort reads like a virtio-serial port whose host comes and
// goes: 0 bytes and EOF while nobody is connected.
type disconnectedPort struct {
	reads [][]byte // nil: a read while disconnected
	bytes.Buffer
}

func (p *disconnectedPort) Read(b []byte) (int, error) {
	if len(p.reads) == 0 {
		return 0, io.ErrClosedPipe
	}
	r := p.reads[0]
	p.reads = p.reads[1:]
	if r == nil {
		return 0, io.EOF
	}
	return copy(b, r), nil
}

func TestReconnectingPortNeverEnds(t *testing.T) {
	port := &disconnectedPort{reads: [][]byte{nil, nil, []byte("host "), nil, []byte("again")}}
	p := &reconnectingPort{port: port, log: log.New(io.Discard, "", 0)}
	b := make([]byte, 5)
	var got []byte
	for range 2 {
		n, err := p.Read(b)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b[:n]...)
	}
	if string(got) != "host again" {
		t.Errorf("read %q", got)
	}
}
