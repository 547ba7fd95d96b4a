package linuxabi

import (
	"bufio"
	"errors"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestSyscallNumbers(t *testing.T) {
	for _, tc := range []struct {
		arch Arch
		name string
		nr   int
	}{
		{X86_64, "read", 0},
		{X86_64, "getpid", 39},
		{X86_64, "getppid", 110},
		{X86_64, "setresuid", 117},
		{X86_64, "openat", 257},
		{X86_64, "finit_module", 313},
		{X86_64, "memfd_create", 319},
		{X86_64, "clone3", 435},
		// arm64, from the generic table's documented numbers.
		{ARM64, "io_setup", 0},
		{ARM64, "openat", 56},
		{ARM64, "setresuid", 147},
		{ARM64, "getpid", 172},
		{ARM64, "getppid", 173},
		{ARM64, "finit_module", 273},
		{ARM64, "memfd_create", 279},
		{ARM64, "clone3", 435},
		// Present because arch/arm64/include/uapi/asm/unistd.h asks
		// for them with __ARCH_WANT_*.
		{ARM64, "renameat", 38},
		{ARM64, "newfstatat", 79},
		{ARM64, "fstat", 80},
		{ARM64, "getrlimit", 163},
		{ARM64, "memfd_secret", 447},
	} {
		nr, ok := SyscallNumber(tc.arch, tc.name)
		if !ok || nr != tc.nr {
			t.Errorf("SyscallNumber(%s, %q) = %d, %v; want %d", tc.arch, tc.name, nr, ok, tc.nr)
		}
		if name, ok := syscallName(tc.arch, tc.nr); !ok || name != tc.name {
			t.Errorf("syscallName(%s, %d) = %q, %v; want %q", tc.arch, tc.nr, name, ok, tc.name)
		}
	}
}

func TestSyscallsAbsent(t *testing.T) {
	for _, tc := range []struct {
		arch Arch
		name string
		why  string
	}{
		{ARM64, "open", "the generic table has only openat"},
		{ARM64, "fork", "the generic table has only clone"},
		{ARM64, "stat", "the generic table has only newfstatat and fstat"},
		{ARM64, "syscalls", "__NR_syscalls is the size of the table"},
		{ARM64, "arch_specific_syscall", "a marker of the generic table"},
		{ARM64, "fstat64", "a 32-bit system call"},
		{ARM64, "clock_gettime64", "a 32-bit system call"},
	} {
		if nr, ok := SyscallNumber(tc.arch, tc.name); ok {
			t.Errorf("SyscallNumber(%s, %q) = %d; want none: %s", tc.arch, tc.name, nr, tc.why)
		}
	}
	// x32 system calls are numbered from 512 (__X32_SYSCALL_BIT aside).
	for name, nr := range Syscalls(X86_64) {
		if nr >= 512 {
			t.Errorf("x86_64 %s = %d: an x32 entry", name, nr)
		}
	}
}

func TestSyscallTablesInvert(t *testing.T) {
	for _, a := range arches {
		calls := Syscalls(a)
		if len(calls) < 300 {
			t.Errorf("%s has %d system calls; want at least 300", a, len(calls))
		}
		for name, nr := range calls {
			if got, ok := syscallName(a, nr); !ok || got != name {
				t.Errorf("syscallName(%s, %d) = %q, %v; want %q", a, nr, got, ok, name)
			}
		}
	}
}

func TestUnknownArch(t *testing.T) {
	const a Arch = "mips"
	if m := Syscalls(a); m != nil {
		t.Errorf("Syscalls(%s) has %d entries; want nil", a, len(m))
	}
	if m := Constants(a); m != nil {
		t.Errorf("Constants(%s) has %d entries; want nil", a, len(m))
	}
	if _, ok := SyscallNumber(a, "read"); ok {
		t.Errorf("SyscallNumber(%s, read) found a number", a)
	}
	if _, ok := syscallName(a, 0); ok {
		t.Errorf("syscallName(%s, 0) found a name", a)
	}
	if _, ok := constant(a, "O_RDONLY"); ok {
		t.Errorf("constant(%s, O_RDONLY) found a value", a)
	}
}

func TestMapsAreCopies(t *testing.T) {
	Syscalls(X86_64)["openat"] = -1
	Constants(X86_64)["AT_FDCWD"] = 1
	Errnos()["ENOENT"] = 99
	if nr, _ := SyscallNumber(X86_64, "openat"); nr != 257 {
		t.Errorf("changing Syscalls' map changed openat to %d", nr)
	}
	if v, _ := constant(X86_64, "AT_FDCWD"); v != -100 {
		t.Errorf("changing Constants' map changed AT_FDCWD to %d", v)
	}
	if n, _ := errnoNumber("ENOENT"); n != 2 {
		t.Errorf("changing Errnos' map changed ENOENT to %d", n)
	}
}

func TestErrnos(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
	}{
		{"EPERM", 1},
		{"ENOENT", 2},
		{"EBADF", 9},
		{"EAGAIN", 11},
		{"EWOULDBLOCK", 11},
		{"EACCES", 13},
		{"EEXIST", 17},
		{"EINVAL", 22},
		{"EDEADLK", 35},
		{"EDEADLOCK", 35},
		{"ENOSYS", 38},
		{"EOPNOTSUPP", 95},
		{"EHWPOISON", 133},
	} {
		if n, ok := errnoNumber(tc.name); !ok || n != tc.n {
			t.Errorf("errnoNumber(%q) = %d, %v; want %d", tc.name, n, ok, tc.n)
		}
	}
	if n, ok := errnoNumber("ENOTSUP"); ok {
		t.Errorf("errnoNumber(ENOTSUP) = %d; want none: a C library alias", n)
	}
}

