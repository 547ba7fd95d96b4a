-- x86_64 numbers used by the kernel API tests.
local h = {
  SYS_read = 0, SYS_write = 1, SYS_close = 3, SYS_lseek = 8, SYS_mmap = 9,
  SYS_munmap = 11, SYS_ioctl = 16, SYS_readv = 19, SYS_writev = 20,
  SYS_getpid = 39, SYS_socket = 41, SYS_uname = 63, SYS_fcntl = 72,
  SYS_rename = 82, SYS_openat = 257, SYS_readlinkat = 267, SYS_pipe2 = 293,
  SYS_userfaultfd = 323,
  EPERM = 1, ENOENT = 2, EBADF = 9, EINVAL = 22, ENOSYS = 38,
  AT_FDCWD = -100,
  O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0x40, O_TRUNC = 0x200,
  O_NOCTTY = 0x100, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000,
  F_GETFD = 1, SEEK_SET = 0, SEEK_CUR = 1,
}

function h.zeros(n) return string.rep("\0", n) end

function h.open(vm, path, flags, mode)
  return vm:syscall_buf(h.SYS_openat, 1, path .. "\0", h.AT_FDCWD, 0, flags, mode or 420)
end

return h
