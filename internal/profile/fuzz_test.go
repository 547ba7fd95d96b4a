package profile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary provium.toml files: a project's configuration
// is the user's, and a broken one must be a clear error, never a crash.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		"[profile.minimal]\nkernel = \"k\"\ninitrd = \"i\"\n",
		"[profile.a]\nkernel = \"/k\"\nrootfs = \"d.img\"\nappend = \"quiet\"\npvh = false\nboot_timeout = \"3m\"\n",
		"[profile.b]\nkernel = 1\n",
		"[profile]\nkernel = \"x\"\n",
		"[[profile.x]]\n",
		"boot_timeout = \"-1s\"\n",
		"[profile.c]\nkernel = \"k\"\ninitrd = \"i\"\nboot_timeout = \"soon\"\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, content string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(dir)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Load error %v is not ErrInvalid", err)
			}
			return
		}
		for name := range c.profiles {
			// Looking a profile up may fail (its files are missing),
			// but it must not crash.
			c.Get(name)
		}
	})
}
