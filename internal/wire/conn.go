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

// SetEpoch starts a new session: outgoing frames carry epoch and partial
// messages of the old session are dropped. Call it from the receiving
// goroutine.
func (c *Conn) SetEpoch(epoch uint32) {
	c.epoch.Store(epoch)
	c.pending = map[uint32][]byte{}
	c.total = 0
}

// Send writes m on channel ch, split into frames of at most MaxChunk bytes.
// Frames of concurrent sends interleave at frame boundaries.
func (c *Conn) Send(ch uint32, m *Message) error {
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	for {
		n := min(len(b), MaxChunk)
		h := FrameHeader{Epoch: c.epoch.Load(), Channel: ch}
		if n == len(b) {
			h.Flags = FlagLast
		}
		c.wmu.Lock()
		err := WriteFrame(c.w, h, b[:n])
		c.wmu.Unlock()
		if err != nil {
			return fmt.Errorf("send %v on channel %d: %w", m.Op, ch, err)
		}
		b = b[n:]
		if len(b) == 0 {
			return nil
		}
	}
}

// Receive returns the next complete message of any epoch; callers decide
// what to do with foreign epochs. A message that breaks a bound or does not
// decode is an error: the peer is broken and the stream cannot be trusted.
func (c *Conn) Receive() (Envelope, error) {
	for {
		h, payload, err := c.fr.ReadFrame()
		if err != nil {
			return Envelope{}, err
		}
		buf, partial := c.pending[h.Channel]
		if !partial && len(c.pending) >= MaxPending {
			return Envelope{}, fmt.Errorf("channel %d: %w", h.Channel, ErrTooManyPending)
		}
		if len(buf)+len(payload) > MaxMessage {
			return Envelope{}, fmt.Errorf("channel %d: message over %d bytes: %w", h.Channel, MaxMessage, ErrMessageTooLarge)
		}
		if c.total+len(payload) > 2*MaxMessage {
			return Envelope{}, fmt.Errorf("channel %d: partial messages over %d bytes: %w", h.Channel, 2*MaxMessage, ErrMessageTooLarge)
		}
		if h.Flags&FlagLast == 0 {
			c.pending[h.Channel] = append(buf, payload...)
			c.total += len(payload)
			continue
		}
		delete(c.pending, h.Channel)
		c.total -= len(buf)
		if partial {
			payload = append(buf, payload...)
		}
		m, err := Unmarshal(payload)
		if err != nil {
			return Envelope{}, fmt.Errorf("channel %d: %w", h.Channel, err)
		}
		return Envelope{Epoch: h.Epoch, Channel: h.Channel, Msg: m}, nil
	}
}
