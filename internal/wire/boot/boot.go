// Package boot is the contract between the host and the guest at boot:
// where the shim puts things in the guest's initramfs, the names the one
// provium binary runs under, and the kernel parameters through which the
// host tells the guest's init and agent what to do.
//
// The host writes the parameters with Params.Args; the guest reads them
// back with Parse. Both sides import this package, so no name or value of
// the contract is written down twice.
//
// The guest reads the kernel command line, which the host wrote; on the
// guest side it is trusted as much as the kernel is, but a value that makes
// no sense is reported and the default kept rather than acted on.
package boot

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Paths of the shim in the guest's initramfs.
const (
	ShimDir     = "/provium"
	InitPath    = "/provium/init"          // the kernel runs it as PID 1 (rdinit=)
	ModulesDir  = "/provium/modules"       // kernel modules the transport needs
	ModulesList = "/provium/modules.order" // their paths, one a line, in load order
)

// Names the provium binary runs under: what it does depends on argv[0].
const (
	InitName   = "init"           // as InitPath: the guest's first process
	AgentName  = "provium-agent"  // the agent, started by init
	WorkerName = "provium-worker" // a fork worker, started by the agent
	// SupervisorName keeps an agent running beside a real init, which
	// would not restart it.
	SupervisorName = "provium-supervisor"
)

// DevptsOptions are those of the devpts on /dev/pts that the guest's init
// mounts, and that the agent mounts again before a terminal if a real init
// has hidden it: a systemd guest's own (tty group 5), since systemd keeps a
// devpts it finds mounted.
const DevptsOptions = "mode=620,gid=5,ptmxmode=666"

// DefaultInit is the real init that provium's init execs once the agent is
// up, unless the profile names another.
const DefaultInit = "/sbin/init"

// Transport is how the host and the agent reach each other.
type Transport string

const (
	VirtioSerial Transport = "virtio-serial"
	Vsock        Transport = "vsock"
)

// The transport's addresses, unless the host says otherwise.
const (
	PortName  = "org.provium.agent" // the virtio-serial port's name
	VsockPort = 1024                // the vsock port the agent listens on
)

// Kernel parameters. The kernel keeps parameters with a dot to itself (it
// takes them for module parameters), so they reach the guest only through
// /proc/cmdline, which is where Parse reads them from.
const (
	paramInit      = "provium.init"
	paramTransport = "provium.transport"
	paramPort      = "provium.port"
	paramVsockPort = "provium.vsock_port"
	paramRoot      = "provium.root"
	paramHostname  = "provium.hostname"
	paramNIC       = "provium.nic" // one per network card: MAC,ADDRESS/PREFIX
)

// Params is what the host tells the guest on the kernel command line.
type Params struct {
	Init      string    // the real init to exec once the agent runs
	Transport Transport // the agent's transport
	Port      string    // the virtio-serial port's name
	VsockPort uint32    // the vsock port to listen on
	Root      string    // a block device to make the root file system, read-only; "" for none
	Hostname  string    // the guest's hostname; "" leaves it alone
	NICs      []NIC     // network cards to bring up, in the order QEMU has them
}

// NIC is a network card the guest's init brings up: the card with MAC
// gets Addr, and the link goes up.
type NIC struct {
	MAC  net.HardwareAddr
	Addr netip.Prefix
}

func (n NIC) String() string { return n.MAC.String() + "," + n.Addr.String() }

// ParseNIC reads a NIC as NIC.String writes it.
func ParseNIC(s string) (NIC, error) {
	mac, addr, ok := strings.Cut(s, ",")
	if !ok {
		return NIC{}, fmt.Errorf("%q: want MAC,ADDRESS/PREFIX", s)
	}
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return NIC{}, fmt.Errorf("%q: not an Ethernet MAC address", mac)
	}
	pfx, err := netip.ParsePrefix(addr)
	if err != nil || !pfx.Addr().Is4() {
		return NIC{}, fmt.Errorf("%q: not an IPv4 address with a prefix length", addr)
	}
	return NIC{MAC: hw, Addr: pfx}, nil
}

