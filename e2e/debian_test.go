package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// debianImage returns a Debian 12 image with systemd, built by
// scripts/debian-image once and kept in the user's cache under the hash of
// the script, so that a changed script builds a new one.
func debianImage(t *testing.T) string {
	t.Helper()
	script := filepath.Join("..", "scripts", "debian-image")
	src, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(src)
	img := filepath.Join(userCache(t), "images", "debian-12-"+hex.EncodeToString(sum[:8])+".img")
	if _, err := os.Stat(img); err == nil {
		return img
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Fatal("debootstrap is missing: scripts/setup --tests installs it")
	}
	if err := os.MkdirAll(filepath.Dir(img), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := exec.Command("bash", script, img).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/debian-image: %v\n%s", err, out)
	}
	t.Logf("built %s in %s", img, time.Since(start).Round(time.Second))
	return img
}

// The manual's Debian profile, as the manual shows it: systemd as PID 1 on
// a read-only image built with debootstrap, the agent beside it.
func TestDebianSystemd(t *testing.T) {
	// NewEnv first: with -short it skips before debootstrap builds an
	// image, which takes minutes.
	env := NewEnv(t, map[string]string{
		"provium.toml": docFile(t, "configuration.md", "debian/provium.toml"),
		"systemd.lua":  docFile(t, "configuration.md", "debian/systemd.lua"),
	})
	img := debianImage(t)
	linkKernel(t, env, "vmlinuz", "modules")
	if err := os.Symlink(img, filepath.Join(env.Dir, "debian.img")); err != nil {
		t.Fatal(err)
	}
	env.Run("test", "-v", "systemd.lua").MustPass(t)
}
