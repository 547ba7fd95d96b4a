-- Raw system calls and ioctls: every call form, -errno results, 64-bit
-- arguments, ioctls of each direction, pointer patching, and malformed
-- requests that the host must refuse before they reach the guest.
local h = dofile("tests/helpers.lua")
local vm = provium.create("minimal"):boot({memory = "256M"})

test("plain syscalls and -errno", function()
  local pid = vm:syscall(h.SYS_getpid)
  assert(pid > 1, "getpid " .. pid)
  assert_eq(tostring(pid), vm:exec("cat /proc/" .. pid .. "/comm >/dev/null && echo " .. pid).stdout.trim())
  assert_eq(-h.EBADF, vm:syscall(h.SYS_close, 99999))
  assert_eq(-h.EBADF, vm:syscall(h.SYS_fcntl, 99999, h.F_GETFD))
  assert_eq(-h.ENOENT, h.open(vm, "/no/such/file", h.O_RDONLY))
  assert_eq(-h.ENOSYS, vm:syscall(999))
  -- an fd as an exact 64-bit string: close takes an unsigned int
  assert_eq(-h.EBADF, vm:syscall(h.SYS_close, "0xffffffffffffffff"))
end)

test("syscall_buf: input and output buffers", function()
  local fd = h.open(vm, "/tmp/sb", h.O_WRONLY + h.O_CREAT + h.O_TRUNC)
  assert(fd >= 0, "openat " .. fd)
  local n, out = vm:syscall_buf(h.SYS_write, 1, "hello\0world", fd, 0, 11)
  assert_eq(11, n)
  assert_eq("hello\0world", out) -- an input buffer comes back as it was
  assert_eq(0, vm:syscall(h.SYS_close, fd))
  assert_eq("hello\0world", vm:read_file("/tmp/sb"))

  fd = h.open(vm, "/tmp/sb", h.O_RDONLY)
  local r, buf = vm:syscall_buf(h.SYS_read, 1, h.zeros(16), fd, 0, 16)
  assert_eq(11, r)
  assert_eq("hello\0world\0\0\0\0\0", buf)
  vm:syscall(h.SYS_close, fd)

  -- index 0, no other arguments (missing ones are 0)
  local ret, uts = vm:syscall_buf(h.SYS_uname, 0, h.zeros(390))
  assert_eq(0, ret)
  assert_eq("Linux\0", uts:sub(1, 6))
end)

