package qemu

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// A QEMU started ahead of need (Config.Background) runs at the lowest CPU
// priority, so that it takes only CPU time nothing else wants, until
// Foreground gives it the usual one. Linux keeps a nice value for each
// thread, and a new thread or process takes its creator's: QEMU is
// forked from a thread of its own (startLocked) at nice 19, and all its
// threads are set back to 0 when it is needed.

// backgroundNice is the priority of a background QEMU.
const backgroundNice = 19

// lowerThread sets the calling thread, which must be locked to its
// goroutine, to the background priority.
func lowerThread() error {
	return unix.Setpriority(unix.PRIO_PROCESS, 0, backgroundNice)
}

// raiseThread gives the calling thread the usual priority back.
func raiseThread() error {
	return unix.Setpriority(unix.PRIO_PROCESS, 0, 0)
}

// CanBackground tells whether this process may start QEMU in the
// background (Config.Background): whether it may give a thread its usual
// priority back once lowered. An unprivileged one, whose RLIMIT_NICE
// forbids raising it, may not.
func CanBackground() bool { return canForeground() }

var canForeground = sync.OnceValue(func() bool {
	ok := make(chan bool)
	go func() {
		// Locked and never unlocked: the thread ends with the goroutine,
		// nice value and all.
		runtime.LockOSThread()
		if lowerThread() != nil {
			ok <- false
			return
		}
		ok <- raiseThread() == nil
	}()
	return <-ok
})

// Foreground gives every thread of a background QEMU the usual priority.
// A second pass catches a thread that one still in the background made
// during the first.
func (p *Process) Foreground() error {
	for range 2 {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p.Pid()))
		if err != nil {
			return fmt.Errorf("qemu: foreground: %w", err)
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			// A thread that ended meanwhile is no matter.
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, 0); err != nil && err != unix.ESRCH {
				return fmt.Errorf("qemu: foreground thread %d: %w", tid, err)
			}
		}
	}
	return nil
}
