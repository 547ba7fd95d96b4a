package machine

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Snapshot quiesces the agent (no workers, no jobs, no call in flight),
// saves the VM's whole state to path and stops the VM. The file appears
// under its final name only once complete, so an interrupted snapshot
// leaves nothing that looks usable.
func (vm *VM) Snapshot(ctx context.Context, path string) (Shape, error) {
	vm.mu.Lock()
	state, proc, sess := vm.state, vm.proc, vm.sess
	vm.mu.Unlock()
	if state != StateRunning {
		return Shape{}, fmt.Errorf("snapshot %s: %w (state: %s)", vm.cfg.Name, ErrState, state)
	}
	if err := sess.Quiesce(ctx); err != nil {
		return Shape{}, vm.guestError(fmt.Errorf("snapshot %s: quiesce agent: %w", vm.cfg.Name, err))
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snapshot-*")
	if err != nil {
		return Shape{}, fmt.Errorf("snapshot %s: %w", vm.cfg.Name, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := proc.SaveSnapshot(ctx, tmp); err != nil {
		return Shape{}, vm.guestError(fmt.Errorf("snapshot %s: %w", vm.cfg.Name, err))
	}
	if err := tmp.Sync(); err != nil {
		return Shape{}, fmt.Errorf("snapshot %s: %w", vm.cfg.Name, err)
	}
	shape := vm.shape
	if strings.HasPrefix(shape.Initrd, vm.cfg.Dir+string(os.PathSeparator)) {
		// A boot-specific initramfs dies with the VM's directory, but a
		// restore needs the very same one.
		keep := path + ".initrd"
		if err := copyFile(shape.Initrd, keep); err != nil {
			return Shape{}, fmt.Errorf("snapshot %s: keep initramfs: %w", vm.cfg.Name, err)
		}
		shape.Initrd = keep
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return Shape{}, fmt.Errorf("snapshot %s: %w", vm.cfg.Name, err)
	}
	vm.Kill()
	return shape, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// Resume starts a VM from a snapshot taken by Snapshot with the given shape.
func Resume(ctx context.Context, cfg Config, snapshot string, shape Shape) (*VM, error) {
	start := time.Now()
	vm := New(cfg)
	vm.shape = shape
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("resume %s: %w", cfg.Name, err)
	}
	f, err := os.Open(snapshot)
	if err != nil {
		vm.stop(StateDead)
		return nil, fmt.Errorf("resume %s: %w", cfg.Name, err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(ctx, ResumeTimeout)
	defer cancel()
	if err := vm.start(ctx, f); err != nil {
		return nil, vm.bootError("resume", err)
	}
	if cfg.OnReady != nil {
		cfg.OnReady(true, time.Since(start))
	}
	return vm, nil
}