test("syscall_bufs: several buffers in one call", function()
  -- pipe2 fills an output buffer
  local ret, fds = vm:syscall_bufs(h.SYS_pipe2, {[0] = h.zeros(8)}, 0, h.O_CLOEXEC)
  assert_eq(0, ret)
  local rfd, wfd = provium.unpack("i32 i32", fds)
  assert(rfd >= 0 and wfd >= 0 and rfd ~= wfd, "pipe fds " .. rfd .. " " .. wfd)
  assert_eq(9, vm:syscall_buf(h.SYS_write, 1, "ping\0pong", wfd, 0, 9))
  -- FIONREAD has no direction bits: an explicit buffer carries the int
  local r2, avail = vm:syscall_buf(h.SYS_ioctl, 2, h.zeros(4), rfd, 0x541B)
  assert_eq(0, r2)
  assert_eq(9, provium.unpack("i32", avail))
  -- read into a zeroed buffer
  local n, data = vm:syscall_bufs(h.SYS_read, {[1] = h.zeros(32)}, rfd, 0, 32)
  assert_eq(9, n)
  assert_eq("ping\0pong" .. h.zeros(23), data)
  vm:syscall(h.SYS_close, rfd)
  vm:syscall(h.SYS_close, wfd)

  -- two input buffers: rename(old, new)
  vm:write_file("/tmp/ren-a", "moved")
  assert_eq(0, (vm:syscall_bufs(h.SYS_rename, {[0] = "/tmp/ren-a\0", [1] = "/tmp/ren-b\0"})))
  assert_eq("moved", vm:read_file("/tmp/ren-b"))
  assert(not vm:exec("test -e /tmp/ren-a").ok, "old name still there")

  -- an input and an output buffer, returned in argument order:
  -- readlinkat(AT_FDCWD, path, buf, 64)
  assert(vm:exec("ln -sf /some/where/else /tmp/kapi-link").ok)
  local len, path, target = vm:syscall_bufs(h.SYS_readlinkat,
    {[2] = h.zeros(64), [1] = "/tmp/kapi-link\0"}, h.AT_FDCWD, 0, 0, 64)
  assert_eq(#"/some/where/else", len)
  assert_eq("/tmp/kapi-link\0", path)
  assert_eq("/some/where/else", target:sub(1, len))
  assert_eq(64, #target)
end)

test("syscall_ptr: embedded input and output pointers", function()
  local fd = h.open(vm, "/tmp/iov", h.O_WRONLY + h.O_CREAT + h.O_TRUNC)
  -- two struct iovec {base, len}; both bases are patched
  local iov = provium.pack("u64 u64 u64 u64", 0, 6, 0, 5)
  local res = {vm:syscall_ptr(h.SYS_writev, {[1] = iov}, {
    {buf_idx = 1, ptr_offset = 0, data_len = 6, data = "hello "},
    {buf_idx = 1, ptr_offset = 16, data = "world"},
  }, fd, 0, 2)}
  assert_eq(2, #res) -- ret and the iovec buffer; no output pointers
  assert_eq(11, res[1])
  local b1, l1, b2, l2 = provium.unpack("u64 u64 u64 u64", res[2])
  assert(b1 ~= 0 and b2 ~= 0 and b1 ~= b2, "the bases were patched with guest addresses")
  assert_eq(6, l1)
  assert_eq(5, l2)
  vm:syscall(h.SYS_close, fd)
  assert_eq("hello world", vm:read_file("/tmp/iov"))

  -- readv: the embedded pointers are outputs, returned in spec order
  fd = h.open(vm, "/tmp/iov", h.O_RDONLY)
  local n, iov_out, first, second = vm:syscall_ptr(h.SYS_readv,
    {[1] = provium.pack("u64 u64 u64 u64", 0, 4, 0, 16)},
    {{buf_idx = 1, ptr_offset = 0, data_len = 4, output = true},
     {1, 16, 16, nil, true}}, -- positional form
    fd, 0, 2)
  assert_eq(11, n)
  assert_eq(32, #iov_out)
  assert_eq("hell", first)
  assert_eq("o world" .. h.zeros(9), second)
  vm:syscall(h.SYS_close, fd)
end)

test("64-bit arguments as strings stay exact", function()
  local fd = h.open(vm, "/tmp/seek", h.O_RDWR + h.O_CREAT + h.O_TRUNC)
  assert(fd >= 0)
  -- -1 as an offset is invalid, given as a string or a negative number
  assert_eq(-h.EINVAL, vm:syscall(h.SYS_lseek, fd, "0xffffffffffffffff", h.SEEK_SET))
  assert_eq(-h.EINVAL, vm:syscall(h.SYS_lseek, fd, -1, h.SEEK_SET))
  -- LLONG_MAX - 1, then +1 is fine and +1 more overflows: only an exact
  -- argument (no rounding to a double) behaves like that
  assert(vm:syscall(h.SYS_lseek, fd, "0x7ffffffffffffffe", h.SEEK_SET) > 2 ^ 62)
  assert(vm:syscall(h.SYS_lseek, fd, 1, h.SEEK_CUR) > 2 ^ 62)
  assert_eq(-h.EINVAL, vm:syscall(h.SYS_lseek, fd, 1, h.SEEK_CUR))
  -- decimal strings are accepted too
  assert(vm:syscall(h.SYS_lseek, fd, "9223372036854775806", h.SEEK_SET) > 2 ^ 62)
  assert(vm:syscall(h.SYS_lseek, fd, 1, h.SEEK_CUR) > 2 ^ 62)
  assert_eq(-h.EINVAL, vm:syscall(h.SYS_lseek, fd, 1, h.SEEK_CUR))
  assert_eq(0, vm:syscall(h.SYS_lseek, fd, 0, h.SEEK_SET))
  vm:syscall(h.SYS_close, fd)
  -- beyond 64 bits is refused
  assert(not pcall(function() return vm:syscall(h.SYS_close, "0x10000000000000000") end))
end)

test("pack keeps u64 strings exact", function()
  local all = string.rep("\255", 8)
  assert_eq(all, provium.pack("u64", "0xffffffffffffffff"))
  assert_eq(all, provium.pack("u64", "18446744073709551615"))
  assert_eq(all, provium.pack("i64", -1))
  assert_eq("\1\0\0\0\0\0\32\0", provium.pack("u64", "0x0020000000000001")) -- 2^53 + 1
  assert_eq("\0\0\0\0\0\0\0\128", provium.pack("i64", "-9223372036854775808"))
  local lo, hi = provium.unpack("u32 u32", provium.pack("u64", "0x123456789abcdef0"))
  assert_eq(0x9abcdef0, lo)
  assert_eq(0x12345678, hi)
  assert_eq(2 ^ 53, provium.unpack("u64", provium.pack("u64", 2 ^ 53)))
  assert(not pcall(provium.pack, "u64", "0x10000000000000000"), "65 bits")
  assert(not pcall(provium.pack, "u8", 256), "u8 out of range")
  local ok, err = pcall(provium.unpack, "u64", "short")
  assert(not ok)
  assert_contains(tostring(err), "8")
  -- through the guest and back, byte for byte
  local packed = provium.pack("u64 u64 i64", "0x123456789abcdef0", "0xfedcba9876543210", "-2")
  vm:write_file("/tmp/packed", packed)
  assert_eq("123456789abcdef0 fedcba9876543210 fffffffffffffffe",
    vm:exec("od -An -tx8 /tmp/packed").stdout.value:gsub("%s+", " "):match("^%s*(.-)%s*$"))
  assert_eq(packed, vm:read_file("/tmp/packed"))
end)

test("ioctl _IO", function()
  local fd = h.open(vm, "/dev/null", h.O_RDONLY)
  assert_eq(0, vm:syscall(h.SYS_fcntl, fd, h.F_GETFD))
  local ret, out = vm:ioctl(fd, 0x5451) -- FIOCLEX
  assert_eq(0, ret)
  assert_eq(nil, out)
  assert_eq(1, vm:syscall(h.SYS_fcntl, fd, h.F_GETFD)) -- FD_CLOEXEC
  assert_eq(0, (vm:ioctl(fd, 0x5450))) -- FIONCLEX
  assert_eq(0, vm:syscall(h.SYS_fcntl, fd, h.F_GETFD))
  vm:syscall(h.SYS_close, fd)
  -- RNDZAPENTCNT = _IO('R', 4), root only
  local rnd = h.open(vm, "/dev/urandom", h.O_RDONLY)
  assert_eq(0, (vm:ioctl(rnd, 0x5204)))
  vm:syscall(h.SYS_close, rnd)
  assert_eq(-h.EBADF, (vm:ioctl(99999, 0x5451)))
end)

test("ioctl _IOR", function()
  local fd = h.open(vm, "/dev/urandom", h.O_RDONLY)
  -- RNDGETENTCNT = _IOR('R', 0, int): a zeroed buffer of the encoded size
  local ret, out = vm:ioctl(fd, 0x80045200)
  assert_eq(0, ret)
  assert_eq(4, #out)
  assert(provium.unpack("i32", out) >= 0)
  -- with data given, the kernel overwrites it
  ret, out = vm:ioctl(fd, 0x80045200, "\255\255\255\255")
  assert_eq(0, ret)
  assert(provium.unpack("i32", out) >= 0, "count was written")
  -- an _IOR on a bad fd: -EBADF, out still the buffer
  ret, out = vm:ioctl(99999, 0x80045200)
  assert_eq(-h.EBADF, ret)
  assert_eq(h.zeros(4), out)
  vm:syscall(h.SYS_close, fd)
end)

test("ioctl _IOW", function()
  local fd = h.open(vm, "/dev/urandom", h.O_RDONLY)
  -- RNDADDTOENTCNT = _IOW('R', 1, int): the kernel reads the int
  local ret, out = vm:ioctl(fd, 0x40045201, provium.pack("i32", 8))
  assert_eq(0, ret)
  assert_eq(nil, out)
  -- a negative count is refused: the data did reach the kernel
  assert_eq(-h.EINVAL, (vm:ioctl(fd, 0x40045201, provium.pack("i32", -1))))
  vm:syscall(h.SYS_close, fd)
end)

-- A terminal the guest opens itself, without provium shell: the guest's
-- init mounted devpts, so /dev/ptmx works in a VM that never had a shell.
test("a guest terminal: /dev/ptmx, TIOCSPTLCK, TIOCGPTN", function()
  local master = h.open(vm, "/dev/ptmx", h.O_RDWR + h.O_NOCTTY)
  assert(master >= 0, "open /dev/ptmx: " .. master)
  -- TIOCSPTLCK = _IOW('T', 0x31, int): unlock; TIOCGPTN = _IOR('T', 0x30, unsigned int)
  assert_eq(0, (vm:ioctl(master, 0x40045431, provium.pack("i32", 0))))
  local ret, out = vm:ioctl(master, 0x80045430)
  assert_eq(0, ret)
  local pts = "/dev/pts/" .. provium.unpack("u32", out)
  local slave = h.open(vm, pts, h.O_RDWR + h.O_NOCTTY)
  assert(slave >= 0, "open " .. pts .. ": " .. slave)
  assert_eq(3, (vm:syscall_buf(h.SYS_write, 1, "hi\n", slave, 0, 3)))
  -- the line discipline turns the newline into CR LF
  local n, buf = vm:syscall_buf(h.SYS_read, 1, h.zeros(16), master, 0, 16)
  assert_eq(4, n)
  assert_eq("hi\r\n", buf:sub(1, n))
  vm:syscall(h.SYS_close, slave)
  vm:syscall(h.SYS_close, master)
end)

-- UFFDIO_API = _IOWR(0xAA, 0x3F, struct uffdio_api {u64 api, features, ioctls})
local UFFDIO_API = 0xc018aa3f
local UFFD_API = 0xAA

test("ioctl _IOWR", function()
  local uffd = vm:syscall(h.SYS_userfaultfd, h.O_CLOEXEC + h.O_NONBLOCK)
  assert(uffd >= 0, "userfaultfd " .. uffd)
  local ret, out = vm:ioctl(uffd, UFFDIO_API, provium.pack("u64 u64 u64", UFFD_API, 0, 0))
  assert_eq(0, ret)
  assert_eq(24, #out)
  local api, _, ioctls = provium.unpack("u64 u64 u64", out)
  assert_eq(UFFD_API, api)
  assert(ioctls ~= 0, "the kernel filled in the supported ioctls")
  -- a second handshake on the same descriptor is refused
  assert_eq(-h.EINVAL, (vm:ioctl(uffd, UFFDIO_API, provium.pack("u64 u64 u64", UFFD_API, 0, 0))))
  vm:syscall(h.SYS_close, uffd)
end)

test("ioctl_buf: an output pointer inside the struct", function()
  assert(vm:exec("ip link set lo up").ok)
  local sock = vm:syscall(h.SYS_socket, 2, 2, 0) -- AF_INET, SOCK_DGRAM
  assert(sock >= 0, "socket " .. sock)
  -- SIOCGIFCONF: struct ifconf {int len; char *buf}, buf at offset 8
  local ret, ifc, reqs = vm:ioctl_buf(sock, 0x8912, provium.pack("i32 i32 u64", 160, 0, 0),
    {{ptr_offset = 8, buf_len = 160, output = true}})
  assert_eq(0, ret)
  assert_eq(16, #ifc)
  local len = provium.unpack("i32", ifc)
  assert(len >= 40 and len % 40 == 0, "ifc_len " .. len)
  assert_eq(160, #reqs)
  -- the first struct ifreq: "lo", then sockaddr_in 127.0.0.1
  assert_eq("lo\0", reqs:sub(1, 3))
  assert_eq("\2\0", reqs:sub(17, 18))
  assert_eq("\127\0\0\1", reqs:sub(21, 24))
  vm:syscall(h.SYS_close, sock)
end)

test("ioctl_buf: an input pointer with data (UFFDIO_COPY)", function()
  local uffd = vm:syscall(h.SYS_userfaultfd, h.O_CLOEXEC + h.O_NONBLOCK)
  assert(uffd >= 0)
  assert_eq(0, (vm:ioctl(uffd, UFFDIO_API, provium.pack("u64 u64 u64", UFFD_API, 0, 0))))
  -- one anonymous page in the agent, registered for missing faults
  local addr = vm:syscall(h.SYS_mmap, 0, 4096, 3, 0x22, -1, 0) -- RW, PRIVATE|ANONYMOUS
  assert(addr > 0 and addr % 4096 == 0, "mmap " .. addr)
  -- UFFDIO_REGISTER = _IOWR(0xAA, 0x00, {u64 start, len, mode, ioctls})
  local ret, reg = vm:ioctl(uffd, 0xc020aa00, provium.pack("u64 u64 u64 u64", addr, 4096, 1, 0))
  assert_eq(0, ret)
  assert(provium.unpack("u64", reg:sub(25, 32)) ~= 0, "register reports the range's ioctls")
  -- UFFDIO_COPY = _IOWR(0xAA, 0x03, {u64 dst, src, len, mode; i64 copy});
  -- src points at a page of our data
  local page = string.rep("provium!", 512)
  local ret2, st = vm:ioctl_buf(uffd, 0xc028aa03,
    provium.pack("u64 u64 u64 u64 i64", addr, 0, 4096, 0, 0),
    {{ptr_offset = 8, buf_len = 4096, data = page}})
  assert_eq(0, ret2)
  local dst, src, _, _, copied = provium.unpack("u64 u64 u64 u64 i64", st)
  assert_eq(addr, dst)
  assert(src ~= 0, "src was patched")
  assert_eq(4096, copied)
  -- the page now holds the data: write it out from its address
  local fd = h.open(vm, "/tmp/uffd-page", h.O_WRONLY + h.O_CREAT + h.O_TRUNC)
  assert_eq(4096, vm:syscall(h.SYS_write, fd, addr, 4096))
  vm:syscall(h.SYS_close, fd)
  assert(vm:read_file("/tmp/uffd-page") == page, "page content")
  assert_eq(0, vm:syscall(h.SYS_munmap, addr, 4096))
  vm:syscall(h.SYS_close, uffd)
end)

-- Requests the host must refuse itself: each is a clear Lua error, not an
-- infrastructure failure, and the VM goes on.
local function refused(what, fn, ...)
  local ok, err = pcall(fn)
  assert(not ok, what .. ": the call must be refused")
  err = tostring(err)
  for _, want in ipairs({...}) do
    assert_contains(err, want, what)
  end
  assert(not err:find("--- console", 1, true), what .. " is not an infrastructure failure: " .. err)
  assert(not err:find("agent", 1, true), what .. " must not involve the agent: " .. err)
end

test("malformed requests are refused on the host", function()
  local iov = provium.pack("u64 u64", 0, 5)
  refused("buffer index past the arguments",
    function() return vm:syscall_buf(h.SYS_write, 6, "x", 1, 0, 1) end,
    "syscall_buf", "buffer index 6", "0..5")
  refused("negative buffer index",
    function() return vm:syscall_buf(h.SYS_write, -1, "x") end, "buffer index -1")
  refused("bufs key past the arguments",
    function() return vm:syscall_bufs(h.SYS_read, {[7] = "x"}) end,
    "syscall_bufs", "bufs key 7", "0..5")
  refused("seven arguments",
    function() return vm:syscall(h.SYS_getpid, 1, 2, 3, 4, 5, 6, 7) end,
    "at most 6 arguments")
  refused("negative pointer length",
    function() return vm:syscall_ptr(h.SYS_readv, {[1] = iov},
      {{buf_idx = 1, ptr_offset = 0, data_len = -1, output = true}}, 0, 0, 1) end,
    "syscall_ptr", "pointer spec 1", "negative data_len -1")
  refused("negative ioctl pointer length",
    function() return vm:ioctl_buf(0, 0x8912, provium.pack("i32 i32 u64", 0, 0, 0),
      {{ptr_offset = 8, buf_len = -40}}) end,
    "ioctl_buf", "negative buf_len -40")
  refused("pointer past the end of its buffer",
    function() return vm:syscall_ptr(h.SYS_readv, {[1] = iov},
      {{buf_idx = 1, ptr_offset = 12, data_len = 5}}, 0, 0, 1) end,
    "ptr_offset 12", "16-byte buffer")
  refused("negative pointer offset",
    function() return vm:syscall_ptr(h.SYS_readv, {[1] = iov},
      {{buf_idx = 1, ptr_offset = -8, data_len = 5}}, 0, 0, 1) end,
    "ptr_offset -8")
  refused("ioctl pointer outside the struct",
    function() return vm:ioctl_buf(0, 0x8912, provium.pack("i32 i32 u64", 0, 0, 0),
      {{ptr_offset = 16, buf_len = 8}}) end,
    "ptr_offset 16", "16-byte buffer")
  refused("spec naming a missing buffer",
    function() return vm:syscall_ptr(h.SYS_readv, {[1] = iov},
      {{buf_idx = 3, ptr_offset = 0, data_len = 5}}, 0, 0, 1) end,
    "buf_idx 3", "no buffer")
  refused("second spec naming a missing buffer",
    function() return vm:syscall_ptr(h.SYS_readv, {[1] = iov},
      {{buf_idx = 1, ptr_offset = 0, data_len = 5}, {buf_idx = 0, ptr_offset = 0, data_len = 5}}, 0, 0, 1) end,
    "pointer spec 2", "buf_idx 0")
  refused("data longer than its memory",
    function() return vm:syscall_ptr(h.SYS_writev, {[1] = iov},
      {{buf_idx = 1, ptr_offset = 0, data_len = 2, data = "hello"}}, 1, 0, 1) end,
    "5 bytes of data", "data_len 2")
  -- the VM is still fine, and a well-formed call works
  assert(vm:syscall(h.SYS_getpid) > 0)
  assert(vm:exec("true").ok)
end)

vm:shutdown()
