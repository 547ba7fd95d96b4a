//go:build linux && (amd64 || arm64)

package linuxabi

import (
	"runtime"
	"syscall"
	"testing"
)

// These tests compare the tables of the build's own architecture with the
// constants of Go's syscall package, which Go generates from the C library
// headers of its own toolchain builders: an independent source, if an older
// one. The names listed are those syscall defines on both linux/amd64 and
// linux/arm64, so that this file builds on either.

func hostArch(t *testing.T) Arch {
	t.Helper()
	switch runtime.GOARCH {
	case "amd64":
		return X86_64
	case "arm64":
		return ARM64
	}
	t.Fatalf("no tables for %s", runtime.GOARCH)
	return ""
}

func TestErrnosMatchSyscallPackage(t *testing.T) {
	for _, tc := range []struct {
		name string
		want syscall.Errno
	}{
		{"EPERM", syscall.EPERM}, {"ENOENT", syscall.ENOENT},
		{"ESRCH", syscall.ESRCH}, {"EINTR", syscall.EINTR}, {"EIO", syscall.EIO},
		{"ENXIO", syscall.ENXIO}, {"E2BIG", syscall.E2BIG},
		{"ENOEXEC", syscall.ENOEXEC}, {"EBADF", syscall.EBADF},
		{"ECHILD", syscall.ECHILD}, {"EAGAIN", syscall.EAGAIN},
		{"EWOULDBLOCK", syscall.EWOULDBLOCK}, {"ENOMEM", syscall.ENOMEM},
		{"EACCES", syscall.EACCES}, {"EFAULT", syscall.EFAULT},
		{"ENOTBLK", syscall.ENOTBLK}, {"EBUSY", syscall.EBUSY},
		{"EEXIST", syscall.EEXIST}, {"EXDEV", syscall.EXDEV},
		{"ENODEV", syscall.ENODEV}, {"ENOTDIR", syscall.ENOTDIR},
		{"EISDIR", syscall.EISDIR}, {"EINVAL", syscall.EINVAL},
		{"ENFILE", syscall.ENFILE}, {"EMFILE", syscall.EMFILE},
		{"ENOTTY", syscall.ENOTTY}, {"ETXTBSY", syscall.ETXTBSY},
		{"EFBIG", syscall.EFBIG}, {"ENOSPC", syscall.ENOSPC},
		{"ESPIPE", syscall.ESPIPE}, {"EROFS", syscall.EROFS},
		{"EMLINK", syscall.EMLINK}, {"EPIPE", syscall.EPIPE},
		{"EDOM", syscall.EDOM}, {"ERANGE", syscall.ERANGE},
		{"EDEADLK", syscall.EDEADLK}, {"EDEADLOCK", syscall.EDEADLOCK},
		{"ENAMETOOLONG", syscall.ENAMETOOLONG}, {"ENOLCK", syscall.ENOLCK}} {
		if n, ok := errnoNumber(tc.name); !ok || n != int(tc.want) {
			t.Errorf("errnoNumber(%s) = %d, %v; syscall.%s is %d", tc.name, n, ok, tc.name, int(tc.want))
		}
	}
}

