package agent

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// inherited is what a process inherits from the thread that forks it and a
// claim does not carry: everything else that a test can change through an
// identity's system calls and a worker would see. A spare stands in for a
// fork of the parent's thread only if that thread has the same as the
// thread the spare was forked from. Comparable with ==.
type inherited struct {
	ns     string          // the thread's namespace links, e.g. "mnt:[4026531841]"
	root   [2]uint64       // device and inode of the root directory
	limits [16]unix.Rlimit // RLIMIT_CPU .. RLIMIT_RTTIME
	cpus   unix.CPUSet     // affinity
	attrs  [len(attrProbes)]uintptr
	status string // the inheritedStatus fields of /proc/thread-self/status
	cgroup string // /proc/thread-self/cgroup
	oomAdj string // /proc/thread-self/oom_score_adj
}

// namespaces are those of the calling thread that a child gets.
var namespaces = [...]string{"cgroup", "ipc", "mnt", "net", "pid_for_children", "time_for_children", "user", "uts"}

// attrProbes are raw system calls that read one thread attribute each.
var attrProbes = [...][3]uintptr{
	{unix.SYS_PERSONALITY, 0xffffffff},
	{unix.SYS_GETPRIORITY, unix.PRIO_PROCESS, 0}, // who 0: the calling thread
	{unix.SYS_SCHED_GETSCHEDULER, 0},
	{unix.SYS_IOPRIO_GET, 1, 0}, // IOPRIO_WHO_PROCESS, the calling thread
	{unix.SYS_PRCTL, unix.PR_GET_SECUREBITS},
	{unix.SYS_PRCTL, unix.PR_GET_TIMERSLACK},
	{unix.SYS_PRCTL, unix.PR_GET_THP_DISABLE},
	{unix.SYS_PRCTL, unix.PR_GET_NO_NEW_PRIVS},
}

// inheritedStatus are the fields of /proc/thread-self/status that a child
// inherits and nothing else reads.
var inheritedStatus = map[string]bool{"CapBnd": true, "CapAmb": true, "Seccomp": true, "Seccomp_filters": true,
	"Speculation_Store_Bypass": true, "SpeculationIndirectBranch": true, "Mems_allowed": true}

// threadInherited reads what a fork of the calling thread would inherit and
// a claim does not carry, and the umask, which a claim does. Under an
// emulated CPU a lookup in /proc costs a hundred microseconds or more: this
// reads three files and eight links, a few milliseconds in all.
func threadInherited() (s inherited, umask int, err error) {
	var ns strings.Builder
	buf := make([]byte, 64)
	for _, name := range namespaces {
		if n, err := unix.Readlink("/proc/thread-self/ns/"+name, buf); err == nil {
			ns.Write(buf[:n])
		}
		ns.WriteByte(' ')
	}
	s.ns = ns.String()
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		return s, 0, fmt.Errorf("stat /: %w", err)
	}
	s.root = [2]uint64{st.Dev, st.Ino}
	for r := range s.limits {
		unix.Prlimit(0, r, nil, &s.limits[r])
	}
	unix.SchedGetaffinity(0, &s.cpus)
	for i, p := range attrProbes {
		r, _, e := unix.RawSyscall(p[0], p[1], p[2], 0)
		if e != 0 {
			r = ^uintptr(e)
		}
		s.attrs[i] = r
	}
	status, err := readProc("status")
	if err != nil {
		return s, 0, err
	}
	umask = -1
	var kept strings.Builder
	for rest := status; rest != ""; {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		key, value, _ := strings.Cut(line, ":")
		if key == "Umask" {
			n, err := strconv.ParseUint(strings.TrimSpace(value), 8, 32)
			if err != nil {
				return s, 0, fmt.Errorf("umask %q: %w", value, err)
			}
			umask = int(n)
		} else if inheritedStatus[key] {
			kept.WriteString(line)
		}
	}
	if umask < 0 {
		return s, 0, errors.New("no umask in /proc/thread-self/status")
	}
	s.status = kept.String()
	s.cgroup, _ = readProc("cgroup")
	s.oomAdj, _ = readProc("oom_score_adj")
	return s, umask, nil
}

// readProc reads a small file of /proc/thread-self with plain system calls
// on the calling thread.
func readProc(name string) (string, error) {
	fd, err := unix.Open("/proc/thread-self/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open /proc/thread-self/%s: %w", name, err)
	}
	defer unix.Close(fd)
	var b []byte
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read /proc/thread-self/%s: %w", name, err)
		}
		if n == 0 {
			return string(b), nil
		}
		b = append(b, buf[:n]...)
	}
}
