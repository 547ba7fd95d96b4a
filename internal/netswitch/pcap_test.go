package netswitch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type pcapRecord struct {
	ts      time.Time
	data    []byte
	origLen int
}

// readPcap parses a classic little-endian microsecond pcap stream.
func readPcap(b []byte) (snaplen, linktype uint32, recs []pcapRecord, err error) {
	if len(b) < pcapHeaderSize {
		return 0, 0, nil, errors.New("short global header")
	}
	le := binary.LittleEndian
	if m := le.Uint32(b); m != 0xa1b2c3d4 {
		return 0, 0, nil, fmt.Errorf("magic %#x", m)
	}
	if maj, mnr := le.Uint16(b[4:]), le.Uint16(b[6:]); maj != 2 || mnr != 4 {
		return 0, 0, nil, fmt.Errorf("version %d.%d", maj, mnr)
	}
	snaplen, linktype = le.Uint32(b[16:]), le.Uint32(b[20:])
	b = b[pcapHeaderSize:]
	for len(b) > 0 {
		if len(b) < pcapRecordSize {
			return 0, 0, nil, errors.New("short record header")
		}
		incl, orig := le.Uint32(b[8:]), le.Uint32(b[12:])
		if usec := le.Uint32(b[4:]); usec >= 1e6 {
			return 0, 0, nil, fmt.Errorf("microseconds %d", usec)
		}
		if incl > snaplen || incl > orig {
			return 0, 0, nil, fmt.Errorf("record of %d bytes, original %d, snaplen %d", incl, orig, snaplen)
		}
		if len(b) < pcapRecordSize+int(incl) {
			return 0, 0, nil, errors.New("short record")
		}
		recs = append(recs, pcapRecord{
			ts:      time.Unix(int64(le.Uint32(b[0:])), int64(le.Uint32(b[4:]))*1000),
			data:    b[pcapRecordSize : pcapRecordSize+incl],
			origLen: int(orig),
		})
		b = b[pcapRecordSize+incl:]
	}
	return snaplen, linktype, recs, nil
}

