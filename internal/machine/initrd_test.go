package machine

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/provium/provium/internal/cache"
	"github.com/provium/provium/internal/profile"
	"github.com/provium/provium/internal/wire/boot"
)

// TestBaseInitrdOfGeneratedArchive boots a built-in profile's archive
// twice from one initramfs: the cache touches the archive at each use,
// which must not make it another archive. A user's archive that changes
// is another one.
func TestBaseInitrdOfGeneratedArchive(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs a static /bin/busybox to stand for the agent")
	}
	t.Setenv("PROVIUM_CACHE", t.TempDir())
	t.Setenv("PROVIUM_AGENT", "/bin/busybox")
	dir := t.TempDir()
	generated := filepath.Join(dir, "busybox-0123456789abcdef.cpio")
	if err := os.WriteFile(generated, make([]byte, 512), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &profile.Profile{Name: "default", Initrd: generated, InitrdFrom: "/bin/busybox"}
	first, err := baseInitrd(p, needs{}, boot.VirtioSerial)
	if err != nil {
		t.Fatal(err)
	}
	cache.Touch(generated)
	again, err := baseInitrd(p, needs{}, boot.VirtioSerial)
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Errorf("a touched generated archive gave another initramfs: %s, then %s", first, again)
	}

	user := filepath.Join(dir, "root.cpio")
	if err := os.WriteFile(user, make([]byte, 512), 0o644); err != nil {
		t.Fatal(err)
	}
	p = &profile.Profile{Name: "mine", Initrd: user}
	before, err := baseInitrd(p, needs{}, boot.VirtioSerial)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(user, make([]byte, 1024), 0o644); err != nil {
		t.Fatal(err)
	}
	after, err := baseInitrd(p, needs{}, boot.VirtioSerial)
	if err != nil {
		t.Fatal(err)
	}
	if after == before {
		t.Error("a user's archive that changed gave the same initramfs")
	}
}

// TestModulesMemo remembers a resolution and forgets it when a module it
// names or the tree's built-in list changes.
func TestModulesMemo(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("kernel/a.ko", "a")
	b := write("kernel/b.ko", "b")
	write("modules.builtin", "kernel/c.ko\n")
	memo := filepath.Join(t.TempDir(), "modules", "memo")

	if _, ok := readModulesMemo(memo, dir); ok {
		t.Fatal("a memo not written yet holds")
	}
	writeModulesMemo(memo, dir, []string{a, b})
	got, ok := readModulesMemo(memo, dir)
	if !ok || !slices.Equal(got, []string{a, b}) {
		t.Fatalf("memo = %q, %v; want %q", got, ok, []string{a, b})
	}

	// Fingerprints see a change of size or time: a rewrite with the
	// same size a moment later is one too.
	later := time.Now().Add(time.Second)
	write("kernel/b.ko", "B")
	os.Chtimes(b, later, later)
	if _, ok := readModulesMemo(memo, dir); ok {
		t.Error("the memo holds after a module it names changed")
	}
	writeModulesMemo(memo, dir, []string{a, b})
	if _, ok := readModulesMemo(memo, dir); !ok {
		t.Fatal("a memo written again does not hold")
	}
	write("modules.builtin", "kernel/c.ko\nkernel/d.ko\n")
	if _, ok := readModulesMemo(memo, dir); ok {
		t.Error("the memo holds after modules.builtin changed")
	}
	writeModulesMemo(memo, dir, []string{a, b})
	os.Remove(a)
	if _, ok := readModulesMemo(memo, dir); ok {
		t.Error("the memo holds after a module it names is gone")
	}
}
