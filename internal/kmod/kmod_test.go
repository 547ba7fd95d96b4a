package kmod

import (
	"github.com/provium/provium/internal/profile"

	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"virtio_pci", "virtio_pci"},
		{"virtio-rng", "virtio_rng"},
		{"virtio-rng.ko", "virtio_rng"},
		{"kernel/drivers/char/hw_random/virtio-rng.ko.xz", "virtio_rng"},
		{"vsock.ko.zst", "vsock"},
	} {
		if got := Name(tc.in); got != tc.want {
			t.Errorf("Name(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDepends(t *testing.T) {
	for _, tc := range []struct {
		name    string
		modinfo string
		want    []string
	}{
		{"none", "license=GPL\x00name=x\x00", nil},
		{"empty", "depends=\x00name=x\x00", nil},
		{"list", "license=GPL\x00depends=virtio,virtio-ring\x00name=x\x00", []string{"virtio", "virtio_ring"}},
		{"no trailing nul", "depends=a", []string{"a"}},
		{"key suffix is not depends", "softdepends=a\x00", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Depends([]byte(tc.modinfo)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Depends = %q, want %q", got, tc.want)
			}
		})
	}
}

// fakeIndex builds an index from a map of module name -> dependencies.
func fakeIndex(mods map[string][]string, builtin ...string) *index {
	ix := &index{dir: "/fake", paths: map[string]string{}, builtin: map[string]bool{}}
	for n := range mods {
		ix.paths[n] = n + ".ko"
	}
	for _, b := range builtin {
		ix.builtin[b] = true
	}
	ix.depends = func(path string) ([]string, error) { return mods[strings.TrimSuffix(path, ".ko")], nil }
	return ix
}

func TestResolve(t *testing.T) {
	virtio := map[string][]string{
		"virtio":         nil,
		"virtio_ring":    nil,
		"virtio_pci":     {"virtio_ring", "virtio"},
		"virtio_console": {"virtio", "virtio_ring"},
		"vsock":          nil,
		"vsock_common":   {"vsock", "virtio"},
		"vsock_virtio":   {"virtio", "vsock_common", "virtio_ring", "vsock"},
	}
	for _, tc := range []struct {
		name    string
		mods    map[string][]string
		builtin []string
		ask     []string
		want    []string
		err     error
	}{
		{"leaf", virtio, nil, []string{"virtio"}, []string{"virtio.ko"}, nil},
		{"deps first in their order", virtio, nil, []string{"virtio_pci"},
			[]string{"virtio_ring.ko", "virtio.ko", "virtio_pci.ko"}, nil},
		{"shared deps once", virtio, nil, []string{"virtio_pci", "virtio_console", "vsock_virtio"},
			[]string{"virtio_ring.ko", "virtio.ko", "virtio_pci.ko", "virtio_console.ko", "vsock.ko", "vsock_common.ko", "vsock_virtio.ko"}, nil},
		{"dash spelling", virtio, nil, []string{"virtio-pci"},
			[]string{"virtio_ring.ko", "virtio.ko", "virtio_pci.ko"}, nil},
		{"asked twice", virtio, nil, []string{"virtio", "virtio"}, []string{"virtio.ko"}, nil},
		{"built-in deps skipped", virtio, []string{"virtio", "virtio_ring"}, []string{"virtio_pci"},
			[]string{"virtio_pci.ko"}, nil},
		{"built-in asked", virtio, []string{"virtio", "virtio_ring", "virtio_pci"}, []string{"virtio_pci"}, nil, nil},
		{"unknown", virtio, nil, []string{"nope"}, nil, ErrUnknownModule},
		{"unknown dependency", map[string][]string{"a": {"b"}}, nil, []string{"a"}, nil, ErrUnknownModule},
		{"cycle", map[string][]string{"a": {"b"}, "b": {"c"}, "c": {"a"}}, nil, []string{"a"}, nil, ErrCycle},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fakeIndex(tc.mods, tc.builtin...).resolve(tc.ask)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("resolve(%q) = %q, want %q", tc.ask, got, tc.want)
			}
		})
	}
}

