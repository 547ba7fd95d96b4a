package agent

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire"
)

// errorReply turns err into the OpError reply to request id. When a system
// call failed, its errno travels with the message and the message ends with
// the errno's name, e.g. "read_file /x: open /x: no such file or directory
// (ENOENT)", so both programs and people can tell what happened.
func errorReply(id uint32, err error) *wire.Message {
	e := &wire.Error{Message: err.Error()}
	var errno unix.Errno
	if errors.As(err, &errno) && errno != 0 {
		e.Errno = int(errno)
		e.ErrnoName = unix.ErrnoName(errno)
		if e.ErrnoName != "" {
			e.Message += " (" + e.ErrnoName + ")"
		}
	}
	return wire.ErrorReply(id, e)
}