func TestCaptureRecordsWhatEntersTheSwitch(t *testing.T) {
	s := newSwitch(t)
	var out bytes.Buffer
	if err := s.Capture(&out); err != nil {
		t.Fatal(err)
	}
	if out.Len() != pcapHeaderSize {
		t.Fatalf("capture wrote %d bytes before any frame, want the %d-byte header", out.Len(), pcapHeaderSize)
	}
	a, b, c := newVM(t, s, "a", 1), newVM(t, s, "b", 2), newVM(t, s, "c", 3)
	arp := frame(broadcast, a.mac, 0x0806, bytes.Repeat([]byte{1}, 28))
	reply := frame(a.mac, b.mac, 0x0806, bytes.Repeat([]byte{2}, 28))
	cut := frame(broadcast, c.mac, 0x0800, []byte("dropped by the partition"))
	runt := []byte("runt")
	huge := bytes.Repeat([]byte{0xee}, MaxFrame+100)

	start := time.Now().Truncate(time.Microsecond)
	a.send(arp)
	b.expect(arp)
	c.expect(arp)
	b.send(reply)
	a.expect(reply)
	if err := s.Partition([]*Port{a.port, b.port}, []*Port{c.port}); err != nil {
		t.Fatal(err)
	}
	c.send(cut)
	// Ports are read concurrently; wait so the records' order is known.
	waitStats(t, s, "c's frame in", func(m map[string]PortStats) bool { return m["c"].InFrames == 1 })
	b.send(runt)
	b.send(huge)
	waitStats(t, s, "b's frames in", func(m map[string]PortStats) bool { return m["b"].InFrames == 3 })
	if err := s.StopCapture(); err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	// Nothing is written after StopCapture.
	s.Heal()
	a.send(arp)
	b.expect(arp)
	raw := out.Bytes()

	snaplen, linktype, recs, err := readPcap(raw)
	if err != nil {
		t.Fatal(err)
	}
	if snaplen != MaxFrame || linktype != 1 {
		t.Errorf("snaplen %d, linktype %d; want %d, 1 (Ethernet)", snaplen, linktype, MaxFrame)
	}
	want := []struct {
		name string
		data []byte
	}{{"arp", arp}, {"reply", reply}, {"partitioned", cut}, {"runt", runt}, {"oversized", huge}}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i, w := range want {
		r := recs[i]
		if r.origLen != len(w.data) {
			t.Errorf("%s: original length %d, want %d", w.name, r.origLen, len(w.data))
		}
		if !bytes.Equal(r.data, w.data[:min(len(w.data), MaxFrame)]) {
			t.Errorf("%s: captured bytes differ", w.name)
		}
		if r.ts.Before(start) || r.ts.After(end) || i > 0 && r.ts.Before(recs[i-1].ts) {
			t.Errorf("%s: timestamp %v outside %v..%v or before the previous one", w.name, r.ts, start, end)
		}
	}

	t.Run("tcpdump", func(t *testing.T) {
		tcpdump, err := exec.LookPath("tcpdump")
		if err != nil {
			t.Skip("tcpdump not installed (apt-get install tcpdump); pcap checked by the test's own reader only")
		}
		path := filepath.Join(t.TempDir(), "capture.pcap")
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(tcpdump, "-r", path, "-nn", "-e", "-q")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		outb, err := cmd.Output()
		if err != nil {
			t.Fatalf("tcpdump: %v\n%s", err, stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(string(outb)), "\n")
		wantLines := []string{
			"02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, ARP, length 42",
			"02:00:00:00:00:02 > 02:00:00:00:00:01, ARP, length 42",
			"02:00:00:00:00:03 > ff:ff:ff:ff:ff:ff, IPv4, length 38",
			"[|ether]", // the 4-byte runt
			"ee:ee:ee:ee:ee:ee > ee:ee:ee:ee:ee:ee, Unknown Ethertype (0xeeee), length 65635",
		}
		if len(lines) != len(wantLines) {
			t.Fatalf("tcpdump printed %d lines, want %d:\n%s", len(lines), len(wantLines), outb)
		}
		for i, w := range wantLines {
			if !strings.Contains(lines[i], w) {
				t.Errorf("tcpdump line %d = %q, want it to contain %q", i, lines[i], w)
			}
		}
		if !strings.Contains(stderr.String(), "EN10MB") {
			t.Errorf("tcpdump did not report an Ethernet capture: %s", stderr.String())
		}
	})
}

type failingWriter struct{ after int }

func (w *failingWriter) Write(b []byte) (int, error) {
	if w.after == 0 {
		return 0, io.ErrClosedPipe
	}
	w.after--
	return len(b), nil
}

func TestCaptureErrors(t *testing.T) {
	s := newSwitch(t)
	a, b := newVM(t, s, "a", 1), newVM(t, s, "b", 2)

	if err := s.Capture(&failingWriter{after: 0}); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("failed header: err = %v", err)
	}
	if err := s.StopCapture(); err != nil {
		t.Fatalf("stop with no capture: %v", err)
	}

	w := &failingWriter{after: 2} // header and one record
	if err := s.Capture(w); err != nil {
		t.Fatal(err)
	}
	if err := s.Capture(io.Discard); !errors.Is(err, ErrCaptureRunning) {
		t.Fatalf("second capture: err = %v, want ErrCaptureRunning", err)
	}
	for i := range 3 {
		f := a.numbered(b.mac, uint32(i), 64)
		a.send(f)
		b.expect(f) // a failing capture does not disturb forwarding
	}
	if err := s.Capture(nil); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("stop after a write error: err = %v, want it reported", err)
	}
	if err := s.Capture(io.Discard); err != nil {
		t.Fatalf("capture after stop: %v", err)
	}
}
