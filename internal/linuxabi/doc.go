// Package linuxabi names the numbers of the Linux system call interface, so
// that a test script can say "openat", "ENOENT" or "O_DIRECTORY" where it
// would otherwise write 257, -2 or 0200000: system call numbers, error
// numbers, the common flag and command constants, and the encoding of ioctl
// request numbers. It knows x86_64 and arm64, whatever the host's own
// architecture, and imports nothing but the standard library.
//
// # Architectures
//
// An Arch is named as the kernel and "uname -m" name it on x86_64 and as
// the kernel's arch/ directory names it on arm64 (where uname prints
// "aarch64"). The tables of an Arch describe its native 64-bit ABI: neither x32
// nor 32-bit compat system calls.
//
// # Where the tables come from
//
// The tables are generated from a Linux source tree (KernelVersion says
// which) by the program in internal/gen, and checked in:
//
//   - x86_64 system calls: arch/x86/entry/syscalls/syscall_64.tbl, ABIs
//     "common" and "64".
//   - arm64 system calls: the generic table, include/uapi/asm-generic/unistd.h,
//     as arch/arm64/include/uapi/asm/unistd.h configures it (its
//     __ARCH_WANT_RENAMEAT, __ARCH_WANT_NEW_STAT, __ARCH_WANT_SET_GET_RLIMIT,
//     __ARCH_WANT_TIME32_SYSCALLS, __ARCH_WANT_SYS_CLONE3 and
//     __ARCH_WANT_MEMFD_SECRET), evaluated by the C preprocessor.
//   - Error numbers: include/uapi/asm-generic/errno-base.h and errno.h, the
//     same on both architectures. ENOTSUP is not among them: it is the C
//     library's name for EOPNOTSUPP.
//   - Constants: see below.
//
// # Constants
//
// Constants returns, per architecture, the values of the C macros below, from
// the uapi headers (include/uapi and arch/ARCH/include/uapi, read as "make
// headers_install" would install them) unless said otherwise:
//
//   - <linux/fcntl.h>, with asm/fcntl.h and asm-generic/fcntl.h: O_*, F_*
//     (fcntl commands, lock types, seals), FD_CLOEXEC, AT_*, LOCK_*.
//   - <linux/openat2.h>: RESOLVE_*.
//   - <linux/fs.h>: SEEK_*, RENAME_*.
//   - <linux/stat.h>: S_IF* file types, S_IS* and S_I[RWX]* mode bits, STATX_*.
//   - <linux/sched.h>: CLONE_*, CSIGNAL, SCHED_*.
//   - <linux/wait.h>: W* wait options, P_* id types.
//   - <linux/memfd.h>: MFD_*.
//   - <linux/mman.h>, with asm/mman.h, asm-generic/mman.h and mman-common.h:
//     PROT_*, MAP_*, MREMAP_*, MADV_*, MLOCK_*, MCL_*, PKEY_*, and the msync
//     flags MS_ASYNC, MS_INVALIDATE, MS_SYNC.
//   - <linux/mount.h>: MS_* mount flags, MOUNT_ATTR_*, MOVE_MOUNT_*,
//     OPEN_TREE_*, FSOPEN_*, FSMOUNT_*, FSPICK_*.
//   - <linux/capability.h>: CAP_* capability numbers.
//   - <linux/prctl.h>: PR_* (except PR_SET_PTRACER_ANY, a pointer-sized -1).
//   - <asm/signal.h>, with asm-generic/signal-defs.h: SIG* signal numbers,
//     SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK, SA_*, SS_*, SIGSTKSZ, MINSIGSTKSZ.
//     SIGRTMIN is the kernel's 32, not a C library's; SIGRTMAX and the
//     handler values SIG_DFL, SIG_IGN and SIG_ERR are left out.
//   - <asm/resource.h>: RLIMIT_*.
//   - <linux/loop.h>: LOOP_* ioctl numbers.
//   - <asm/socket.h>: SOL_SOCKET, SO_*.
//   - AF_*, PF_*, SOL_*, SCM_RIGHTS, SCM_CREDENTIALS and the user-visible
//     MSG_* flags from include/linux/socket.h, SOCK_* socket types and flags
//     from include/linux/net.h, and EFD_* from include/linux/eventfd.h: these
//     are kernel-internal headers, from which the generator extracts only
//     those definitions (C libraries carry copies of them).
//
// Function-like macros are not constants and are never included; ioctl
// numbers that the headers compute from struct sizes are not either, but
// IOR, IOW and friends compute them from a size.
//
// # Regenerating
//
// Point LINUX_SRC at a Linux source tree (internal/gen/main.go lists the
// parts it reads and how to extract them from Debian's linux-source
// package) and run go generate in this directory; a C preprocessor (GCC or
// Clang) must be installed.
package linuxabi

//go:generate go run ./internal/gen -linux ${LINUX_SRC}
