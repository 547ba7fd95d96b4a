package qemu

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// Device is something attached to a VM. Each device contributes the QEMU
// arguments and the kernel command-line arguments it needs, so adding one
// never touches the launcher.
type Device interface {
	QEMUArgs() []string
	KernelArgs() []string
}

// opt escapes a value for a QEMU option list, where ',' separates options
// and ",," is a literal comma.
func opt(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// id turns a name into a QEMU id: letters, digits, '-', '_' and '.', and
// starting with a letter.
func id(prefix, name string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for _, r := range name {
		if r < 128 && (r == '-' || r == '_' || r == '.' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// SerialConsole is the guest's first serial port (ttyS0) and its kernel
// console, written to the host file Path (Start uses a pipe, /dev/fd/N).
type SerialConsole struct {
	Path string
}

func (c SerialConsole) QEMUArgs() []string {
	return []string{
		"-chardev", "file,id=console,path=" + opt(c.Path),
		"-serial", "chardev:console",
	}
}

func (c SerialConsole) KernelArgs() []string { return []string{"console=ttyS0"} }

// VirtioSerialPort is a named virtio-serial port (/dev/vport*, and
// /sys/class/virtio-ports/*/name in the guest) connected to the unix socket
// SocketPath on the host. Provium listens on SocketPath before it starts
// QEMU, and QEMU connects to it as a client at startup, so the host end
// exists before the guest can write a byte. A SocketPath starting with "@"
// names a socket in the abstract namespace, which has no file and no
// directory whose length could break the 108-byte limit of socket paths.
type VirtioSerialPort struct {
	Name       string
	SocketPath string
}

func (v VirtioSerialPort) QEMUArgs() []string {
	bus, ch := id("vser-", v.Name), id("port-", v.Name)
	return []string{
		"-device", "virtio-serial-pci,id=" + bus,
		"-chardev", "socket,id=" + ch + ",path=" + socketPath(v.SocketPath),
		"-device", "virtserialport,bus=" + bus + ".0,chardev=" + ch + ",name=" + opt(v.Name) + ",id=" + v.ID(),
	}
}

// ID is the port device's id: QEMU's VSERPORT_CHANGE events name it when
// the guest opens or closes the port.
func (v VirtioSerialPort) ID() string { return id("vport-", v.Name) }

// PortChange is the data of a VSERPORT_CHANGE event.
type PortChange struct {
	ID   string `json:"id"`
	Open bool   `json:"open"`
}

func (v VirtioSerialPort) KernelArgs() []string { return nil }

// Vsock is a virtio vsock device with the guest context id CID; it needs
// /dev/vhost-vsock on the host.
type Vsock struct {
	CID uint32
}

func (v Vsock) QEMUArgs() []string {
	return []string{"-device", fmt.Sprintf("vhost-vsock-pci,guest-cid=%d", v.CID)}
}

func (v Vsock) KernelArgs() []string { return nil }

// Disk is a host image attached as a virtio disk (/dev/vdX, in the order
// disks are given).
type Disk struct {
	Path     string
	Format   string // "raw" (default) or "qcow2"
	ReadOnly bool
	// ID names the drive in QEMU; empty derives one from Path. Set it to
	// attach the same image twice.
	ID string
}

func (d Disk) QEMUArgs() []string {
	format := d.Format
	if format == "" {
		format = "raw"
	}
	did := d.ID
	if did == "" {
		sum := sha256.Sum256([]byte(d.Path))
		did = "disk-" + hex.EncodeToString(sum[:6])
	}
	did = id("", did)
	drive := "if=none,id=" + did + ",file=" + opt(d.Path) + ",format=" + opt(format)
	if d.ReadOnly {
		drive += ",readonly=on"
	}
	return []string{"-drive", drive, "-device", "virtio-blk-pci,drive=" + did}
}

func (d Disk) KernelArgs() []string { return nil }

func socketPath(p string) string {
	if name, ok := strings.CutPrefix(p, "@"); ok {
		return opt(name) + ",abstract=on"
	}
	return opt(p)
}

// NIC is a virtio network card whose frames travel as datagrams on
// Socket, one end of an AF_UNIX SOCK_DGRAM socket pair: QEMU's socket
// netdev sends and receives one Ethernet frame per datagram on such a
// socket (package netswitch has the other end). Start passes Socket to
// QEMU, which so needs no path and no helper process.
type NIC struct {
	ID     string // the netdev's id, unique in the VM
	MAC    string // e.g. 52:54:00:01:00:01
	Socket *os.File
	fd     int // Socket's number in QEMU, set by Start
}

func (n NIC) QEMUArgs() []string {
	nid := id("net-", n.ID)
	return []string{
		"-netdev", fmt.Sprintf("socket,id=%s,fd=%d", nid, n.fd),
		// No option ROM: the guest boots from -kernel, never from the
		// network, and the firmware would only spend time loading it.
		"-device", "virtio-net-pci,netdev=" + nid + ",mac=" + opt(n.MAC) + ",romfile=",
	}
}

func (n NIC) KernelArgs() []string { return nil }

func (n NIC) inherited() *os.File { return n.Socket }

func (n NIC) withFD(fd int) Device { n.fd = fd; return n }

// inheritor is a device that gives QEMU an open file: Start passes the
// file and tells the device the number QEMU has it under.
type inheritor interface {
	Device
	inherited() *os.File
	withFD(fd int) Device
}
