-- Raw syscalls and ioctls with binary buffers, no C program needed.
local SYS_write, SYS_close, SYS_openat, SYS_uname, SYS_readv = 1, 3, 257, 63, 19
local AT_FDCWD, O_RDONLY, O_WRONLY, O_CREAT = -100, 0, 1, 64

local vm = provium.fixture("prepared")

test("a buffer in, a result out", function()
  local fd = vm:syscall_buf(SYS_openat, 1, "/tmp/raw\0", AT_FDCWD, 0, O_WRONLY + O_CREAT, 420)
  assert(fd >= 0, "openat: " .. fd)
  assert_eq(5, vm:syscall_buf(SYS_write, 1, "hello", fd, 0, 5))
  assert_eq(0, vm:syscall(SYS_close, fd))
  assert_eq(-9, vm:syscall(SYS_close, fd), "closing twice is -EBADF")
  assert_eq("hello", vm:read_file("/tmp/raw"))
end)

test("output buffers", function()
  local ret, uts = vm:syscall_bufs(SYS_uname, {[0] = string.rep("\0", 390)})
  assert_eq(0, ret)
  assert_eq("Linux", uts:sub(1, 5))
end)

test("embedded pointers", function()
  local fd = vm:syscall_buf(SYS_openat, 1, "/srv/data/answer\0", AT_FDCWD, 0, O_RDONLY)
  local iov = provium.pack("u64 u64", 0, 3) -- struct iovec, base patched below
  local n, iov_after, data = vm:syscall_ptr(SYS_readv, {[1] = iov},
    {{buf_idx = 1, ptr_offset = 0, data_len = 3, output = true}}, fd, 0, 1)
  assert_eq(3, n)
  assert_eq("42\n", data)
  vm:syscall(SYS_close, fd)
end)

test("ioctl", function()
  local fd = vm:syscall_buf(SYS_openat, 1, "/dev/urandom\0", AT_FDCWD, 0, O_RDONLY)
  local ret, out = vm:ioctl(fd, 0x80045200) -- RNDGETENTCNT: _IOR('R', 0, int)
  assert_eq(0, ret)
  assert(provium.unpack("i32", out) >= 0)
  vm:syscall(SYS_close, fd)
end)

test("background jobs", function()
  local job = vm:background("sleep 1; echo finished")
  assert(vm:job_wait(job, 0).running)
  local r = vm:job_wait(job, 30)
  assert_eq(0, r.exit_code)
  assert_contains(r.stdout, "finished")
end)

vm:shutdown()
