package kmod

import (
	"bytes"
	"debug/elf"
	"strings"
	"testing"
)

func FuzzDepends(f *testing.F) {
	f.Add([]byte("license=GPL\x00depends=virtio,virtio_ring\x00name=virtio_pci\x00"))
	f.Add([]byte("depends=\x00"))
	f.Add([]byte("depends=a-b,,c_d ,\x00depends=e"))
	f.Add([]byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, info []byte) {
		for _, d := range Depends(info) {
			if d == "" || strings.ContainsAny(d, ",\x00-/") {
				t.Fatalf("Depends(%q) gave the name %q", info, d)
			}
		}
	})
}

// FuzzModuleDepends feeds arbitrary bytes where a module's ELF file is
// expected: a module tree is the user's, and a broken file must be an
// error, never a crash.
func FuzzModuleDepends(f *testing.F) {
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Add(bytes.Repeat([]byte{0x7f, 'E', 'L', 'F'}, 20))
	f.Fuzz(func(t *testing.T, data []byte) {
		deps, err := elfDepends(data)
		if err == nil {
			if _, err := elf.NewFile(bytes.NewReader(data)); err != nil {
				t.Fatalf("elfDepends accepted %q that is no ELF file (%v)", data, err)
			}
		}
		_ = deps
	})
}
