package machine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/cache"
	"github.com/provium/provium/internal/memfile"
)

// Snapshot quiesces the agent (no workers, no jobs, no call in flight),
// saves the VM's whole state into the directory dir and stops the VM. dir
// gets the migration stream (SnapshotFile) and a copy of the initramfs the
// VM booted from (InitrdFile): a restore needs the very machine that was
// saved. The returned shape names that copy. Each file appears under its
// name only once complete.
//
// A VM whose RAM is a file of its own (Config.RAMDir) is saved as a
// template: the stream holds the devices' state only, and the RAM file,
// synced, becomes MemoryFile. Saved tells the two apart.
func (vm *VM) Snapshot(ctx context.Context, dir string) (Shape, error) {
	vm.mu.Lock()
	state, proc, sess, mem, shared := vm.state, vm.proc, vm.sess, vm.mem, vm.memShared
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
	template := mem != nil && shared
	start := time.Now()
	err := cache.FillFile(filepath.Join(dir, SnapshotFile), 0o644, func(f *os.File) error {
		if template {
			return proc.SaveTemplate(ctx, f)
		}
		return proc.SaveSnapshot(ctx, f)
	})
	if err != nil {
		return Shape{}, vm.guestError(fmt.Errorf("snapshot %s: %w", vm.cfg.Name, err))
	}
	if template {
		// The guest is stopped: the file holds its RAM as the state
		// saved expects it.
		if err := memfile.Link(mem, filepath.Join(dir, MemoryFile)); err != nil {
			return Shape{}, fmt.Errorf("snapshot %s: %w", vm.cfg.Name, err)
		}
		vm.logf("saved as a template in %v", time.Since(start).Round(time.Millisecond))
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
	MemoryFile   = "memory" // a template's RAM
)

// Saved is a snapshot on disk, as Snapshot left it.
type Saved struct {
	State string // the migration stream
	// Memory is a template's RAM file; "" when State holds the RAM too.
	Memory string
}

// SavedIn is the snapshot Snapshot saved into dir.
func SavedIn(dir string) Saved {
	s := Saved{State: filepath.Join(dir, SnapshotFile)}
	if _, err := os.Stat(filepath.Join(dir, MemoryFile)); err == nil {
		s.Memory = filepath.Join(dir, MemoryFile)
	}
	return s
}

// Resume starts a VM from a snapshot taken by Snapshot with the given
// shape. A template's RAM file is mapped privately: the guest's writes
// stay its own, and the file is never changed. A VM given a RAMDir gets
// RAM of its own there instead, a copy of the template's, so that it can
// be saved in turn. Given a standby (Config.Standby), Resume takes it
// over, or closes it when it cannot serve this resume.
func Resume(ctx context.Context, cfg Config, saved Saved, shape Shape) (*VM, error) {
	start := time.Now()
	vm := New(cfg)
	vm.shape = shape
	vm.watchKmsg()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		if cfg.Standby != nil {
			cfg.Standby.Close()
		}
		return nil, fmt.Errorf("resume %s: %w", cfg.Name, err)
	}
	if s := cfg.Standby; s != nil {
		mem, err := s.claim(cfg, saved, shape)
		if err == nil {
			return vm.resumed(vm.resume(ctx, start, func(ctx context.Context) error { return resumeStandby(ctx, vm, s, mem) }))
		}
		vm.logf("standby QEMU not used: %v", err)
		s.Close()
	}
	f, err := os.Open(saved.State)
	if err != nil {
		vm.stop(StateDead)
		return nil, fmt.Errorf("resume %s: %w", cfg.Name, err)
	}
	defer f.Close()
	template := saved.Memory != ""
	if template {
		var mem *os.File
		switch {
		case cfg.RAMDir != "":
			mem, err = memfile.Copy(cfg.RAMDir, saved.Memory)
		case unix.Access(saved.Memory, unix.W_OK) != nil:
			// QEMU opens a memory file for writing, even to map it
			// privately: one it cannot (a cache mounted read-only) is
			// mapped through a copy of the VM's own.
			mem, err = memfile.Copy(cfg.Dir, saved.Memory)
		default:
			mem, err = os.Open(saved.Memory)
		}
		if err != nil {
			vm.stop(StateDead)
			return nil, fmt.Errorf("resume %s: %w", cfg.Name, err)
		}
		vm.mem, vm.memShared = mem, cfg.RAMDir != ""
	}
	return vm.resumed(vm.resume(ctx, start, func(ctx context.Context) error { return vm.start(ctx, f, template) }))
}

// resumed is Resume's result: the VM, unless its resume failed.
func (vm *VM) resumed(err error) (*VM, error) {
	if err != nil {
		return nil, err
	}
	return vm, nil
}

// resume runs start, the part of a resume that starts the VM, under
// ResumeTimeout.
func (vm *VM) resume(ctx context.Context, began time.Time, start func(context.Context) error) error {
	if vm.cfg.Debug.GDB && vm.cfg.Debug.Wait {
		vm.runTimeout = ResumeTimeout
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ResumeTimeout)
		defer cancel()
	}
	vm.setStarting(true)
	defer vm.setStarting(false)
	if err := start(ctx); err != nil {
		return vm.bootError("resume", err, ResumeTimeout)
	}
	if vm.cfg.OnReady != nil {
		vm.cfg.OnReady(true, time.Since(began))
	}
	return nil
}
