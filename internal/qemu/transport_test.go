package qemu

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provium/provium/internal/initramfs"
	"github.com/provium/provium/internal/kmod"
)

// TestVirtioSerialAndDisk boots busybox with the transport modules
// resolved by kmod and packed by initramfs.WriteShim, as Provium's guests
// get them, and checks the guest end to end: its virtio-serial port
// reaches the host socket QEMU connected to at startup, and a read-only
// disk appears as /dev/vda.
func TestVirtioSerialAndDisk(t *testing.T) {
	kernel := testKernel(t)
	trees, _ := filepath.Glob(filepath.Join(filepath.Dir(filepath.Dir(kernel)), "lib/modules/*"))
	if len(trees) == 0 {
		t.Skip("no module tree beside the kernel")
	}
	mods, err := kmod.Resolve(trees[0], append(kmod.VirtioSerialModules, kmod.DiskModules...)...)
	if err != nil {
		t.Fatal(err)
	}
	initrd := busyboxInitrd(t, `
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
while read m; do insmod "$m" || echo "insmod $m failed"; done < /provium/modules.order
# Devices probe asynchronously: wait for both, up to 20 s.
i=0
while [ $i -lt 100 ]; do
	for p in /sys/class/virtio-ports/*; do
		[ "$(cat $p/name 2>/dev/null)" = provium.test ] && port=/dev/${p##*/}
	done
	[ -n "$port" ] && [ -e /sys/block/vda/ro ] && break
	sleep 0.2
	i=$((i+1))
done
echo "disk ro=$(cat /sys/block/vda/ro)"
echo "disk checked"
echo "hello from $port" > $port
sleep 1000
`)
	// Append the shim (agent is any file here) to the busybox root.
	f, err := os.OpenFile(initrd, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := initramfs.WriteShim(f, initramfs.Shim{Agent: "/bin/busybox", Modules: mods}); err != nil {
		t.Fatal(err)
	}
	f.Close()

	dir := t.TempDir()
	sock := filepath.Join(dir, "port.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	disk := filepath.Join(dir, "disk.raw")
	os.WriteFile(disk, make([]byte, 1<<20), 0o644)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The console arrives in pieces: wait for the line after the one
	// checked, so that the checked line is whole.
	console := newWatcher("disk checked")
	p, err := Start(ctx, Config{
		Kernel: kernel, Initrd: initrd, Accel: "tcg", Console: console, MemoryMiB: 512,
		Devices: []Device{
			VirtioSerialPort{Name: "provium.test", SocketPath: sock},
			Disk{Path: disk, ReadOnly: true},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	// QEMU connected during startup, before Start returned.
	ln.(*net.UnixListener).SetDeadline(time.Now().Add(time.Second))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatalf("QEMU did not connect to the port's socket: %v", err)
	}
	defer conn.Close()
	console.wait(t, p, 90*time.Second)
	if !strings.Contains(console.String(), "disk ro=1\r\n") {
		t.Errorf("no read-only /dev/vda:\n%s", console.String())
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "hello from /dev/vport") {
		t.Fatalf("read from the port: %q, %v\nconsole:\n%s", line, err, console.String())
	}
}
