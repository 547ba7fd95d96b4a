// Package wire is the protocol between the provium host and the guest agent.
// It is the only package the two sides share.
//
// The byte stream (a virtio-serial port or a vsock connection) carries
// frames. A frame belongs to a channel (one agent identity: the VM itself or a
// worker) and to a session epoch. Frames of one channel reassemble into a
// Message; frames of different channels may interleave, so a large transfer on
// one channel never holds up another.
//
// Every frame header starts with a magic number and ends with a CRC of the
// header, so a reader that joins a stream in the middle (a guest resumed from
// a snapshot, with old bytes still queued) skips to the next real header. A
// host starts a session by sending a Hello carrying a fresh epoch; frames of
// any other epoch are dropped, so bytes of an earlier session never confuse a
// new one.
//
// The guest is untrusted: every length read from the stream is bounded
// (MaxChunk, MaxMessage, MaxBlobs, MaxPending) before anything is allocated.
package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Version is the protocol version both sides announce in the handshake.
const Version = 1

const (
	// Magic opens every frame header ("PRVM" little-endian).
	Magic uint32 = 0x4d565250
	// HeaderSize is the size of a frame header in bytes.
	HeaderSize = 24
	// MaxChunk bounds the payload of one frame.
	MaxChunk = 64 << 10
	// MaxMessage bounds a reassembled message.
	MaxMessage = 256 << 20
	// MaxBlobs bounds the number of binary payloads in one message.
	MaxBlobs = 64
	// MaxPending bounds how many channels may hold a partly received message.
	MaxPending = 1024
)

// Frame flags.
const (
	// FlagLast marks the last frame of a message.
	FlagLast = 1 << 0
)

// Sentinel errors, wrapped with context where they are returned.
var (
	ErrFrameTooLarge   = errors.New("frame payload exceeds limit")
	ErrMessageTooLarge = errors.New("message exceeds limit")
	ErrMalformed       = errors.New("malformed message")
	ErrTooManyPending  = errors.New("too many channels with partial messages")
)

// FrameHeader describes one frame on the stream.
type FrameHeader struct {
	Epoch   uint32
	Channel uint32
	Length  uint32
	Flags   uint8
}

// crcTable is CRC-32C (Castagnoli), computed here rather than with
// hash/crc32: its Castagnoli set-up builds SSE4.2 tables whose cost, about
// 15 ms per process under emulation, every agent and worker start would pay
// to checksum 20-byte headers.
var crcTable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i)
		for range 8 {
			if c&1 == 1 {
				c = c>>1 ^ 0x82f63b78
			} else {
				c >>= 1
			}
		}
		t[i] = c
	}
	return t
}()

func crc32c(b []byte) uint32 {
	c := ^uint32(0)
	for _, x := range b {
		c = crcTable[byte(c)^x] ^ c>>8
	}
	return ^c
}

// Encode writes the header into the first HeaderSize bytes of b, with its
// magic number and CRC.
func (h FrameHeader) Encode(b []byte) {
	binary.LittleEndian.PutUint32(b[0:], Magic)
	binary.LittleEndian.PutUint32(b[4:], h.Epoch)
	binary.LittleEndian.PutUint32(b[8:], h.Channel)
	binary.LittleEndian.PutUint32(b[12:], h.Length)
	b[16] = h.Flags
	b[17], b[18], b[19] = 0, 0, 0
	binary.LittleEndian.PutUint32(b[20:], crc32c(b[:20]))
}

// FrameReader reads frames from a stream, resynchronising on the magic number
// after garbage.
type FrameReader struct {
	r *bufio.Reader
}

// NewFrameReader returns a reader of frames from r.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 2*MaxChunk)}
}

// ReadFrameAppend reads the next valid frame and appends its payload to
// dst, so a message's frames reassemble without an extra copy.
func (fr *FrameReader) ReadFrameAppend(dst []byte) (FrameHeader, []byte, error) {
	h, err := fr.peekHeader()
	if err != nil {
		return h, nil, err
	}
	if _, err := fr.r.Discard(HeaderSize); err != nil {
		return h, nil, err
	}
	n := len(dst)
	dst = slices.Grow(dst, int(h.Length))[:n+int(h.Length)]
	if _, err := io.ReadFull(fr.r, dst[n:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return h, nil, err
	}
	return h, dst, nil
}

// peekHeader skips to the next valid frame header and returns it without
// consuming it.
func (fr *FrameReader) peekHeader() (FrameHeader, error) {
	for {
		hdr, err := fr.r.Peek(HeaderSize)
		if err != nil {
			if len(hdr) > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return FrameHeader{}, err
		}
		if binary.LittleEndian.Uint32(hdr) != Magic ||
			binary.LittleEndian.Uint32(hdr[20:]) != crc32c(hdr[:20]) {
			fr.skip()
			continue
		}
		h := FrameHeader{
			Epoch:   binary.LittleEndian.Uint32(hdr[4:]),
			Channel: binary.LittleEndian.Uint32(hdr[8:]),
			Length:  binary.LittleEndian.Uint32(hdr[12:]),
			Flags:   hdr[16],
		}
		if h.Length > MaxChunk {
			// A valid CRC with a bad length is a peer that breaks the
			// protocol, not line noise.
			return h, fmt.Errorf("frame on channel %d announces %d bytes: %w", h.Channel, h.Length, ErrFrameTooLarge)
		}
		return h, nil
	}
}

// skip discards bytes up to the next possible start of a magic number.
func (fr *FrameReader) skip() {
	buf, _ := fr.r.Peek(fr.r.Buffered())
	n := 1
	for n < len(buf) && buf[n] != byte(Magic&0xff) {
		n++
	}
	fr.r.Discard(n)
}
