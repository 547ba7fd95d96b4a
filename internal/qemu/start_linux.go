package qemu

import (
	"fmt"
	"os/exec"
	"runtime"
)

// startLocked starts cmd from a goroutine locked to its own OS thread and
// waits for it there, returning a channel that receives cmd.Wait's result.
//
// Pdeathsig is delivered when the thread that forked the child exits, not
// the process. The Go runtime retires threads freely, so a QEMU started
// from an ordinary goroutine would be killed at some arbitrary later
// moment. The locked thread lives exactly as long as QEMU: it is only
// released (and, being locked, destroyed) after QEMU has exited.
//
// When background is set, QEMU is forked at the lowest priority
// (priority_linux.go).
func startLocked(cmd *exec.Cmd, background bool) (<-chan error, error) {
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread ends with this goroutine.
		if background {
			if err := lowerThread(); err != nil {
				started <- fmt.Errorf("lower the priority: %w", err)
				return
			}
		}
		err := cmd.Start()
		if background {
			// QEMU has its own copy; this thread, which only waits
			// for it, goes back to the usual one.
			raiseThread()
		}
		if err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return exited, nil
}
