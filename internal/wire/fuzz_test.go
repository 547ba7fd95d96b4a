package wire

import (
	"bytes"
	"io"
	"testing"
)

func FuzzReceive(f *testing.F) {
	var buf bytes.Buffer
	c := NewConn(struct {
		io.Reader
		io.Writer
	}{nil, &buf}, 7)
	m, _ := NewMessage(OpExec, 1, Exec{Cmd: "true"}, []byte("in"))
	c.Send(1, m)
	big, _ := NewMessage(OpReadFile, 2, nil, bytes.Repeat([]byte("x"), SendChunk+10))
	c.Send(3, big)
	f.Add(buf.Bytes())
	f.Add([]byte("PRVM"))
	f.Add(append([]byte("garbage before a frame"), buf.Bytes()...))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := NewConn(struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(data), io.Discard}, 0)
		for range 100 {
			env, err := c.Receive()
			if err != nil {
				return
			}
			if env.Msg.Size() > MaxMessage || len(env.Msg.Blobs) > MaxBlobs {
				t.Fatalf("a message past the bounds got through: %d bytes, %d blobs", env.Msg.Size(), len(env.Msg.Blobs))
			}
		}
	})
}

func FuzzUnmarshal(f *testing.F) {
	for _, m := range []*Message{
		{Op: OpPing, ID: 1},
		{Op: OpExec, ID: 2, Meta: []byte(`{"cmd":"true"}`), Blobs: [][]byte{[]byte("stdin")}},
		{Op: OpSyscall, ID: 3, Meta: []byte(`{"nr":39}`), Blobs: [][]byte{nil, []byte("a"), make([]byte, 100)}},
	} {
		b, _ := m.Marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Unmarshal(data)
		if err != nil {
			return
		}
		// What decodes encodes back to the same bytes.
		b, err := m.Marshal()
		if err != nil {
			t.Fatalf("a decoded message does not encode: %v", err)
		}
		if !bytes.Equal(b, data) {
			t.Fatalf("round trip changed the bytes:\n%x\n%x", data, b)
		}
	})
}
