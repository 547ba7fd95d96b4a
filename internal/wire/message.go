package wire

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// Message is one request or reply. Meta carries the op's parameters as JSON
// (small, readable in traces); Blobs carry binary payloads unencoded, so a
// 20 MiB file costs 20 MiB on the wire.
type Message struct {
	Op    Op
	ID    uint32 // request id, echoed by the reply
	Meta  []byte
	Blobs [][]byte
}

// NewMessage returns a message whose Meta is meta encoded as JSON.
// A nil meta leaves Meta empty.
func NewMessage(op Op, id uint32, meta any, blobs ...[]byte) (*Message, error) {
	m := &Message{Op: op, ID: id, Blobs: blobs}
	if meta != nil {
		b, err := json.Marshal(meta)
		if err != nil {
			return nil, fmt.Errorf("encode %v meta: %w", op, err)
		}
		m.Meta = b
	}
	return m, nil
}

// Decode unmarshals the message's Meta into v.
func (m *Message) Decode(v any) error {
	if len(m.Meta) == 0 {
		return nil
	}
	if err := json.Unmarshal(m.Meta, v); err != nil {
		return fmt.Errorf("decode %v meta: %w: %v", m.Op, ErrMalformed, err)
	}
	return nil
}

// Blob returns blob i, or nil when the message has fewer blobs.
func (m *Message) Blob(i int) []byte {
	if i < 0 || i >= len(m.Blobs) {
		return nil
	}
	return m.Blobs[i]
}

// Size is the encoded size of the message.
func (m *Message) Size() int {
	n := 2 + 4 + 4 + len(m.Meta) + 2
	for _, b := range m.Blobs {
		n += 4 + len(b)
	}
	return n
}

// Marshal encodes the message:
//
//	op u16 | id u32 | metaLen u32 | meta | nblobs u16 | (len u32 | bytes)*
func (m *Message) Marshal() ([]byte, error) {
	segs, total, err := m.segments()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, total)
	for _, s := range segs {
		b = append(b, s...)
	}
	return b, nil
}

// segments is the encoding as a list of slices, the blobs not copied.
func (m *Message) segments() ([][]byte, int, error) {
	if len(m.Blobs) > MaxBlobs {
		return nil, 0, fmt.Errorf("%v has %d blobs: %w", m.Op, len(m.Blobs), ErrMessageTooLarge)
	}
	size := m.Size()
	if size > MaxMessage {
		return nil, 0, fmt.Errorf("%v is %d bytes: %w", m.Op, size, ErrMessageTooLarge)
	}
	head := make([]byte, 0, 12+len(m.Meta)+4*len(m.Blobs))
	head = binary.LittleEndian.AppendUint16(head, uint16(m.Op))
	head = binary.LittleEndian.AppendUint32(head, m.ID)
	head = binary.LittleEndian.AppendUint32(head, uint32(len(m.Meta)))
	head = append(head, m.Meta...)
	head = binary.LittleEndian.AppendUint16(head, uint16(len(m.Blobs)))
	segs := make([][]byte, 0, 1+2*len(m.Blobs))
	cut := len(head)
	for _, blob := range m.Blobs {
		head = binary.LittleEndian.AppendUint32(head, uint32(len(blob)))
	}
	segs = append(segs, head[:cut])
	for i, blob := range m.Blobs {
		segs = append(segs, head[cut+4*i:cut+4*i+4])
		if len(blob) > 0 {
			segs = append(segs, blob)
		}
	}
	return segs, size, nil
}

// Unmarshal decodes a message produced by Marshal. Blobs alias b.
func Unmarshal(b []byte) (*Message, error) {
	d := decoder{b: b}
	m := &Message{}
	m.Op = Op(d.u16())
	m.ID = d.u32()
	m.Meta = d.bytes(d.u32())
	n := int(d.u16())
	if n > MaxBlobs {
		return nil, fmt.Errorf("message with %d blobs: %w", n, ErrMalformed)
	}
	for i := 0; i < n && d.err == nil; i++ {
		m.Blobs = append(m.Blobs, d.bytes(d.u32()))
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%d trailing bytes after %v: %w", len(d.b), m.Op, ErrMalformed)
	}
	return m, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("need %d bytes, have %d: %w", n, len(d.b), ErrMalformed)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u16() uint16 {
	if v := d.take(2); v != nil {
		return binary.LittleEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) bytes(n uint32) []byte { return d.take(uint64(n)) }
