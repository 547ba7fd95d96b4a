package qemu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provium/provium/internal/initramfs"
)

// busyboxInitrd writes an initramfs with the busybox root and script as
// /init, or skips without a static busybox.
func busyboxInitrd(tb testing.TB, script string) string {
	tb.Helper()
	if err := initramfs.CheckStatic("/bin/busybox"); err != nil {
		tb.Skipf("no static busybox: %v", err)
	}
	dir := tb.TempDir()
	initPath := filepath.Join(dir, "init")
	if err := os.WriteFile(initPath, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		tb.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "initrd.cpio"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := initramfs.WriteBusyboxRoot(f, "/bin/busybox"); err != nil {
		tb.Fatal(err)
	}
	if err := initramfs.WriteFiles(f, map[string]string{"/init": initPath}); err != nil {
		tb.Fatal(err)
	}
	return f.Name()
}

// TestUserspaceSnapshot boots a busybox userspace that prints a counter,
// snapshots it, and checks that the restored guest carries on counting.
func TestUserspaceSnapshot(t *testing.T) {
	kernel := testKernel(t)
	initrd := busyboxInitrd(t, "echo provium-userspace\ni=0\nwhile :; do echo tick $i; i=$((i+1)); sleep 0.1; done\n")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := Config{Kernel: kernel, Initrd: initrd, MemoryMiB: 512, Accel: "tcg"}

	console := newWatcher("tick 3")
	cfg.Console = console
	start := time.Now()
	p, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	console.wait(t, p, 90*time.Second)
	t.Logf("start to userspace: %v", time.Since(start))

	snap, err := os.Create(filepath.Join(t.TempDir(), "snapshot"))
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	t0 := time.Now()
	if err := p.SaveSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	st, _ := snap.Stat()
	t.Logf("SaveSnapshot (512 MiB, booted): %v, %.1f MiB", time.Since(t0), float64(st.Size())/(1<<20))
	p.Kill()
	p.Wait()

	// The restored guest continues where it was: its next ticks are
	// the first thing on the new console.
	in, err := os.Open(snap.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	resumed := newWatcher("tick ")
	cfg.Console, cfg.Incoming = resumed, in
	t0 = time.Now()
	q, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Kill()
	if err := q.WaitIncoming(ctx); err != nil {
		t.Fatal(err)
	}
	if err := q.Cont(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("restore (Start, WaitIncoming, Cont): %v", time.Since(t0))
	resumed.wait(t, q, 30*time.Second)
	if out := resumed.String(); strings.Contains(out, "Linux version") || strings.Contains(out, "tick 0\r\n") {
		t.Errorf("the restored guest booted again:\n%s", out)
	}
}

// BenchmarkBoot measures QEMU start to userspace (a busybox /init that
// powers off at once, so the time runs to QEMU's exit) for machine types
// and kernel arguments:
//
//	go test -run XXX -bench Boot -benchtime 10x ./internal/qemu
func BenchmarkBoot(b *testing.B) {
	kernel := testKernel(b)
	initrd := busyboxInitrd(b, "exec /bin/busybox poweroff -f\n")
	for _, bc := range []struct {
		name    string
		machine string
		append  []string
	}{
		{"q35", "q35", nil},
		{"pc", "pc", nil},
		{"q35-selftests", "q35", []string{"cryptomgr.notests=0"}},
		{"q35-mitigations-off", "q35", []string{"mitigations=off"}},
		{"q35-quiet", "q35", []string{"quiet"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for range b.N {
				p, err := Start(context.Background(), Config{
					Kernel: kernel, Initrd: initrd, Machine: bc.machine, Append: bc.append,
					Accel: "tcg", Console: discard{}, MemoryMiB: 512,
				})
				if err != nil {
					b.Fatal(err)
				}
				if exit := p.Wait(); !exit.Clean() {
					b.Fatal(exit)
				}
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
