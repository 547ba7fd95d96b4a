package netswitch

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"time"
)

// pcap constants (the classic libpcap format, microsecond timestamps).
const (
	pcapMagic      = 0xa1b2c3d4
	pcapHeaderSize = 24
	pcapRecordSize = 16
	linkTypeEther  = 1
)

// capture writes pcap records to one writer. Records are written whole,
// one Write each, under mu, so their timestamps never go backwards.
type capture struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
	err error // first write error; the capture writes nothing after it
}

// Capture starts writing every frame that enters the switch to w as a pcap
// stream (LINKTYPE_ETHERNET, microsecond timestamps, snap length MaxFrame).
// The global header is written at once.
//
// It records what a tap on each VM's wire would see: every frame a VM
// sends, as it arrives, before the switch decides its fate, so frames later
// dropped by a partition, loss or a full queue are in the capture, and so
// are malformed ones (cut to MaxFrame, with their real length). A frame
// flooded to several ports appears once. Stats tells what was dropped.
//
// If w returns an error, the capture stops there and StopCapture reports
// it. Capture(nil) ends the capture, like StopCapture. Writes happen on the
// switch's goroutines, so a slow w slows the network; wrap a file in a
// bufio.Writer and flush it after StopCapture.
func (s *Switch) Capture(w io.Writer) error {
	if w == nil {
		return s.StopCapture()
	}
	c := &capture{w: w, buf: make([]byte, pcapRecordSize+MaxFrame)}
	hdr := c.buf[:pcapHeaderSize]
	binary.LittleEndian.PutUint32(hdr[0:], pcapMagic)
	binary.LittleEndian.PutUint16(hdr[4:], 2) // version 2.4
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[8:], 0)  // thiszone: UTC
	binary.LittleEndian.PutUint32(hdr[12:], 0) // sigfigs
	binary.LittleEndian.PutUint32(hdr[16:], MaxFrame)
	binary.LittleEndian.PutUint32(hdr[20:], linkTypeEther)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("netswitch %s: capture: %w", s.name, ErrClosed)
	}
	if s.capture.Load() != nil {
		return fmt.Errorf("netswitch %s: capture: %w", s.name, ErrCaptureRunning)
	}
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("netswitch %s: write pcap header: %w", s.name, err)
	}
	s.capture.Store(c)
	return nil
}

// StopCapture ends the capture, if any, and returns the first error its
// writer returned. Once it returns, nothing more is written to the writer.
func (s *Switch) StopCapture() error {
	s.mu.Lock()
	c := s.capture.Swap(nil)
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	// Wait for a record being written, and stop any that loaded c before
	// the swap.
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.err
	c.w, c.err = nil, nil
	if err != nil {
		return fmt.Errorf("netswitch %s: capture: %w", s.name, err)
	}
	return nil
}

// record writes one frame of origLen bytes, of which data is the captured
// part. The timestamp is taken under mu, so records from different ports
// are in time order.
func (c *capture) record(data []byte, origLen int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w == nil || c.err != nil {
		return
	}
	us := time.Now().UnixMicro()
	b := c.buf[:pcapRecordSize+len(data)]
	binary.LittleEndian.PutUint32(b[0:], uint32(us/1e6))
	binary.LittleEndian.PutUint32(b[4:], uint32(us%1e6))
	binary.LittleEndian.PutUint32(b[8:], uint32(len(data)))
	binary.LittleEndian.PutUint32(b[12:], uint32(origLen))
	copy(b[pcapRecordSize:], data)
	if _, err := c.w.Write(b); err != nil {
		c.err = fmt.Errorf("write pcap record: %w", err)
	}
}
