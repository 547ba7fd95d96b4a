package wire

import (
	"errors"
	"fmt"
)

// MaxSyscallMemory bounds the guest memory one Syscall may ask for.
const MaxSyscallMemory = 64 << 20

// ErrBadRequest means a request that cannot be carried out as given: the
// caller's mistake, not the peer's.
var ErrBadRequest = errors.New("invalid request")

// Validate checks a Syscall against the blobs that come with it. It is the
// one definition of a valid request: the host runs it before sending (a
// test's malformed request is its own error, never sent) and the agent
// before touching memory. Buffers are named by the argument they are
// passed as, pointers by their place in Ptrs, from 1, as users write them.
func (s *Syscall) Validate(blobs [][]byte) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf(format+": %w", append(args, ErrBadRequest)...)
	}
	if len(blobs) > MaxBlobs {
		return bad("%d buffers and pointer contents exceed the %d a call can carry", len(blobs), MaxBlobs)
	}
	if len(s.Bufs) > MaxArgs {
		return bad("%d buffers for %d arguments", len(s.Bufs), MaxArgs)
	}
	seen := map[int]bool{}
	total := 0
	for i, b := range s.Bufs {
		if b.Arg < 0 || b.Arg >= MaxArgs {
			return bad("a buffer for argument %d, outside 0..%d", b.Arg, MaxArgs-1)
		}
		if seen[b.Arg] {
			return bad("argument %d has two buffers", b.Arg)
		}
		seen[b.Arg] = true
		if i >= len(blobs) {
			return bad("the buffer of argument %d has no data", b.Arg)
		}
		total += len(blobs[i])
	}
	withData := 0
	for k, p := range s.Ptrs {
		n := k + 1
		if p.Buf < 0 || p.Buf >= len(s.Bufs) {
			return bad("pointer %d is for buffer %d of %d", n, p.Buf, len(s.Bufs))
		}
		arg, size := s.Bufs[p.Buf].Arg, len(blobs[p.Buf])
		if p.Offset < 0 || p.Offset > size-8 {
			return bad("pointer %d: offset %d does not leave 8 bytes for it inside the %d-byte buffer of argument %d", n, p.Offset, size, arg)
		}
		if p.Len < 0 || p.Len > MaxSyscallMemory-total {
			return bad("pointer %d: length %d is outside 0..%d bytes", n, p.Len, max(MaxSyscallMemory-total, 0))
		}
		if p.HasData {
			idx := len(s.Bufs) + withData
			withData++
			if idx >= len(blobs) {
				return bad("pointer %d has no data", n)
			}
			if len(blobs[idx]) > p.Len {
				return bad("pointer %d: %d bytes of data do not fit in its %d bytes", n, len(blobs[idx]), p.Len)
			}
		}
		total += p.Len
	}
	if len(blobs) != len(s.Bufs)+withData {
		return bad("%d blobs for %d buffers and %d pointer contents", len(blobs), len(s.Bufs), withData)
	}
	if total > MaxSyscallMemory {
		return bad("%d bytes of buffers exceed %d", total, MaxSyscallMemory)
	}
	return nil
}

// Reply builds the success reply to request id.
func Reply(id uint32, meta any, blobs ...[]byte) (*Message, error) {
	return NewMessage(OpReply, id, meta, blobs...)
}

// ErrorReply builds the failure reply to request id.
func ErrorReply(id uint32, e *Error) *Message {
	m, err := NewMessage(OpError, id, e)
	if err != nil {
		// An Error always encodes; keep the reply well-formed regardless.
		return &Message{Op: OpError, ID: id}
	}
	return m
}
