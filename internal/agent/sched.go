package agent

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Scheduling policies, per thread, with the raw system calls: x/sys/unix
// wraps only sched_setattr, which would also reset the nice value.

// getSched returns the policy and real-time priority of thread tid (0: the
// calling thread).
func getSched(tid int) (policy, priority int, err error) {
	p, _, e := unix.RawSyscall(unix.SYS_SCHED_GETSCHEDULER, uintptr(tid), 0, 0)
	if e != 0 {
		return 0, 0, fmt.Errorf("sched_getscheduler: %w", e)
	}
	var param int32
	if _, _, e := unix.RawSyscall(unix.SYS_SCHED_GETPARAM, uintptr(tid), uintptr(unsafe.Pointer(&param)), 0); e != 0 {
		return 0, 0, fmt.Errorf("sched_getparam: %w", e)
	}
	return int(p), int(param), nil
}

// setSched sets the policy and real-time priority of thread tid (0: the
// calling thread). Its nice value stays as it is.
func setSched(tid, policy, priority int) error {
	param := int32(priority)
	if _, _, e := unix.RawSyscall(unix.SYS_SCHED_SETSCHEDULER, uintptr(tid), uintptr(policy), uintptr(unsafe.Pointer(&param))); e != 0 {
		return fmt.Errorf("sched_setscheduler: %w", e)
	}
	return nil
}

// setProcessSched sets the policy of every thread of process pid. A thread
// that ends meanwhile is no error.
func setProcessSched(pid, policy, priority int) error {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := setSched(tid, policy, priority); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	return nil
}
