-- A thread worker drops every capability; the parent keeps them.
local SYS_capget, SYS_capset, SYS_mount, SYS_openat, SYS_close = 125, 126, 165, 257, 3
local AT_FDCWD, EACCES, EPERM = -100, 13, 1

local vm = provium.create("minimal")
vm:boot()
vm:mount_vfs()

-- A file only uid 1000 may read: root reads it through CAP_DAC_OVERRIDE.
vm:write_file("/tmp/secret", "s3cret")
assert(vm:exec("chown 1000:1000 /tmp/secret && chmod 600 /tmp/secret && mkdir -p /mnt/p /mnt/w").ok)

-- struct __user_cap_header_struct {u32 version; i32 pid} (0: this thread)
-- and two struct __user_cap_data_struct {u32 effective, permitted, inheritable}.
local header = provium.pack("u32 i32", 0x20080522, 0)
local function caps(agent)
  local ret, _, data = agent:syscall_bufs(SYS_capget, {[0] = header, [1] = string.rep("\0", 24)})
  assert_eq(0, ret, "capget")
  local e0, p0, _, e1, p1 = provium.unpack("u32 u32 u32 u32 u32 u32", data)
  return e0, p0, e1, p1
end
local function open(agent, path)
  return agent:syscall_buf(SYS_openat, 1, path .. "\0", AT_FDCWD, 0, 0, 0)
end
local function mount(agent, target)
  return agent:syscall_bufs(SYS_mount, {[0] = "none\0", [1] = target .. "\0", [2] = "tmpfs\0"}, 0, 0, 0, 0, 0)
end

local t = vm:spawn({thread = true})
local e0, p0 = caps(t)
assert(e0 ~= 0 and p0 ~= 0, "the worker starts with the parent's capabilities")
assert_eq(0, (t:syscall_bufs(SYS_capset, {[0] = header, [1] = string.rep("\0", 24)})), "capset to nothing")

test("the worker has no capability left", function()
  local e0, p0, e1, p1 = caps(t)
  assert_eq(0, e0) assert_eq(0, p0) assert_eq(0, e1) assert_eq(0, p1)
  -- Seen by the kernel from the parent: this thread's effective set.
  local status = vm:read_file(string.format("/proc/%d/task/%d/status", t.pid, t.tid))
  assert_contains(status, "CapEff:\t0000000000000000\n")
end)

test("the parent keeps its capabilities", function()
  local e0, p0 = caps(vm)
  assert(e0 ~= 0 and p0 ~= 0, "parent capabilities are gone")
  local status = vm:read_file(string.format("/proc/%d/task/%d/status", t.pid, vm:syscall(186)))
  assert(not status:find("CapEff:\t0000000000000000\n", 1, true), "parent thread has no effective capability")
end)

test("without CAP_DAC_OVERRIDE the worker cannot read another uid's file", function()
  assert_eq(-EACCES, open(t, "/tmp/secret"), "openat in the worker")
  local ok, err = pcall(function() return t:read_file("/tmp/secret") end)
  assert(not ok, "worker:read_file must fail")
  assert_contains(tostring(err), "EACCES")
  -- the parent still can
  local fd = open(vm, "/tmp/secret")
  assert(fd >= 0, "parent openat: " .. fd)
  assert_eq(0, vm:syscall(SYS_close, fd))
  assert_eq("s3cret", vm:read_file("/tmp/secret"))
end)

test("without CAP_SYS_ADMIN the worker cannot mount", function()
  assert_eq(-EPERM, (mount(t, "/mnt/w")), "mount in the worker")
  assert_eq(0, (mount(vm, "/mnt/p")), "mount in the parent")
  assert_contains(vm:exec("cat /proc/mounts").stdout, " /mnt/p tmpfs ")
  assert(not vm:exec("cat /proc/mounts").stdout.contains(" /mnt/w "), "the worker's mount happened")
end)