// ValidHostname reports whether h can be a hostname: one to 63 letters,
// digits and inner hyphens (an RFC 1123 label; dots would make it a
// domain name, which /etc/hosts resolution does not need).
func ValidHostname(h string) bool {
	if len(h) == 0 || len(h) > 63 || h[0] == '-' || h[len(h)-1] == '-' {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// Defaults are the parameters of a command line that sets none.
func Defaults() Params {
	return Params{Init: DefaultInit, Transport: VirtioSerial, Port: PortName, VsockPort: VsockPort}
}

// Args returns the kernel command line arguments that make the guest run
// provium's init and read back p.
func (p Params) Args() []string {
	args := []string{"rdinit=" + InitPath}
	if p.Init != "" {
		args = append(args, paramInit+"="+quote(p.Init))
	}
	if p.Transport != "" {
		args = append(args, paramTransport+"="+string(p.Transport))
	}
	if p.Port != "" {
		args = append(args, paramPort+"="+quote(p.Port))
	}
	if p.VsockPort != 0 {
		args = append(args, paramVsockPort+"="+strconv.FormatUint(uint64(p.VsockPort), 10))
	}
	if p.Root != "" {
		args = append(args, paramRoot+"="+quote(p.Root))
	}
	if p.Hostname != "" {
		args = append(args, paramHostname+"="+p.Hostname)
	}
	for _, n := range p.NICs {
		args = append(args, paramNIC+"="+n.String())
	}
	return args
}

// quote puts a value with spaces in the double quotes the kernel's parser
// takes them in; a value cannot hold a double quote itself.
func quote(v string) string {
	if strings.ContainsAny(v, " \t\n") {
		return `"` + v + `"`
	}
	return v
}

// Parse reads provium's parameters from a kernel command line. Values that
// make no sense keep the default and are reported in errs, so the guest can
// say so on its console and still boot.
func Parse(cmdline string) (p Params, errs []error) {
	p = Defaults()
	for _, arg := range Split(cmdline) {
		if arg == "--" {
			break // the rest is init's arguments
		}
		key, val, ok := strings.Cut(arg, "=")
		if !ok {
			continue
		}
		switch key {
		case paramInit:
			if val != "" {
				p.Init = val
			}
		case paramTransport:
			switch t := Transport(val); t {
			case VirtioSerial, Vsock:
				p.Transport = t
			default:
				errs = append(errs, fmt.Errorf("%s=%q: want %s or %s", key, val, VirtioSerial, Vsock))
			}
		case paramPort:
			if val != "" {
				p.Port = val
			}
		case paramVsockPort:
			n, err := strconv.ParseUint(val, 10, 32)
			if err != nil || n == 0 {
				errs = append(errs, fmt.Errorf("%s=%q: not a port number", key, val))
				continue
			}
			p.VsockPort = uint32(n)
		case paramRoot:
			p.Root = val
		case paramHostname:
			if !ValidHostname(val) {
				errs = append(errs, fmt.Errorf("%s=%q: not a valid hostname", key, val))
				continue
			}
			p.Hostname = val
		case paramNIC:
			n, err := ParseNIC(val)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
				continue
			}
			p.NICs = append(p.NICs, n)
		}
	}
	return p, errs
}

// Split splits a kernel command line into parameters as the kernel does:
// at spaces outside double quotes, the quotes themselves dropped
// (param="a b" is the parameter param=a b).
func Split(s string) []string {
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

// CmdlinePath is where the guest reads its kernel command line.
const CmdlinePath = "/proc/cmdline"

// Read parses the kernel command line at path (CmdlinePath in a guest).
// Without one, it returns the defaults and says why.
func Read(path string) (Params, []error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Defaults(), []error{fmt.Errorf("kernel command line: %w; using the defaults", err)}
	}
	return Parse(string(b))
}
