package guestinit

import (
	"os"
	"strconv"
	"strings"

	"github.com/provium/provium/internal/agent"
)

// Config is what init reads from the kernel command line. The kernel
// keeps parameters with a dot to itself (it takes them for module
// parameters), so they reach init only through /proc/cmdline.
type Config struct {
	Init      string // provium.init=: the real init; default /sbin/init
	Transport string // provium.transport=: virtio-serial (default) or vsock
	Port      string // provium.port=: the virtio-serial port's name
	VsockPort string // provium.vsock_port=: the vsock port to listen on
	Root      string // provium.root=: a block device to switch to as /, read-only
}

const defaultInit = "/sbin/init"

func defaults() Config {
	return Config{
		Init:      defaultInit,
		Transport: "virtio-serial",
		Port:      agent.DefaultPort,
		VsockPort: strconv.Itoa(agent.DefaultVsockPort),
	}
}

func readConfig(path string) Config {
	b, err := os.ReadFile(path)
	if err != nil {
		logf("kernel command line: %v; using defaults", err)
		return defaults()
	}
	return parseCmdline(string(b))
}

// parseCmdline reads provium's parameters from a kernel command line. A
// value that makes no sense is reported and the default kept.
func parseCmdline(s string) Config {
	c := defaults()
	for _, arg := range splitCmdline(s) {
		if arg == "--" {
			break // the rest is init's arguments
		}
		key, val, ok := strings.Cut(arg, "=")
		if !ok {
			continue
		}
		switch key {
		case "provium.init":
			if val != "" {
				c.Init = val
			}
		case "provium.transport":
			if val == "virtio-serial" || val == "vsock" {
				c.Transport = val
			} else {
				logf("provium.transport=%q: want virtio-serial or vsock", val)
			}
		case "provium.root":
			c.Root = val
		case "provium.port":
			if val != "" {
				c.Port = val
			}
		case "provium.vsock_port":
			if _, err := strconv.ParseUint(val, 10, 32); err == nil {
				c.VsockPort = val
			} else {
				logf("provium.vsock_port=%q: not a port number", val)
			}
		}
	}
	return c
}

// splitCmdline splits a command line into parameters as the kernel does:
// at spaces outside double quotes, the quotes themselves dropped
// (param="a b" is the parameter param=a b).
func splitCmdline(s string) []string {
	var (
		args    []string
		cur     strings.Builder
		inQuote bool
		started bool
	)
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			started = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if started {
				args = append(args, cur.String())
				cur.Reset()
				started = false
			}
		default:
			cur.WriteRune(r)
			started = true
		}
	}
	if started {
		args = append(args, cur.String())
	}
	return args
}