func TestErrnoName(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string // "" for none
	}{
		{2, "ENOENT"},
		{-2, "ENOENT"},
		{38, "ENOSYS"},
		{-38, "ENOSYS"},
		{11, "EAGAIN"},  // not EWOULDBLOCK
		{-11, "EAGAIN"}, // not EWOULDBLOCK
		{35, "EDEADLK"}, // not EDEADLOCK
		{95, "EOPNOTSUPP"},
		{133, "EHWPOISON"},
		{0, ""},
		{41, ""}, // unassigned
		{58, ""}, // unassigned
		{134, ""},
		{4095, ""},
		{math.MaxInt, ""},
		{math.MinInt, ""},
	} {
		got, ok := ErrnoName(tc.n)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("ErrnoName(%d) = %q, %v; want %q", tc.n, got, ok, tc.want)
		}
	}
}

func TestErrnoNamesInvert(t *testing.T) {
	for name, n := range Errnos() {
		primary, ok := ErrnoName(n)
		if !ok {
			t.Errorf("ErrnoName(%d) for %s: no name", n, name)
			continue
		}
		if p, _ := errnoNumber(primary); p != n {
			t.Errorf("ErrnoName(%d) = %s, which is %d", n, primary, p)
		}
	}
	if n := len(Errnos()); n < 130 {
		t.Errorf("%d error names; want at least 130", n)
	}
}

func TestConstants(t *testing.T) {
	for _, tc := range []struct {
		arch Arch
		name string
		want int64
	}{
		{X86_64, "AT_FDCWD", -100},
		{X86_64, "AT_SYMLINK_NOFOLLOW", 0x100},
		{X86_64, "AT_REMOVEDIR", 0x200},
		{X86_64, "AT_EMPTY_PATH", 0x1000},
		{X86_64, "O_RDONLY", 0},
		{X86_64, "O_CREAT", 0o100},
		{X86_64, "O_CLOEXEC", 0o2000000},
		{X86_64, "O_DIRECTORY", 0o200000},
		{X86_64, "O_NOFOLLOW", 0o400000},
		{X86_64, "O_DIRECT", 0o40000},
		{X86_64, "O_LARGEFILE", 0o100000},
		{X86_64, "O_TMPFILE", 0o20000000 | 0o200000},
		{X86_64, "F_GETFD", 1},
		{X86_64, "F_ADD_SEALS", 1024 + 9},
		{X86_64, "FD_CLOEXEC", 1},
		{X86_64, "CLONE_NEWUSER", 0x10000000},
		{X86_64, "CLONE_INTO_CGROUP", 0x200000000},
		{X86_64, "MFD_CLOEXEC", 1},
		{X86_64, "MFD_HUGE_2MB", 21 << 26},
		{X86_64, "CAP_CHOWN", 0},
		{X86_64, "CAP_SYS_ADMIN", 21},
		{X86_64, "CAP_LAST_CAP", 40},
		{X86_64, "PROT_READ", 1},
		{X86_64, "MAP_ANONYMOUS", 0x20},
		{X86_64, "MAP_32BIT", 0x40},
		{X86_64, "SIGKILL", 9},
		{X86_64, "SIGCHLD", 17},
		{X86_64, "SIGRTMIN", 32},
		{X86_64, "S_IFDIR", 0o40000},
		{X86_64, "S_IFMT", 0o170000},
		{X86_64, "SEEK_DATA", 3},
		{X86_64, "EFD_CLOEXEC", 0o2000000},
		{X86_64, "SOCK_STREAM", 1},
		{X86_64, "SOCK_NONBLOCK", 0o4000},
		{X86_64, "AF_UNIX", 1},
		{X86_64, "AF_INET6", 10},
		{X86_64, "AF_VSOCK", 40},
		{X86_64, "MS_NOUSER", math.MinInt32}, // (1<<31), an int
		{X86_64, "LOOP_CTL_GET_FREE", 0x4C82},
		{X86_64, "PR_SET_NO_NEW_PRIVS", 38},
		{X86_64, "RLIMIT_NOFILE", 7},
		{X86_64, "WNOHANG", 1},
		// arm64 differs from the generic values in arch/arm64/include/uapi/asm/fcntl.h.
		{ARM64, "O_DIRECTORY", 0o40000},
		{ARM64, "O_NOFOLLOW", 0o100000},
		{ARM64, "O_DIRECT", 0o200000},
		{ARM64, "O_LARGEFILE", 0o400000},
		{ARM64, "O_TMPFILE", 0o20000000 | 0o40000},
		{ARM64, "O_CLOEXEC", 0o2000000},
		{ARM64, "AT_FDCWD", -100},
		{ARM64, "CAP_SYS_ADMIN", 21},
		{ARM64, "PROT_BTI", 0x10},
		{ARM64, "SIGSTKSZ", 16384},
		{ARM64, "SIGKILL", 9},
		{ARM64, "SOCK_CLOEXEC", 0o2000000},
	} {
		if v, ok := constant(tc.arch, tc.name); !ok || v != tc.want {
			t.Errorf("constant(%s, %s) = %#x, %v; want %#x", tc.arch, tc.name, v, ok, tc.want)
		}
	}
}