func TestConstantsMatchSyscallPackage(t *testing.T) {
	a := hostArch(t)
	// Left out: O_LARGEFILE, which syscall gives the C library's value on
	// 64-bit systems (0), and MS_RMT_MASK and AF_MAX, which grew after
	// syscall's tables were generated.
	for _, tc := range []struct {
		name string
		want int64
	}{
		{"O_ACCMODE", syscall.O_ACCMODE}, {"O_APPEND", syscall.O_APPEND},
		{"O_CLOEXEC", syscall.O_CLOEXEC}, {"O_CREAT", syscall.O_CREAT},
		{"O_DIRECT", syscall.O_DIRECT}, {"O_DIRECTORY", syscall.O_DIRECTORY},
		{"O_DSYNC", syscall.O_DSYNC}, {"O_EXCL", syscall.O_EXCL},
		{"O_NDELAY", syscall.O_NDELAY}, {"O_NOATIME", syscall.O_NOATIME},
		{"O_NOCTTY", syscall.O_NOCTTY}, {"O_NOFOLLOW", syscall.O_NOFOLLOW},
		{"O_NONBLOCK", syscall.O_NONBLOCK}, {"O_RDONLY", syscall.O_RDONLY},
		{"O_RDWR", syscall.O_RDWR}, {"O_SYNC", syscall.O_SYNC},
		{"O_TRUNC", syscall.O_TRUNC}, {"O_WRONLY", syscall.O_WRONLY},
		{"F_DUPFD", syscall.F_DUPFD}, {"F_DUPFD_CLOEXEC", syscall.F_DUPFD_CLOEXEC},
		{"F_EXLCK", syscall.F_EXLCK}, {"F_GETFD", syscall.F_GETFD},
		{"F_GETFL", syscall.F_GETFL}, {"F_GETLEASE", syscall.F_GETLEASE},
		{"F_GETLK", syscall.F_GETLK}, {"F_GETOWN", syscall.F_GETOWN},
		{"F_GETOWN_EX", syscall.F_GETOWN_EX},
		{"F_GETPIPE_SZ", syscall.F_GETPIPE_SZ}, {"F_GETSIG", syscall.F_GETSIG},
		{"F_NOTIFY", syscall.F_NOTIFY}, {"F_RDLCK", syscall.F_RDLCK},
		{"F_SETFD", syscall.F_SETFD}, {"F_SETFL", syscall.F_SETFL},
		{"F_SETLEASE", syscall.F_SETLEASE}, {"F_SETLK", syscall.F_SETLK},
		{"F_SETLKW", syscall.F_SETLKW}, {"F_SETOWN", syscall.F_SETOWN},
		{"F_SETOWN_EX", syscall.F_SETOWN_EX},
		{"F_SETPIPE_SZ", syscall.F_SETPIPE_SZ}, {"F_SETSIG", syscall.F_SETSIG},
		{"F_SHLCK", syscall.F_SHLCK}, {"F_UNLCK", syscall.F_UNLCK},
		{"F_WRLCK", syscall.F_WRLCK}, {"FD_CLOEXEC", syscall.FD_CLOEXEC},
		{"LOCK_EX", syscall.LOCK_EX}, {"LOCK_NB", syscall.LOCK_NB},
		{"LOCK_SH", syscall.LOCK_SH}, {"LOCK_UN", syscall.LOCK_UN},
		{"S_IFBLK", syscall.S_IFBLK}, {"S_IFCHR", syscall.S_IFCHR},
		{"S_IFDIR", syscall.S_IFDIR}, {"S_IFIFO", syscall.S_IFIFO},
		{"S_IFLNK", syscall.S_IFLNK}, {"S_IFMT", syscall.S_IFMT},
		{"S_IFREG", syscall.S_IFREG}, {"S_IFSOCK", syscall.S_IFSOCK},
		{"PROT_EXEC", syscall.PROT_EXEC},
		{"PROT_GROWSDOWN", syscall.PROT_GROWSDOWN},
		{"PROT_GROWSUP", syscall.PROT_GROWSUP}, {"PROT_NONE", syscall.PROT_NONE},
		{"PROT_READ", syscall.PROT_READ}, {"PROT_WRITE", syscall.PROT_WRITE},
		{"MAP_ANONYMOUS", syscall.MAP_ANONYMOUS},
		{"MAP_DENYWRITE", syscall.MAP_DENYWRITE},
		{"MAP_EXECUTABLE", syscall.MAP_EXECUTABLE}, {"MAP_FILE", syscall.MAP_FILE},
		{"MAP_FIXED", syscall.MAP_FIXED}, {"MAP_GROWSDOWN", syscall.MAP_GROWSDOWN},
		{"MAP_HUGETLB", syscall.MAP_HUGETLB}, {"MAP_LOCKED", syscall.MAP_LOCKED},
		{"MAP_NONBLOCK", syscall.MAP_NONBLOCK},
		{"MAP_NORESERVE", syscall.MAP_NORESERVE},
		{"MAP_POPULATE", syscall.MAP_POPULATE},
		{"MAP_PRIVATE", syscall.MAP_PRIVATE}, {"MAP_SHARED", syscall.MAP_SHARED},
		{"MAP_STACK", syscall.MAP_STACK}, {"MAP_TYPE", syscall.MAP_TYPE},
		{"MS_ACTIVE", syscall.MS_ACTIVE}, {"MS_ASYNC", syscall.MS_ASYNC},
		{"MS_BIND", syscall.MS_BIND}, {"MS_DIRSYNC", syscall.MS_DIRSYNC},
		{"MS_INVALIDATE", syscall.MS_INVALIDATE},
		{"MS_I_VERSION", syscall.MS_I_VERSION},
		{"MS_KERNMOUNT", syscall.MS_KERNMOUNT},
		{"MS_MANDLOCK", syscall.MS_MANDLOCK}, {"MS_MGC_MSK", syscall.MS_MGC_MSK},
		{"MS_MGC_VAL", syscall.MS_MGC_VAL}, {"MS_MOVE", syscall.MS_MOVE},
		{"MS_NOATIME", syscall.MS_NOATIME}, {"MS_NODEV", syscall.MS_NODEV},
		{"MS_NODIRATIME", syscall.MS_NODIRATIME}, {"MS_NOEXEC", syscall.MS_NOEXEC},
		{"MS_NOSUID", syscall.MS_NOSUID}, {"MS_NOUSER", syscall.MS_NOUSER},
		{"MS_POSIXACL", syscall.MS_POSIXACL}, {"MS_PRIVATE", syscall.MS_PRIVATE},
		{"MS_RDONLY", syscall.MS_RDONLY}, {"MS_REC", syscall.MS_REC},
		{"MS_RELATIME", syscall.MS_RELATIME}, {"MS_REMOUNT", syscall.MS_REMOUNT},
		{"MS_SHARED", syscall.MS_SHARED}, {"MS_SILENT", syscall.MS_SILENT},
		{"MS_SLAVE", syscall.MS_SLAVE}, {"MS_STRICTATIME", syscall.MS_STRICTATIME},
		{"MS_SYNC", syscall.MS_SYNC}, {"MS_SYNCHRONOUS", syscall.MS_SYNCHRONOUS},
		{"MS_UNBINDABLE", syscall.MS_UNBINDABLE},
		{"WCONTINUED", syscall.WCONTINUED}, {"WEXITED", syscall.WEXITED},
		{"WNOHANG", syscall.WNOHANG}, {"WNOWAIT", syscall.WNOWAIT},
		{"WSTOPPED", syscall.WSTOPPED}, {"WUNTRACED", syscall.WUNTRACED},
		{"SOCK_CLOEXEC", syscall.SOCK_CLOEXEC}, {"SOCK_DCCP", syscall.SOCK_DCCP},
		{"SOCK_DGRAM", syscall.SOCK_DGRAM},
		{"SOCK_NONBLOCK", syscall.SOCK_NONBLOCK},
		{"SOCK_PACKET", syscall.SOCK_PACKET}, {"SOCK_RAW", syscall.SOCK_RAW},
		{"SOCK_RDM", syscall.SOCK_RDM}, {"SOCK_SEQPACKET", syscall.SOCK_SEQPACKET},
		{"SOCK_STREAM", syscall.SOCK_STREAM}, {"AF_INET", syscall.AF_INET},
		{"AF_INET6", syscall.AF_INET6}, {"AF_NETLINK", syscall.AF_NETLINK},
		{"AF_PACKET", syscall.AF_PACKET}, {"AF_UNIX", syscall.AF_UNIX},
		{"AF_UNSPEC", syscall.AF_UNSPEC}} {
		if v, ok := constant(a, tc.name); !ok || v != tc.want {
			t.Errorf("constant(%s, %s) = %#x, %v; syscall.%s is %#x", a, tc.name, v, ok, tc.name, tc.want)
		}
	}
}

