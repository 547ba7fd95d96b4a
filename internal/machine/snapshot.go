package machine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/provium/provium/internal/cache"
)

// Snapshot quiesces the agent (no workers, no jobs, no call in flight),
// saves the VM's whole state into the directory dir and stops the VM. dir
// gets the migration stream (SnapshotFile) and a copy of the initramfs the
// VM booted from (InitrdFile): a restore needs the very machine that was
// saved. The returned shape names that copy. Each file appears under its
// name only once complete.
func (vm *VM) Snapshot(ctx context.Context, dir string) (Shape, error) {
	vm.mu.Lock()
	state, proc, sess := vm.state, vm.proc, vm.sess
	vm.mu.Unlock()
	if state != StateRunning {
		return Shape{}, fmt.Errorf("snapshot %s: %w (state: %s)", vm.cfg.Name, ErrState, state)
	}
	if err := sess.Quiesce(ctx); err != nil {
		return Shape{}, vm.guestError(fmt.Errorf("snapshot %s: quiesce agent: %w", vm.cfg.Name, err))
	}
	shape := vm.shape
	keep := filepath.Join(dir, InitrdFile)
	if err := cache.CopyFile(keep, shape.Initrd); err != nil {
		return Shape{}, fmt.Errorf("snapshot %s: keep the initramfs: %w", vm.cfg.Name, err)
	}
	shape.Initrd = keep
	err := cache.FillFile(filepath.Join(dir, SnapshotFile), 0o644, func(f *os.File) error {
		return proc.SaveSnapshot(ctx, f)
	})
	if err != nil {
		return Shape{}, vm.guestError(fmt.Errorf("snapshot %s: %w", vm.cfg.Name, err))
	}
	vm.Kill()
	return shape, nil
}

// Quiesce ends every worker and background job of the agent and waits
// for calls in flight: what Snapshot does first. A cluster's VMs are all
// quiesced before the first is saved.
func (vm *VM) Quiesce(ctx context.Context) error {
	vm.mu.Lock()
	state, sess := vm.state, vm.sess
	vm.mu.Unlock()
	if state != StateRunning || sess == nil {
		return fmt.Errorf("quiesce %s: %w (state: %s)", vm.cfg.Name, ErrState, state)
	}
	if err := sess.Quiesce(ctx); err != nil {
		return vm.guestError(fmt.Errorf("quiesce %s: %w", vm.cfg.Name, err))
	}
	return nil
}

// Names of a snapshot's files in its directory.
const (
	SnapshotFile = "snapshot"
	InitrdFile   = "initrd"
)

// Resume starts a VM from a snapshot taken by Snapshot with the given shape.
func Resume(ctx context.Context, cfg Config, snapshot string, shape Shape) (*VM, error) {
	start := time.Now()
	vm := New(cfg)
	vm.shape = shape
	vm.watchKmsg()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("resume %s: %w", cfg.Name, err)
	}
	f, err := os.Open(snapshot)
	if err != nil {
		vm.stop(StateDead)
		return nil, fmt.Errorf("resume %s: %w", cfg.Name, err)
	}
	defer f.Close()
	if cfg.Debug.GDB && cfg.Debug.Wait {
		vm.runTimeout = ResumeTimeout
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ResumeTimeout)
		defer cancel()
	}
	vm.setStarting(true)
	defer vm.setStarting(false)
	if err := vm.start(ctx, f); err != nil {
		return nil, vm.bootError("resume", err, ResumeTimeout)
	}
	if cfg.OnReady != nil {
		cfg.OnReady(true, time.Since(start))
	}
	return vm, nil
}
