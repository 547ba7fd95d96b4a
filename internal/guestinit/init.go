// Package guestinit is the guest's first process: /provium/init in the
// initramfs, run by the kernel as PID 1 (rdinit=/provium/init).
//
// It does the least the agent needs and gets out of the way, because every
// millisecond here is paid by every boot:
//
//  1. mount /proc, /sys, /dev (devtmpfs) and /dev/pts;
//  2. load the kernel modules listed in boot.ModulesList, one path per
//     line in load order (the transport's drivers, when they are not built
//     into the kernel);
//  3. read its settings from the kernel command line (boot.Params) and, for
//     a profile that boots a disk image, make that disk the root file
//     system;
//  4. bring up the network cards and set the hostname the command line
//     asks for (package guestnet);
//  5. start the agent: this same binary run as boot.AgentName, with
//     /dev/console as its standard streams (the agent reads the
//     transport's settings from the command line itself);
//  6. exec the real init (provium.init=, default /sbin/init) so that it runs
//     as PID 1, leaving beside it a supervisor (boot.SupervisorName) that
//     runs the agent and restarts it if it dies. Without a real init it
//     stays PID 1 itself: it reaps every orphan and restarts the agent.
//
// It prints to the console only when something goes wrong.
package guestinit

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/guestnet"
	"github.com/provium/provium/internal/wire/boot"
)

// Main is the guest's init. It never returns.
func Main() {
	mountEarly()
	ensureStdio()
	ignoreSignals()
	setDefaultEnv()
	loadModules(boot.ModulesList, loadModule)
	cfg := readParams()
	if cfg.Root != "" {
		if err := switchRoot(cfg.Root); err != nil {
			logf("root %s: %v; staying in the initramfs", cfg.Root, err)
		}
	}
	if cfg.Hostname != "" || len(cfg.NICs) > 0 {
		if err := guestnet.Configure(cfg.Hostname, cfg.NICs); err != nil {
			logf("network: %v", err)
		}
	}
	if len(cfg.NICs) > 0 {
		if err := guestnet.MakeHostsWritable(); err != nil {
			logf("network: %v", err)
		}
	}

	path, ok := realInit(cfg.Init)
	if !ok {
		pid, err := startAgent("")
		if err != nil {
			logf("%v", err)
		}
		supervise(pid)
	}
	// The real init will not restart an agent that dies: a supervisor
	// of provium's own does.
	if _, err := start([]string{boot.SupervisorName}); err != nil {
		logf("%v", err)
		if _, err := startAgent(""); err != nil {
			logf("%v", err)
		}
	}
	argv := append([]string{path}, os.Args[1:]...)
	err := unix.Exec(path, argv, os.Environ())
	logf("exec %s: %v; staying PID 1", path, err)
	supervise(0)
}

// ignoreSignals catches the signals whose default action would end PID 1.
// Go turns an uncaught SIGTERM into an exit, and init exiting panics the
// kernel. Caught rather than ignored: ignored signals stay ignored across
// exec, and the agent and its commands must get the defaults.
func ignoreSignals() {
	c := make(chan os.Signal, 8)
	signal.Notify(c, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE, syscall.SIGALRM,
		syscall.SIGPWR, syscall.SIGVTALRM, syscall.SIGXCPU, syscall.SIGXFSZ)
	go func() {
		for range c {
		}
	}()
}

// defaultPath is the PATH of a guest whose kernel gave init none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// setDefaultEnv gives the agent, and the commands it runs, a PATH: the
// kernel starts init with only HOME and TERM.
func setDefaultEnv() {
	if os.Getenv("PATH") == "" {
		os.Setenv("PATH", defaultPath)
	}
}