func TestSyscallsMatchSyscallPackage(t *testing.T) {
	a := hostArch(t)
	for _, tc := range []struct {
		name string
		want int
	}{
		{"read", syscall.SYS_READ}, {"write", syscall.SYS_WRITE},
		{"close", syscall.SYS_CLOSE}, {"openat", syscall.SYS_OPENAT},
		{"getpid", syscall.SYS_GETPID}, {"getppid", syscall.SYS_GETPPID},
		{"gettid", syscall.SYS_GETTID}, {"setresuid", syscall.SYS_SETRESUID},
		{"clone", syscall.SYS_CLONE}, {"execve", syscall.SYS_EXECVE},
		{"exit_group", syscall.SYS_EXIT_GROUP}, {"mmap", syscall.SYS_MMAP},
		{"ioctl", syscall.SYS_IOCTL}, {"fcntl", syscall.SYS_FCNTL},
		{"dup3", syscall.SYS_DUP3}, {"pipe2", syscall.SYS_PIPE2},
		{"mount", syscall.SYS_MOUNT}, {"umount2", syscall.SYS_UMOUNT2},
		{"unshare", syscall.SYS_UNSHARE}, {"capset", syscall.SYS_CAPSET},
		{"pivot_root", syscall.SYS_PIVOT_ROOT}, {"prctl", syscall.SYS_PRCTL},
		{"socket", syscall.SYS_SOCKET}, {"bind", syscall.SYS_BIND},
		{"getdents64", syscall.SYS_GETDENTS64}, {"futex", syscall.SYS_FUTEX},
		{"eventfd2", syscall.SYS_EVENTFD2}, {"epoll_ctl", syscall.SYS_EPOLL_CTL},
	} {
		if nr, ok := SyscallNumber(a, tc.name); !ok || nr != tc.want {
			t.Errorf("SyscallNumber(%s, %s) = %d, %v; syscall says %d", a, tc.name, nr, ok, tc.want)
		}
	}
}
