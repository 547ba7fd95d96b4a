package qemu

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func TestDeviceArgs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		dev    Device
		qemu   []string
		kernel []string
	}{
		{"serial console", SerialConsole{Path: "/dev/fd/4"},
			[]string{"-chardev", "file,id=console,path=/dev/fd/4", "-serial", "chardev:console"},
			[]string{"console=ttyS0"}},
		{"console path with comma", SerialConsole{Path: "/tmp/a,b"},
			[]string{"-chardev", "file,id=console,path=/tmp/a,,b", "-serial", "chardev:console"},
			[]string{"console=ttyS0"}},
		{"virtio serial", VirtioSerialPort{Name: "provium.0", SocketPath: "/run/x/agent.sock"},
			[]string{
				"-device", "virtio-serial-pci,id=vser-provium.0",
				"-chardev", "socket,id=port-provium.0,path=/run/x/agent.sock",
				"-device", "virtserialport,bus=vser-provium.0.0,chardev=port-provium.0,name=provium.0,id=vport-provium.0",
			},
			nil},
		{"vsock", Vsock{CID: 42},
			[]string{"-device", "vhost-vsock-pci,guest-cid=42"},
			nil},
		{"disk defaults", Disk{Path: "/img/a.raw", ID: "d0"},
			[]string{"-drive", "if=none,id=d0,file=/img/a.raw,format=raw", "-device", "virtio-blk-pci,drive=d0"},
			nil},
		{"read-only qcow2", Disk{Path: "/img/b.qcow2", Format: "qcow2", ReadOnly: true, ID: "root fs"},
			[]string{"-drive", "if=none,id=root_fs,file=/img/b.qcow2,format=qcow2,readonly=on", "-device", "virtio-blk-pci,drive=root_fs"},
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.dev.QEMUArgs(); !reflect.DeepEqual(got, tc.qemu) {
				t.Errorf("QEMUArgs =\n%q\nwant\n%q", got, tc.qemu)
			}
			if got := tc.dev.KernelArgs(); !reflect.DeepEqual(got, tc.kernel) {
				t.Errorf("KernelArgs = %q, want %q", got, tc.kernel)
			}
		})
	}
}

func TestDiskIDs(t *testing.T) {
	a, b := Disk{Path: "/a"}.QEMUArgs(), Disk{Path: "/b"}.QEMUArgs()
	if a[3] == b[3] || !strings.HasPrefix(a[3], "virtio-blk-pci,drive=disk-") {
		t.Errorf("derived drive ids %q and %q", a[3], b[3])
	}
}

