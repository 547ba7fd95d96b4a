package guestinit

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire/boot"
)

// restartGap spaces restarts of an agent that keeps dying.
const restartGap = 250 * time.Millisecond

// startAgent starts this binary as the agent, in a session of its own (no
// terminal signals from the real init's console), with /dev/console as its
// standard streams.
func startAgent() (int, error) {
	files := []uintptr{0, 1, 2}
	if fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0); err == nil {
		defer unix.Close(fd)
		files = []uintptr{uintptr(fd), uintptr(fd), uintptr(fd)}
	}
	pid, err := syscall.ForkExec("/proc/self/exe", []string{boot.AgentName}, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: files,
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", boot.AgentName, err)
	}
	return pid, nil
}

// realInit returns the init to exec, if there is one: an executable file
// that is not this binary (a provium.init pointing back at us would loop).
func realInit(path string) (string, bool) {
	if path == "" {
		path = boot.DefaultInit
	}
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return "", false
	}
	if self, err := os.Stat("/proc/self/exe"); err == nil && os.SameFile(st, self) {
		return "", false
	}
	return path, true
}

// supervise is PID 1 without a real init: it reaps every process that ends
// up as its child and restarts the agent when it exits.
func supervise(agentPID int) {
	started := time.Now()
	for {
		if agentPID <= 0 {
			if d := restartGap - time.Since(started); d > 0 {
				time.Sleep(d)
			}
			var err error
			agentPID, err = startAgent()
			started = time.Now()
			if err != nil {
				logf("%v", err)
			}
		}
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err != nil {
			if err != unix.EINTR {
				// ECHILD: no agent to wait for; try again shortly.
				time.Sleep(restartGap)
			}
			continue
		}
		if pid == agentPID {
			logf("agent exited (%s); restarting it", describe(ws))
			agentPID = 0
		}
	}
}

func describe(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return "signal: " + ws.Signal().String()
	default:
		return fmt.Sprintf("status %#x", uint32(ws))
	}
}
