package machine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/qemu"
)

// A template resume spends most of its time before the guest runs a
// single instruction: QEMU's own start, 90-110 ms to its QMP greeting
// under emulation, and loading the devices' state. A Standby does both
// ahead of need. Its guest's CPUs never run before a resume claims it,
// so it is the snapshot exactly as saved; and since the files it loaded
// may change before then (an entry rebuilt, a file corrupted), the claim
// checks that they are still the ones it loaded, and resumes the usual
// way when they are not.

// Standby is a QEMU that has loaded a template snapshot and waits, paused,
// for Resume to claim it (Config.Standby). Close ends it when no resume
// will.
type Standby struct {
	saved   Saved
	shape   Shape
	loaded  [2]fileID // saved.State's and saved.Memory's, as loaded
	tr      transport
	proc    *qemu.Process
	console *handoff

	mu    sync.Mutex
	mem   *os.File // the RAM file, mapped privately; the claiming VM's once claimed
	ended bool     // claimed or closed
}

// standbyConsole bounds what a standby's console keeps before its claim:
// a guest that has not run prints nothing, so more is QEMU's trouble.
const standbyConsole = 64 << 10

// CanStandby says why a resume of saved as shape cannot be prepared
// before its VM exists (PrepareResume), nil if it can. Only a VM with
// nothing of its own can: not one with network cards or disks, nor one
// resumed from a stream snapshot or through a copy of its RAM file.
func CanStandby(saved Saved, shape Shape) error {
	switch {
	case saved.Memory == "":
		return errors.New("standby: not a template snapshot")
	case len(shape.NICs) > 0:
		return errors.New("standby: network cards are the resumed VM's own")
	case len(shape.Disks) > 0:
		return errors.New("standby: disks are the resumed VM's own")
	case unix.Access(saved.Memory, unix.W_OK) != nil:
		// Resume maps a read-only RAM file through a copy of the VM's own.
		return errors.New("standby: the RAM file is read-only")
	}
	return nil
}

// PrepareResume starts a QEMU for shape that loads template snapshot
// saved and waits; CanStandby says which resumes it can serve.
func PrepareResume(ctx context.Context, saved Saved, shape Shape) (*Standby, error) {
	if err := CanStandby(saved, shape); err != nil {
		return nil, err
	}
	state, err := os.Open(saved.State)
	if err != nil {
		return nil, fmt.Errorf("standby: %w", err)
	}
	defer state.Close() // QEMU has its own copy once started
	mem, err := os.Open(saved.Memory)
	if err != nil {
		return nil, fmt.Errorf("standby: %w", err)
	}
	s := &Standby{saved: saved, shape: shape, mem: mem, console: &handoff{max: standbyConsole}}
	for i, f := range []*os.File{state, mem} {
		if s.loaded[i], err = identify(f.Stat()); err != nil {
			mem.Close()
			return nil, fmt.Errorf("standby: %w", err)
		}
	}
	if s.tr, err = newTransport(shape.Transport); err != nil {
		mem.Close()
		return nil, fmt.Errorf("standby: %w", err)
	}
	cfg := shape.qemuConfig(s.tr.device(), nil)
	cfg.Console, cfg.Incoming, cfg.Template, cfg.Memory = s.console, state, true, mem
	// Ahead of need, it takes only CPU time nothing else wants, where
	// it can be given the usual priority back when claimed.
	cfg.Background = qemu.CanBackground()
	if s.proc, err = qemu.Start(ctx, cfg); err != nil {
		s.Close()
		return nil, fmt.Errorf("standby: %w", err)
	}
	if err := s.proc.WaitIncoming(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("standby: restore snapshot: %w", err)
	}
	return s, nil
}

// Pid is the standby's QEMU process ID.
func (s *Standby) Pid() int { return s.proc.Pid() }

// Close kills the standby's QEMU, unless a resume claimed it. Closing
// twice is harmless.
func (s *Standby) Close() {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	mem := s.mem
	s.mem = nil
	s.mu.Unlock()
	if s.proc != nil {
		s.proc.Kill()
		s.proc.Wait()
	}
	if s.tr != nil {
		s.tr.close()
	}
	if mem != nil {
		mem.Close()
	}
}

// claim hands the standby to a resume of saved as shape for cfg, or says
// why it cannot serve that resume.
func (s *Standby) claim(cfg Config, saved Saved, shape Shape) (*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.ended:
		return nil, errors.New("it was claimed or closed before")
	case saved != s.saved:
		return nil, fmt.Errorf("it loaded %s, not %s", s.saved.State, saved.State)
	case !reflect.DeepEqual(shape, s.shape):
		return nil, errors.New("it has another machine shape")
	case cfg.RAMDir != "":
		return nil, errors.New("the VM's RAM is to be saved in turn")
	case cfg.Debug.GDB:
		return nil, errors.New("the VM has a debugger")
	case len(cfg.NICSockets) > 0:
		return nil, errors.New("the VM has network cards")
	}
	if exit := s.proc.Exit(); exit != nil {
		return nil, fmt.Errorf("its QEMU ended: %w", exit)
	}
	for i, path := range []string{saved.State, saved.Memory} {
		now, err := identify(os.Stat(path))
		if err != nil {
			return nil, err
		}
		if now != s.loaded[i] {
			return nil, fmt.Errorf("%s changed after it was loaded", path)
		}
	}
	// Needed now: the usual priority, or not at all.
	if err := s.proc.Foreground(); err != nil {
		return nil, err
	}
	s.ended = true
	mem := s.mem
	s.mem = nil
	return mem, nil
}

// resumeStandby is Resume through standby s, which claim gave mem.
func resumeStandby(ctx context.Context, vm *VM, s *Standby, mem *os.File) error {
	vm.mu.Lock()
	vm.mem, vm.memShared = mem, false
	vm.mu.Unlock()
	defer s.tr.close()
	vm.logf("resuming in QEMU %d, which had loaded the snapshot ahead of need", s.proc.Pid())
	s.console.attach(vm.console)
	vm.adopt(s.proc)
	return vm.run(ctx, s.tr, true)
}

// fileID tells one version of a file from another: the same file
// rewritten in place has another size or modification time, one renamed
// over it another inode.
type fileID struct {
	dev, ino uint64
	size     int64
	mtime    syscall.Timespec
}

func identify(fi os.FileInfo, err error) (fileID, error) {
	if err != nil {
		return fileID{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, fmt.Errorf("%s: no inode to identify it by", fi.Name())
	}
	return fileID{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim}, nil
}

// handoff keeps what a standby's console prints until a VM claims it,
// then writes to the VM's console.
type handoff struct {
	mu  sync.Mutex
	max int
	buf []byte
	to  io.Writer
}

func (h *handoff) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.to != nil {
		return h.to.Write(p)
	}
	h.buf = append(h.buf, p[:min(len(p), h.max-len(h.buf))]...)
	return len(p), nil
}

func (h *handoff) attach(w io.Writer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.buf) > 0 {
		w.Write(h.buf)
	}
	h.buf, h.to = nil, w
}