// argValue returns the value after flag in args ("" if absent).
func argValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func TestArgs(t *testing.T) {
	base := Config{Binary: "qemu", Accel: "tcg", Machine: "q35", MemoryMiB: 512, CPUs: 1, Kernel: "/k"}
	fast := strings.Join(bootArgs, " ")
	for _, tc := range []struct {
		name       string
		cfg        func(c *Config)
		console    string
		incoming   int
		memory     int
		want       map[string]string // flag -> value; "" means absent
		wantFlags  []string
		noFlags    []string
		appendTail string
	}{
		{name: "tcg", want: map[string]string{"-accel": "tcg", "-cpu": "max", "-m": "512", "-smp": "1", "-kernel": "/k", "-machine": "q35",
			"-append": fast, "-initrd": "", "-incoming": "", "-mon": "chardev=qmp,mode=control", "-chardev": "socket,id=qmp,fd=3"},
			wantFlags: []string{"-nodefaults", "-no-user-config", "-no-reboot"}, noFlags: []string{"-S"}},
		{name: "kvm", cfg: func(c *Config) { c.Accel = "kvm"; c.MemoryMiB = 2048; c.CPUs = 4 },
			want: map[string]string{"-accel": "kvm", "-cpu": "host", "-m": "2048", "-smp": "4"}},
		{name: "initrd", cfg: func(c *Config) { c.Initrd = "/i" }, want: map[string]string{"-initrd": "/i"}},
		{name: "machine", cfg: func(c *Config) { c.Machine = "pc" }, want: map[string]string{"-machine": "pc"}},
		{name: "no kernel", cfg: func(c *Config) { c.Kernel = "" }, want: map[string]string{"-kernel": "", "-append": ""}},
		{name: "console first", console: "/dev/fd/4", want: map[string]string{"-serial": "chardev:console", "-append": fast + " console=ttyS0"}},
		{name: "device and user kernel args, user last",
			cfg: func(c *Config) {
				c.Devices = []Device{Vsock{CID: 3}}
				c.Append = []string{"panic=0", "loglevel=7"}
			},
			console: "/dev/fd/4",
			want:    map[string]string{"-device": "vhost-vsock-pci,guest-cid=3", "-append": fast + " console=ttyS0 panic=0 loglevel=7"}},
		{name: "gdbstub", cfg: func(c *Config) { c.GDB = "tcp:127.0.0.1:4321" }, want: map[string]string{"-gdb": "tcp:127.0.0.1:4321"}, noFlags: []string{"-S"}},
		{name: "paused for a debugger", cfg: func(c *Config) { c.GDB = "tcp:127.0.0.1:4321"; c.Paused = true }, wantFlags: []string{"-S"}},
		{name: "incoming", incoming: 5, want: map[string]string{"-incoming": "fd:5"}, wantFlags: []string{"-S"}},
		{name: "RAM in a file, shared", memory: 6, cfg: func(c *Config) { c.MemoryShared = true },
			want: map[string]string{"-machine": "q35,memory-backend=ram0", "-m": "512", "-object": "memory-backend-file,id=ram0,size=512M,mem-path=/dev/fd/6,share=on", "-incoming": ""}},
		{name: "template resumed", incoming: 5, memory: 6, cfg: func(c *Config) { c.Template = true },
			want:      map[string]string{"-object": "memory-backend-file,id=ram0,size=512M,mem-path=/dev/fd/6,share=off", "-incoming": "defer"},
			wantFlags: []string{"-S"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			args := cfg.args(tc.console, tc.incoming, tc.memory)
			for flag, want := range tc.want {
				if got := argValue(args, flag); got != want {
					t.Errorf("%s = %q, want %q\nargs: %q", flag, got, want, args)
				}
			}
			has := map[string]bool{}
			for _, a := range args {
				has[a] = true
			}
			for _, f := range tc.wantFlags {
				if !has[f] {
					t.Errorf("missing %s in %q", f, args)
				}
			}
			for _, f := range tc.noFlags {
				if has[f] {
					t.Errorf("unexpected %s in %q", f, args)
				}
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	t.Setenv("PROVIUM_QEMU", "/opt/qemu")
	t.Setenv("PROVIUM_ACCEL", "tcg")
	c := Config{}.withDefaults()
	if c.Binary != "/opt/qemu" || c.Accel != "tcg" || c.Machine != DefaultMachine || c.MemoryMiB != 0 || c.CPUs != 0 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestShellQuote(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"qemu", "-m", "512"}, "qemu -m 512"},
		{[]string{"-append", "console=ttyS0 panic=-1"}, "-append 'console=ttyS0 panic=-1'"},
		{[]string{""}, "''"},
		{[]string{"it's"}, `'it'\''s'`},
		{[]string{"path=/a,,b", "x$y", "a\"b", "*"}, `path=/a,,b 'x$y' 'a"b' '*'`},
		{[]string{"line\nbreak"}, "'line\nbreak'"},
	} {
		if got := ShellQuote(tc.args); got != tc.want {
			t.Errorf("ShellQuote(%q) = %s, want %s", tc.args, got, tc.want)
		}
	}
}

// TestShellQuoteRoundTrip has a real shell read quoted arguments back.
func TestShellQuoteRoundTrip(t *testing.T) {
	args := []string{"plain", "two words", "it's", `back\slash`, "$HOME", "`id`", "a\nb", "", "tab\there", "ünï"}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip(err)
	}
	out, err := exec.Command("sh", "-c", "set -- "+ShellQuote(args)+`; for a in "$@"; do printf '%s\0' "$a"; done`).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if !reflect.DeepEqual(got, args) {
		t.Errorf("shell read %q, want %q", got, args)
	}
}
