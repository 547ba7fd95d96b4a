-- Raw syscalls and ioctls with binary buffers, no C program needed.
-- System calls go by name; flags and errnos come from provium.c and
-- provium.errno, so the script reads like the C it replaces.
local c, errno = provium.c, provium.errno

local vm = provium.fixture("prepared")

test("a buffer in, a result out", function()
  local fd = vm:syscall_buf("openat", 1, "/tmp/raw\0", c.AT_FDCWD, 0, c.O_WRONLY + c.O_CREAT, 420)
  assert(fd >= 0, "openat: " .. tostring(provium.strerror(fd)))
  assert_eq(5, vm:syscall_buf("write", 1, "hello", fd, 0, 5))
  assert_eq(0, vm:syscall("close", fd))
  assert_eq(-errno.EBADF, vm:syscall("close", fd), "closing twice")
  assert_eq("hello", vm:read_file("/tmp/raw"))
end)

test("output buffers", function()
  local ret, uts = vm:syscall_bufs("uname", {[0] = string.rep("\0", 390)})
  assert_eq(0, ret)
  assert_eq("Linux", uts:sub(1, 5))
end)

test("embedded pointers", function()
  local fd = vm:syscall_buf("openat", 1, "/srv/data/answer\0", c.AT_FDCWD, 0, c.O_RDONLY)
  local iov = provium.pack("u64 u64", 0, 3) -- struct iovec, base patched below
  local n, iov_after, data = vm:syscall_ptr("readv", {[1] = iov},
    {{buf_idx = 1, ptr_offset = 0, data_len = 3, output = true}}, fd, 0, 1)
  assert_eq(3, n)
  assert_eq("42\n", data)
  vm:syscall("close", fd)
end)

test("ioctl", function()
  local fd = vm:syscall_buf("openat", 1, "/dev/urandom\0", c.AT_FDCWD, 0, c.O_RDONLY)
  local RNDGETENTCNT = provium.ioc.IOR("R", 0, 4) -- _IOR('R', 0x00, int)
  local ret, out = vm:ioctl(fd, RNDGETENTCNT)
  assert_eq(0, ret)
  assert(provium.unpack("i32", out) >= 0)
  vm:syscall("close", fd)
end)

test("background jobs", function()
  local job = vm:background("sleep 1; echo finished")
  assert(vm:job_wait(job, 0).running)
  local r = vm:job_wait(job, 30)
  assert_eq(0, r.exit_code)
  assert_contains(r.stdout, "finished")
end)

vm:shutdown()
