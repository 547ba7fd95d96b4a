// Package qmp is a small client for the QEMU Machine Protocol: JSON objects,
// one per line, over a unix socket. It does what Provium needs and no more:
// the greeting and capabilities negotiation, commands with ids (so replies
// are matched even with events in between), commands that carry a file
// descriptor (SCM_RIGHTS, for getfd), and asynchronous events delivered to
// subscribers.
package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrClosed means the connection to QEMU is gone: QEMU exited, or Close
// was called.
var ErrClosed = errors.New("qmp: connection closed")

// maxLine bounds one QMP message; QEMU's replies are small, and a longer
// line means the stream is not QMP.
const maxLine = 16 << 20

// Error is an error reply from QEMU.
type Error struct {
	Command string
	Class   string
	Desc    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("qmp %s: %s (%s)", e.Command, e.Desc, e.Class)
}

// Event is an asynchronous QMP event.
type Event struct {
	Name string          `json:"event"`
	Data json.RawMessage `json:"data"`
	Time time.Time       `json:"-"`
}

// Version is QEMU's version from the greeting.
type Version struct {
	Major, Minor, Micro int
	Package             string
}

func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d%s", v.Major, v.Minor, v.Micro, v.Package)
}

// message is any message QEMU sends.
type message struct {
	QMP *struct {
		Version struct {
			QEMU struct {
				Major int `json:"major"`
				Minor int `json:"minor"`
				Micro int `json:"micro"`
			} `json:"qemu"`
			Package string `json:"package"`
		} `json:"version"`
	} `json:"QMP"`
	ID     json.RawMessage `json:"id"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Timestamp *struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
}

type reply struct {
	ret json.RawMessage
	err *Error
}

// Client is a QMP connection. Its methods are safe for concurrent use.
type Client struct {
	conn    *net.UnixConn
	Version Version

	wmu sync.Mutex // one message on the wire at a time

	mu      sync.Mutex
	nextID  uint64
	pending map[string]chan reply
	subs    map[chan Event]struct{}
	err     error // why the connection ended
	done    chan struct{}
}

// Connect takes over conn, reads QEMU's greeting and enters command mode.
// ctx bounds the handshake only.
func Connect(ctx context.Context, conn *net.UnixConn) (*Client, error) {
	c := &Client{
		conn:    conn,
		pending: map[string]chan reply{},
		subs:    map[chan Event]struct{}{},
		done:    make(chan struct{}),
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	// The greeting comes before the reader goroutine exists: the end of
	// ctx interrupts the read through the socket's deadline, which is
	// cleared before handing over.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	line, err := readLine(r)
	stop()
	conn.SetReadDeadline(time.Time{})
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("qmp: read greeting: %w", err)
	}
	var g message
	if err := json.Unmarshal(line, &g); err != nil || g.QMP == nil {
		conn.Close()
		return nil, fmt.Errorf("qmp: not a QMP greeting: %.200q", line)
	}
	q := g.QMP.Version
	c.Version = Version{q.QEMU.Major, q.QEMU.Minor, q.QEMU.Micro, q.Package}
	go c.read(r)
	if _, err := c.Execute(ctx, "qmp_capabilities", nil); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxLine {
			return nil, fmt.Errorf("qmp: message longer than %d bytes", maxLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return line, err
	}
}

// read dispatches replies and events until the connection ends.
func (c *Client) read(r *bufio.Reader) {
	var err error
	for {
		var line []byte
		line, err = readLine(r)
		if err != nil {
			break
		}
		var m message
		if jerr := json.Unmarshal(line, &m); jerr != nil {
			err = fmt.Errorf("qmp: bad message %.200q: %w", line, jerr)
			break
		}
		switch {
		case m.Event != "":
			ev := Event{Name: m.Event, Data: m.Data}
			if ts := m.Timestamp; ts != nil {
				ev.Time = time.Unix(ts.Seconds, ts.Microseconds*1000)
			}
			c.publish(ev)
		case m.ID != nil:
			var id string
			if json.Unmarshal(m.ID, &id) != nil {
				continue // not one of ours
			}
			rep := reply{ret: m.Return}
			if m.Error != nil {
				rep.err = &Error{Class: m.Error.Class, Desc: m.Error.Desc}
			}
			c.mu.Lock()
			ch := c.pending[id]
			delete(c.pending, id)
			c.mu.Unlock()
			if ch != nil {
				ch <- rep
			}
		}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		err = ErrClosed
	} else {
		err = fmt.Errorf("%w: %v", ErrClosed, err)
	}
	c.mu.Lock()
	c.err = err
	for ch := range c.subs {
		close(ch)
	}
	c.subs = nil
	c.mu.Unlock()
	close(c.done)
}

func (c *Client) publish(ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ch := range c.subs {
		select {
		case ch <- ev:
		default:
			// A subscriber that does not keep up loses events rather
			// than stalling every command; callers that must not miss
			// a state change also poll.
		}
	}
}

// Subscribe returns a channel of the events that arrive from now on, and a
// function that ends the subscription. The channel is closed when the
// connection ends or the subscription is cancelled.
func (c *Client) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, 64)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subs == nil {
		close(ch)
		return ch, func() {}
	}
	c.subs[ch] = struct{}{}
	return ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.subs[ch]; ok {
			delete(c.subs, ch)
			close(ch)
		}
	}
}

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Execute runs a command and returns its "return" value. args may be nil.
func (c *Client) Execute(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	return c.execute(ctx, cmd, args, nil)
}

// ExecuteWithFile runs a command with f's descriptor attached to the
// message (SCM_RIGHTS), as getfd and add-fd expect.
func (c *Client) ExecuteWithFile(ctx context.Context, cmd string, args any, f *os.File) (json.RawMessage, error) {
	return c.execute(ctx, cmd, args, f)
}

func (c *Client) execute(ctx context.Context, cmd string, args any, f *os.File) (json.RawMessage, error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("qmp %s: %w", cmd, c.err)
	}
	c.nextID++
	id := strconv.FormatUint(c.nextID, 10)
	ch := make(chan reply, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}

	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        string `json:"id"`
	}{cmd, args, id}
	b, err := json.Marshal(req)
	if err != nil {
		forget()
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	b = append(b, '\n')
	if err := c.write(b, f); err != nil {
		forget()
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	select {
	case rep := <-ch:
		if rep.err != nil {
			rep.err.Command = cmd
			return nil, rep.err
		}
		return rep.ret, nil
	case <-c.done:
		forget()
		// The reply may have raced the end of the connection.
		select {
		case rep := <-ch:
			if rep.err != nil {
				rep.err.Command = cmd
				return nil, rep.err
			}
			return rep.ret, nil
		default:
		}
		return nil, fmt.Errorf("qmp %s: %w", cmd, c.err)
	case <-ctx.Done():
		forget()
		return nil, fmt.Errorf("qmp %s: %w", cmd, ctx.Err())
	}
}

func (c *Client) write(b []byte, f *os.File) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if f == nil {
		_, err := c.conn.Write(b)
		return err
	}
	// The descriptor travels with the first bytes of the command, which
	// is where QEMU looks for it.
	n, _, err := c.conn.WriteMsgUnix(b, unix.UnixRights(int(f.Fd())), nil)
	runtime.KeepAlive(f)
	if err != nil {
		return err
	}
	if n < len(b) {
		_, err = c.conn.Write(b[n:])
	}
	return err
}

// Close ends the connection.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}
