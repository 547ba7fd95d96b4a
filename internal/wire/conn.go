package wire

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// Envelope is a reassembled message with the frame fields it arrived in.
type Envelope struct {
	Epoch   uint32
	Channel uint32
	Msg     *Message
}

// Conn sends and receives messages over one byte stream. Send may be called
// from many goroutines; Receive from one.
type Conn struct {
	w     io.Writer
	wmu   sync.Mutex
	fr    *FrameReader
	epoch atomic.Uint32

	pending map[uint32][]byte // channel -> partial message
	total   int               // bytes held in pending
}

// NewConn returns a connection over rw whose outgoing frames carry epoch.
func NewConn(rw io.ReadWriter, epoch uint32) *Conn {
	c := &Conn{w: rw, fr: NewFrameReader(rw), pending: map[uint32][]byte{}}
	c.epoch.Store(epoch)
	return c
}

// Epoch is the epoch stamped on outgoing frames.
func (c *Conn) Epoch() uint32 { return c.epoch.Load() }

// UseEpoch stamps outgoing frames with epoch from now on. It is safe to
// call from any goroutine.
func (c *Conn) UseEpoch(epoch uint32) { c.epoch.Store(epoch) }

// SetEpoch starts a new session: outgoing frames carry epoch and partial
// messages of the old session are dropped. Call it from the receiving
// goroutine.
func (c *Conn) SetEpoch(epoch uint32) {
	c.epoch.Store(epoch)
	c.pending = map[uint32][]byte{}
	c.total = 0
}

// SendChunk is the payload size Send puts in a frame. Header and payload
// together fill exactly 32 KiB, the most a virtio console port takes in one
// write, so each frame costs the guest one system call.
const SendChunk = 32<<10 - HeaderSize

// Send writes m on channel ch, split into frames of at most SendChunk
// bytes. Frames of concurrent sends interleave at frame boundaries. Blobs
// are copied once, straight into the frames.
func (c *Conn) Send(ch uint32, m *Message) error {
	segs, total, err := m.segments()
	if err != nil {
		return err
	}
	frame := make([]byte, HeaderSize+min(total, SendChunk))
	for remaining := total; ; {
		n := min(remaining, SendChunk)
		payload := frame[HeaderSize : HeaderSize+n]
		for filled := 0; filled < n; {
			k := copy(payload[filled:], segs[0])
			filled += k
			if segs[0] = segs[0][k:]; len(segs[0]) == 0 {
				segs = segs[1:]
			}
		}
		remaining -= n
		h := FrameHeader{Epoch: c.epoch.Load(), Channel: ch, Length: uint32(n)}
		if remaining == 0 {
			h.Flags = FlagLast
		}
		h.Encode(frame)
		c.wmu.Lock()
		_, err := c.w.Write(frame[:HeaderSize+n])
		c.wmu.Unlock()
		if err != nil {
			return fmt.Errorf("send %v on channel %d: %w", m.Op, ch, err)
		}
		if remaining == 0 {
			return nil
		}
	}
}

// Receive returns the next complete message of any epoch; callers decide
// what to do with foreign epochs. A message that breaks a bound or does not
// decode is an error: the peer is broken and the stream cannot be trusted.
func (c *Conn) Receive() (Envelope, error) {
	for {
		h, err := c.fr.peekHeader()
		if err != nil {
			return Envelope{}, err
		}
		buf, partial := c.pending[h.Channel]
		if !partial && len(c.pending) >= MaxPending {
			return Envelope{}, fmt.Errorf("channel %d: %w", h.Channel, ErrTooManyPending)
		}
		if len(buf)+int(h.Length) > MaxMessage {
			return Envelope{}, fmt.Errorf("channel %d: message over %d bytes: %w", h.Channel, MaxMessage, ErrMessageTooLarge)
		}
		if c.total+int(h.Length) > 2*MaxMessage {
			return Envelope{}, fmt.Errorf("channel %d: partial messages over %d bytes: %w", h.Channel, 2*MaxMessage, ErrMessageTooLarge)
		}
		h, payload, err := c.fr.ReadFrameAppend(buf)
		if err != nil {
			return Envelope{}, err
		}
		c.total += len(payload) - len(buf)
		if h.Flags&FlagLast == 0 {
			c.pending[h.Channel] = payload
			continue
		}
		delete(c.pending, h.Channel)
		c.total -= len(payload)
		m, err := Unmarshal(payload)
		if err != nil {
			return Envelope{}, fmt.Errorf("channel %d: %w", h.Channel, err)
		}
		return Envelope{Epoch: h.Epoch, Channel: h.Channel, Msg: m}, nil
	}
}
