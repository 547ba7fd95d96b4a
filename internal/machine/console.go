package machine

import (
	"bytes"
	"io"
	"sync"
)

// consoleLines is how many console lines a VM keeps for error messages.
const consoleLines = 200

// console collects a VM's serial output: every complete line goes to the
// file's log and into a ring of the last lines for error messages.
type console struct {
	mu      sync.Mutex
	log     io.Writer
	prefix  string
	onLine  func(string) // each complete line, also, if set
	partial []byte
	ring    []string
	next    int
	full    bool
}

func newConsole(log io.Writer, prefix string) *console {
	return &console{log: log, prefix: prefix, ring: make([]string, consoleLines)}
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partial = append(c.partial, p...)
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		c.line(string(bytes.TrimRight(c.partial[:i], "\r")))
		c.partial = c.partial[i+1:]
	}
	// A guest that never sends a newline must not grow memory forever.
	if len(c.partial) > 4096 {
		c.line(string(c.partial))
		c.partial = c.partial[:0]
	}
	return len(p), nil
}

func (c *console) line(s string) {
	if c.onLine != nil {
		c.onLine(s)
	}
	c.ring[c.next] = s
	c.next = (c.next + 1) % len(c.ring)
	if c.next == 0 {
		c.full = true
	}
	if c.log != nil {
		io.WriteString(c.log, c.prefix+s+"\n")
	}
}

// Tail returns the last n lines, oldest first, including an unterminated
// last line.
func (c *console) Tail(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var all []string
	if c.full {
		all = append(all, c.ring[c.next:]...)
	}
	all = append(all, c.ring[:c.next]...)
	if len(c.partial) > 0 {
		all = append(all, string(c.partial))
	}
	if n < len(all) {
		all = all[len(all)-n:]
	}
	return all
}

// Empty reports whether the guest has printed nothing at all.
func (c *console) Empty() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.full && c.next == 0 && len(c.partial) == 0
}