// TestConstantsDifferByArch pins where x86_64 and arm64 differ, so that a
// generator that read one architecture's headers for the other shows here.
func TestConstantsDifferByArch(t *testing.T) {
	x86, arm := Constants(X86_64), Constants(ARM64)
	wantDiff := map[string]bool{
		"O_DIRECT": true, "O_DIRECTORY": true, "O_LARGEFILE": true, "O_NOFOLLOW": true, "O_TMPFILE": true,
		"MINSIGSTKSZ": true, "SIGSTKSZ": true,
	}
	wantOnly := map[Arch][]string{X86_64: {"MAP_32BIT"}, ARM64: {"PROT_BTI", "PROT_MTE"}}
	for name, v := range x86 {
		w, ok := arm[name]
		if !ok {
			continue
		}
		if (v != w) != wantDiff[name] {
			t.Errorf("%s is %#x on x86_64 and %#x on arm64; want them %s", name, v, w, map[bool]string{true: "different", false: "equal"}[wantDiff[name]])
		}
	}
	only := map[Arch][]string{}
	for name := range x86 {
		if _, ok := arm[name]; !ok {
			only[X86_64] = append(only[X86_64], name)
		}
	}
	for name := range arm {
		if _, ok := x86[name]; !ok {
			only[ARM64] = append(only[ARM64], name)
		}
	}
	for _, a := range arches {
		slices.Sort(only[a])
		if !slices.Equal(only[a], wantOnly[a]) {
			t.Errorf("constants only on %s: %v; want %v", a, only[a], wantOnly[a])
		}
	}
}

func TestIOC(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func() (uint32, error)
		want uint32
	}{
		// RNDGETENTCNT _IOR('R', 0x00, int), RNDADDTOENTCNT _IOW('R', 0x01, int)
		// and RNDZAPENTCNT _IO('R', 0x04) of include/uapi/linux/random.h.
		{"IOR RNDGETENTCNT", func() (uint32, error) { return ioR(0x52, 0x00, 4) }, 0x80045200},
		{"IOW RNDADDTOENTCNT", func() (uint32, error) { return ioW(0x52, 0x01, 4) }, 0x40045201},
		{"IO 0x5206", func() (uint32, error) { return io(0x52, 0x06) }, 0x5206},
		// LOOP_CTL_GET_FREE, a plain number in include/uapi/linux/loop.h, is
		// _IO('L', 0x82).
		{"IO LOOP_CTL_GET_FREE", func() (uint32, error) { return io('L', 0x82) }, 0x4C82},
		// FICLONE _IOW(0x94, 9, int) and FS_IOC_GETFLAGS _IOR('f', 1, long).
		{"IOW FICLONE", func() (uint32, error) { return ioW(0x94, 9, 4) }, 0x40049409},
		{"IOR FS_IOC_GETFLAGS", func() (uint32, error) { return ioR('f', 1, 8) }, 0x80086601},
		// FS_IOC_GETFSLABEL _IOR(0x94, 49, char[256]) and a read-write one.
		{"IOR size 256", func() (uint32, error) { return ioR(0x94, 49, 256) }, 0x81009431},
		{"IOWR", func() (uint32, error) { return ioWR('X', 0x10, 0x18) }, 0xC0185810},
		{"IOC none", func() (uint32, error) { return IOC(IOCNone, 0, 0, 0) }, 0},
		{"IOC largest", func() (uint32, error) { return IOC(3, 255, 255, 1<<14-1) }, 0xFFFFFFFF},
	} {
		got, err := tc.f()
		if err != nil || got != tc.want {
			t.Errorf("%s = %#x, %v; want %#x", tc.name, got, err, tc.want)
		}
	}
}

