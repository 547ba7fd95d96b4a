package guestinit

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/agent"
	"github.com/provium/provium/internal/wire/boot"
)

// restartGap spaces restarts of an agent that keeps dying.
const restartGap = 250 * time.Millisecond

// startAgent starts this binary as the agent, told how the agent before
// it ended ("" for the first).
func startAgent(restarted string) (int, error) {
	args := []string{boot.AgentName}
	if restarted != "" {
		args = append(args, agent.RestartedFlag+restarted)
	}
	return start(args)
}

// start runs this binary as argv[0] in a session of its own (no terminal
// signals from the real init's console), with /dev/console as its
// standard streams.
func start(argv []string) (int, error) {
	files := []uintptr{0, 1, 2}
	if fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0); err == nil {
		defer unix.Close(fd)
		files = []uintptr{uintptr(fd), uintptr(fd), uintptr(fd)}
	}
	pid, err := syscall.ForkExec("/proc/self/exe", argv, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: files,
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", argv[0], err)
	}
	return pid, nil
}

// SupervisorMain is the process that keeps the agent running beside a
// real init, which would not restart it: it starts the agent and starts it
// again whenever it ends. It never returns.
func SupervisorMain() {
	ignoreSignals()
	pid, err := startAgent("")
	if err != nil {
		logf("%v", err)
	}
	supervise(pid)
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

// supervise restarts the agent whenever it ends, telling the new one how
// the old one did, and reaps every process that ends up as its child (as
// PID 1 without a real init, that is every orphan of the guest). A first
// restart is at once, so that a host waiting on the dead agent hears why
// soon; an agent that keeps dying is restarted at most every restartGap.
func supervise(agentPID int) {
	started := time.Now()
	restarted := ""
	for {
		if agentPID <= 0 {
			if d := restartGap - time.Since(started); d > 0 {
				time.Sleep(d)
			}
			var err error
			agentPID, err = startAgent(restarted)
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
			restarted = endOf(ws)
			if time.Since(started) > restartGap {
				started = time.Time{} // it ran a while: restart at once
			}
		}
	}
}

// endOf says how an agent ended, for the one that replaces it.
func endOf(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("had exited with status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("was killed by signal %d", int(ws.Signal()))
	default:
		return fmt.Sprintf("had ended with status %#x", uint32(ws))
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
