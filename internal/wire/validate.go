package wire

import "fmt"

// MaxSyscallMemory bounds the guest memory one Syscall may ask for.
const MaxSyscallMemory = 64 << 20

// Validate checks a Syscall against the blobs that come with it, so that
// both the host (before sending) and the agent (before touching memory)
// reject the same malformed requests with the same words.
func (s *Syscall) Validate(blobs [][]byte) error {
	if len(s.Bufs) > MaxArgs {
		return fmt.Errorf("%d buffers for %d arguments: %w", len(s.Bufs), MaxArgs, ErrMalformed)
	}
	seen := map[int]bool{}
	total := 0
	for i, b := range s.Bufs {
		if b.Arg < 0 || b.Arg >= MaxArgs {
			return fmt.Errorf("buffer %d: argument index %d is outside 0..%d: %w", i, b.Arg, MaxArgs-1, ErrMalformed)
		}
		if seen[b.Arg] {
			return fmt.Errorf("buffer %d: argument %d already has a buffer: %w", i, b.Arg, ErrMalformed)
		}
		seen[b.Arg] = true
		if i >= len(blobs) {
			return fmt.Errorf("buffer %d has no data: %w", i, ErrMalformed)
		}
		total += len(blobs[i])
	}
	withData := 0
	for k, p := range s.Ptrs {
		if p.Buf < 0 || p.Buf >= len(s.Bufs) {
			return fmt.Errorf("pointer %d refers to buffer %d, but there are %d buffers: %w", k+1, p.Buf, len(s.Bufs), ErrMalformed)
		}
		size := len(blobs[p.Buf])
		if p.Offset < 0 || p.Offset > size-8 {
			return fmt.Errorf("pointer %d: offset %d does not leave 8 bytes inside buffer %d of %d bytes: %w", k+1, p.Offset, p.Buf, size, ErrMalformed)
		}
		if p.Len < 0 {
			return fmt.Errorf("pointer %d: negative length %d: %w", k+1, p.Len, ErrMalformed)
		}
		if p.Len > MaxSyscallMemory-total {
			return fmt.Errorf("pointer %d: %d bytes of memory exceed the %d-byte limit: %w", k+1, p.Len, MaxSyscallMemory, ErrMalformed)
		}
		if p.HasData {
			idx := len(s.Bufs) + withData
			withData++
			if idx >= len(blobs) {
				return fmt.Errorf("pointer %d has no data: %w", k+1, ErrMalformed)
			}
			if len(blobs[idx]) > p.Len {
				return fmt.Errorf("pointer %d: %d bytes of data for %d bytes of memory: %w", k+1, len(blobs[idx]), p.Len, ErrMalformed)
			}
		}
		total += p.Len
	}
	if len(blobs) != len(s.Bufs)+withData {
		return fmt.Errorf("%d blobs for %d buffers and %d pointer contents: %w", len(blobs), len(s.Bufs), withData, ErrMalformed)
	}
	if total > MaxSyscallMemory {
		return fmt.Errorf("%d bytes of buffers exceed %d: %w", total, MaxSyscallMemory, ErrMalformed)
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