func TestUnknownNamesModuleAndDir(t *testing.T) {
	_, err := fakeIndex(map[string][]string{"a": {"b"}}).resolve([]string{"a"})
	for _, want := range []string{`"b"`, "/fake", "needed by a"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}

// writeModule writes a minimal ELF64 relocatable file whose only section
// is .modinfo: enough for debug/elf and for Resolve.
func writeModule(t *testing.T, path, modinfo string) {
	t.Helper()
	shstr := "\x00.modinfo\x00.shstrtab\x00"
	const ehsize, shentsize = 64, 64
	infoOff := ehsize
	strOff := infoOff + len(modinfo)
	shOff := (strOff + len(shstr) + 7) &^ 7
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	binary.Write(&b, le, struct {
		Type, Machine                                    uint16
		Version                                          uint32
		Entry, Phoff, Shoff                              uint64
		Flags                                            uint32
		Ehsize, Phentsize, Phnum, Shentsize, Shnum, Shst uint16
	}{1, 62, 1, 0, 0, uint64(shOff), 0, ehsize, 0, 0, shentsize, 3, 2})
	b.WriteString(modinfo)
	b.WriteString(shstr)
	b.Write(make([]byte, shOff-b.Len()))
	type shdr struct {
		Name, Type             uint32
		Flags, Addr, Off, Size uint64
		Link, Info             uint32
		Addralign, Entsize     uint64
	}
	binary.Write(&b, le, shdr{})
	binary.Write(&b, le, shdr{Name: 1, Type: 1, Off: uint64(infoOff), Size: uint64(len(modinfo)), Addralign: 1})
	binary.Write(&b, le, shdr{Name: 10, Type: 3, Off: uint64(strOff), Size: uint64(len(shstr)), Addralign: 1})
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestResolveDir(t *testing.T) {
	dir := t.TempDir()
	writeModule(t, filepath.Join(dir, "kernel/drivers/virtio/virtio.ko"), "license=GPL\x00depends=\x00name=virtio\x00")
	writeModule(t, filepath.Join(dir, "kernel/drivers/virtio/virtio_pci.ko"), "depends=virtio,virtio_ring\x00name=virtio_pci\x00")
	writeModule(t, filepath.Join(dir, "kernel/drivers/char/virtio-console.ko"), "depends=virtio_pci\x00")
	writeModule(t, filepath.Join(dir, "kernel/drivers/virtio/virtio_ring.ko"), "depends=\x00")
	if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/drivers/virtio/virtio_ring.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Resolve(dir, "virtio_console")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		filepath.Join(dir, "kernel/drivers/virtio/virtio.ko"),
		filepath.Join(dir, "kernel/drivers/virtio/virtio_pci.ko"),
		filepath.Join(dir, "kernel/drivers/char/virtio-console.ko"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Resolve = %q, want %q", got, want)
	}

	if _, err := Resolve(dir, "vsock"); !errors.Is(err, ErrUnknownModule) || !strings.Contains(err.Error(), dir) {
		t.Errorf("Resolve(vsock) error = %v, want ErrUnknownModule naming %s", err, dir)
	}

	os.WriteFile(filepath.Join(dir, "kernel/broken.ko"), []byte("not elf"), 0o644)
	if _, err := Resolve(dir, "broken"); err == nil || !strings.Contains(err.Error(), "broken.ko") {
		t.Errorf("Resolve(broken) error = %v, want one naming the file", err)
	}
	if _, err := Resolve(filepath.Join(dir, "missing")); err == nil {
		t.Error("Resolve on a missing directory succeeded")
	}
}

// TestResolveDebianCloud runs against the Debian cloud kernel that provium
// setup installs (its package ships no modules.dep).
func TestResolveDebianCloud(t *testing.T) {
	k, err := profile.FindKernel()
	if err != nil || k.ModulesDir == "" {
		t.Fatalf("no kernel module tree (run provium setup): %v", err)
	}
	got, err := Resolve(k.ModulesDir, TransportModules...)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, Name(p))
	}
	pos := map[string]int{}
	for i, n := range names {
		if _, dup := pos[n]; dup {
			t.Errorf("%s listed twice in %q", n, names)
		}
		pos[n] = i
	}
	for _, pair := range [][2]string{
		{"virtio", "virtio_pci"}, {"virtio_ring", "virtio_pci"}, {"virtio", "virtio_console"},
		{"vsock", "vmw_vsock_virtio_transport"}, {"vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport"},
	} {
		a, okA := pos[pair[0]]
		b, okB := pos[pair[1]]
		if !okA || !okB || a > b {
			t.Errorf("want %s before %s in %q", pair[0], pair[1], names)
		}
	}
	t.Logf("transport modules: %q", names)
}

func TestResolveCompressed(t *testing.T) {
	for _, tc := range []struct {
		tool, ext string
		args      []string // compress in place, removing the original
	}{{"xz", ".xz", []string{"-q"}}, {"zstd", ".zst", []string{"-q", "--rm"}}} {
		t.Run(tc.tool, func(t *testing.T) {
			if _, err := exec.LookPath(tc.tool); err != nil {
				t.Skip(err)
			}
			dir := t.TempDir()
			writeModule(t, filepath.Join(dir, "a.ko"), "depends=b\x00")
			writeModule(t, filepath.Join(dir, "b.ko"), "depends=\x00")
			for _, m := range []string{"a.ko", "b.ko"} {
				if out, err := exec.Command(tc.tool, append(tc.args, filepath.Join(dir, m))...).CombinedOutput(); err != nil {
					t.Fatalf("%s: %v %s", tc.tool, err, out)
				}
			}
			got, err := Resolve(dir, "a")
			want := []string{filepath.Join(dir, "b.ko"+tc.ext), filepath.Join(dir, "a.ko"+tc.ext)}
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("Resolve = %q, %v; want %q", got, err, want)
			}
			os.WriteFile(filepath.Join(dir, "c.ko"+tc.ext), []byte("garbage"), 0o644)
			if _, err := Resolve(dir, "c"); !errors.Is(err, ErrCompressed) {
				t.Errorf("corrupt module: %v, want ErrCompressed", err)
			}
		})
	}
}