func TestIOCRange(t *testing.T) {
	for _, tc := range []struct {
		name               string
		dir, typ, nr, size uint32
	}{
		{"dir 4", 4, 0, 0, 0},
		{"type 256", IOCRead, 256, 0, 0},
		{"nr 256", IOCRead, 0, 256, 0},
		{"size 1<<14", IOCRead, 0, 0, 1 << 14},
		{"size max", IOCRead, 0, 0, math.MaxUint32},
	} {
		if got, err := IOC(tc.dir, tc.typ, tc.nr, tc.size); !errors.Is(err, ErrIOCRange) {
			t.Errorf("IOC %s = %#x, %v; want ErrIOCRange", tc.name, got, err)
		}
	}
	if _, err := ioR('R', 0, 1<<14); !errors.Is(err, ErrIOCRange) {
		t.Errorf("IOR with size 1<<14: %v; want ErrIOCRange", err)
	}
	if _, err := io(0x100, 0); !errors.Is(err, ErrIOCRange) {
		t.Errorf("IO with type 0x100: %v; want ErrIOCRange", err)
	}
}

// TestGeneratedHeaders checks that every generated file says it is
// generated, and from the kernel KernelVersion names.
func TestGeneratedHeaders(t *testing.T) {
	header := regexp.MustCompile(`^// Code generated .* from Linux ` + regexp.QuoteMeta(KernelVersion) + ` .*DO NOT EDIT\.$`)
	for _, f := range []string{
		"zversion.go", "zerrno.go",
		"zsyscalls_x86_64.go", "zsyscalls_aarch64.go",
		"zconst_x86_64.go", "zconst_aarch64.go",
	} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Error(err)
			continue
		}
		first, _, _ := strings.Cut(string(b), "\n")
		if !header.MatchString(first) {
			t.Errorf("%s starts %q; want a generated-code header naming Linux %s", f, first, KernelVersion)
		}
	}
}

// hostUnistd64 is the x86_64 system call header of the host's kernel
// headers (Debian's linux-libc-dev), generated by the kernel's build from
// the same table by its own scripts.
const hostUnistd64 = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"

func TestX86_64AgainstHostHeaders(t *testing.T) {
	f, err := os.Open(hostUnistd64)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s is absent (install linux-libc-dev to compare with it)", hostUnistd64)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	define := regexp.MustCompile(`^#define __NR_([a-z0-9_]+)\s+([0-9]+)\s*$`)
	host := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := define.FindStringSubmatch(sc.Text()); m != nil {
			n, _ := strconv.Atoi(m[2])
			host[m[1]] = n
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	ours := Syscalls(X86_64)
	matched := 0
	for name, n := range host {
		nr, ok := ours[name]
		if !ok {
			t.Logf("%s is in %s but not in Linux %s", name, hostUnistd64, KernelVersion)
			continue
		}
		matched++
		if nr != n {
			t.Errorf("%s is %d; %s says %d", name, nr, hostUnistd64, n)
		}
	}
	for name := range ours {
		if _, ok := host[name]; !ok {
			t.Logf("%s is in Linux %s but not in %s", name, KernelVersion, hostUnistd64)
		}
	}
	if matched < 300 {
		t.Errorf("only %d system calls in common with %s; want at least 300", matched, hostUnistd64)
	}
}
func TestParseArch(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Arch
	}{
		{"x86_64", X86_64},
		{"amd64", X86_64},
		{"arm64", ARM64},
		{"aarch64", ARM64},
		{"aarch64\n", ARM64}, // uname -m output as read
		{"X86_64", X86_64},
	} {
		got, err := ParseArch(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseArch(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "i386", "x86", "riscv64", "arm"} {
		if got, err := ParseArch(in); !errors.Is(err, ErrUnknownArch) {
			t.Errorf("ParseArch(%q) = %q, %v; want ErrUnknownArch", in, got, err)
		}
	}
}
