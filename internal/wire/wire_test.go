package wire

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  *Message
	}{
		{"empty", &Message{Op: OpPing, ID: 1}},
		{"meta only", mustMessage(t, OpExec, 7, Exec{Cmd: "echo hi"})},
		{"blobs", mustMessage(t, OpWriteFile, 9, WriteFile{Path: "/x"}, []byte("abc"), nil, bytes.Repeat([]byte{0}, 1000))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.msg.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.Op != tc.msg.Op || got.ID != tc.msg.ID || !bytes.Equal(got.Meta, tc.msg.Meta) || len(got.Blobs) != len(tc.msg.Blobs) {
				t.Fatalf("got %+v, want %+v", got, tc.msg)
			}
			for i := range got.Blobs {
				if !bytes.Equal(got.Blobs[i], tc.msg.Blobs[i]) {
					t.Errorf("blob %d differs", i)
				}
			}
		})
	}
}

func mustMessage(t *testing.T, op Op, id uint32, meta any, blobs ...[]byte) *Message {
	t.Helper()
	m, err := NewMessage(op, id, meta, blobs...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestUnmarshalRejectsLies(t *testing.T) {
	good, _ := mustMessage(t, OpExec, 1, Exec{Cmd: "x"}, []byte("data")).Marshal()
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"truncated", good[:len(good)-1]},
		{"trailing", append(append([]byte{}, good...), 0)},
		{"meta length past end", func() []byte { b := append([]byte{}, good...); b[6] = 0xff; b[7] = 0xff; return b }()},
		{"too many blobs", []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}},
		{"short header", []byte{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Unmarshal(tc.b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

// frame is one encoded frame.
func frame(h FrameHeader, payload []byte) []byte {
	h.Length = uint32(len(payload))
	b := make([]byte, HeaderSize+len(payload))
	h.Encode(b)
	copy(b[HeaderSize:], payload)
	return b
}

func TestFrameReaderResynchronises(t *testing.T) {
	var buf bytes.Buffer
	buf.WriteString("garbage PRVM\x00\x01 more noise")
	buf.Write(frame(FrameHeader{Epoch: 5, Channel: 2, Flags: FlagLast}, []byte("payload")))
	fr := NewFrameReader(&buf)
	h, p, err := fr.ReadFrameAppend(nil)
	if err != nil {
		t.Fatal(err)
	}
	if h.Epoch != 5 || h.Channel != 2 || string(p) != "payload" {
		t.Fatalf("got %+v %q", h, p)
	}
	if _, _, err := fr.ReadFrameAppend(nil); err != io.EOF {
		t.Fatalf("err = %v, want EOF", err)
	}
}

func TestFrameReaderRejectsOversizeFrame(t *testing.T) {
	var hdr [HeaderSize]byte
	FrameHeader{Channel: 1, Length: MaxChunk + 1}.Encode(hdr[:])
	fr := NewFrameReader(bytes.NewReader(hdr[:]))
	if _, _, err := fr.ReadFrameAppend(nil); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
}

func TestConnLargeMessageInterleaved(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ca, cb := NewConn(a, 3), NewConn(b, 3)
	big := bytes.Repeat([]byte("0123456789abcdef"), 300000) // ~4.8 MB, many frames
	errs := make(chan error, 2)
	go func() { errs <- ca.Send(5, &Message{Op: OpReadFile, ID: 1, Blobs: [][]byte{big}}) }()
	go func() { errs <- ca.Send(6, &Message{Op: OpPing, ID: 2}) }()
	got := map[uint32]*Message{}
	for len(got) < 2 {
		env, err := cb.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if env.Epoch != 3 {
			t.Fatalf("epoch %d", env.Epoch)
		}
		got[env.Channel] = env.Msg
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got[5].Blob(0), big) {
		t.Error("large blob corrupted")
	}
	if got[6].Op != OpPing {
		t.Errorf("small message: %+v", got[6])
	}
}

func TestConnBoundsPartialMessages(t *testing.T) {
	var buf bytes.Buffer
	for ch := uint32(0); ch <= MaxPending; ch++ {
		buf.Write(frame(FrameHeader{Channel: ch}, []byte("x")))
	}
	c := NewConn(struct {
		io.Reader
		io.Writer
	}{&buf, io.Discard}, 0)
	if _, err := c.Receive(); !errors.Is(err, ErrTooManyPending) {
		t.Fatalf("err = %v, want ErrTooManyPending", err)
	}
}

func TestSyscallValidate(t *testing.T) {
	buf16 := make([]byte, 16)
	for _, tc := range []struct {
		name  string
		s     Syscall
		blobs [][]byte
		ok    bool
	}{
		{"plain", Syscall{Nr: 39}, nil, true},
		{"one buffer", Syscall{Bufs: []Buf{{Arg: 1}}}, [][]byte{buf16}, true},
		{"pointer with data", Syscall{Bufs: []Buf{{Arg: 1}}, Ptrs: []Ptr{{Buf: 0, Offset: 8, Len: 5, HasData: true}}}, [][]byte{buf16, []byte("hello")}, true},
		{"argument past six", Syscall{Bufs: []Buf{{Arg: 6}}}, [][]byte{buf16}, false},
		{"negative argument", Syscall{Bufs: []Buf{{Arg: -1}}}, [][]byte{buf16}, false},
		{"two buffers for one argument", Syscall{Bufs: []Buf{{Arg: 1}, {Arg: 1}}}, [][]byte{buf16, buf16}, false},
		{"buffer without data", Syscall{Bufs: []Buf{{Arg: 0}}}, nil, false},
		{"pointer to missing buffer", Syscall{Bufs: []Buf{{Arg: 0}}, Ptrs: []Ptr{{Buf: 1, Len: 4}}}, [][]byte{buf16}, false},
		{"pointer offset outside", Syscall{Bufs: []Buf{{Arg: 0}}, Ptrs: []Ptr{{Buf: 0, Offset: 9, Len: 4}}}, [][]byte{buf16}, false},
		{"negative pointer offset", Syscall{Bufs: []Buf{{Arg: 0}}, Ptrs: []Ptr{{Buf: 0, Offset: -1, Len: 4}}}, [][]byte{buf16}, false},
		{"negative length", Syscall{Bufs: []Buf{{Arg: 0}}, Ptrs: []Ptr{{Buf: 0, Len: -4}}}, [][]byte{buf16}, false},
		{"data larger than memory", Syscall{Bufs: []Buf{{Arg: 0}}, Ptrs: []Ptr{{Buf: 0, Len: 2, HasData: true}}}, [][]byte{buf16, []byte("abc")}, false},
		{"offset overflow", Syscall{Bufs: []Buf{{Arg: 0}}, Ptrs: []Ptr{{Buf: 0, Offset: int(^uint(0) >> 1), Len: 4}}}, [][]byte{buf16}, false},
		{"lengths that wrap", Syscall{Bufs: []Buf{{Arg: 0}}, Ptrs: []Ptr{{Buf: 0, Len: int(^uint(0) >> 1)}, {Buf: 0, Len: int(^uint(0) >> 1)}}}, [][]byte{buf16}, false},
		{"extra blob", Syscall{}, [][]byte{buf16}, false},
		{"too much memory", Syscall{Bufs: []Buf{{Arg: 0}}, Ptrs: []Ptr{{Buf: 0, Len: MaxSyscallMemory + 1}}}, [][]byte{buf16}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Validate(tc.blobs)
			if tc.ok && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrBadRequest) {
				t.Fatalf("err = %v, want ErrBadRequest", err)
			}
		})
	}
}

func TestCRC32CMatchesTheStandardLibrary(t *testing.T) {
	table := crc32.MakeTable(crc32.Castagnoli)
	for _, s := range []string{"", "a", "123456789", "PRVM header bytes!!!"} {
		if got, want := crc32c([]byte(s)), crc32.Checksum([]byte(s), table); got != want {
			t.Errorf("crc32c(%q) = %#x, want %#x", s, got, want)
		}
	}
}
