-- A fork worker is a process with its parent identity's credentials, as a
-- fork of that thread would be: what ps and /proc/PID/status show, not
-- only the thread that serves it. The first spawn starts a new process;
-- a later one claims the spare process the agent keeps ready.
local SYS_getpid, SYS_setresuid, SYS_setresgid = 39, 117, 119

local vm = provium.create("minimal")
vm:boot()

local function spawn_as(uid)
  assert_eq(0, vm:syscall(SYS_setresgid, -1, uid, -1), "setresgid")
  assert_eq(0, vm:syscall(SYS_setresuid, -1, uid, -1), "setresuid")
  local w = vm:spawn()
  assert_eq(0, vm:syscall(SYS_setresuid, -1, 0, -1), "back to root")
  assert_eq(0, vm:syscall(SYS_setresgid, -1, 0, -1), "back to root")
  return w
end

local function check(w, uid)
  local status = vm:read_file(string.format("/proc/%d/status", w:syscall(SYS_getpid)))
  assert_contains(status, string.format("Uid:\t0\t%d\t0\t%d\n", uid, uid))
  assert_contains(status, string.format("Gid:\t0\t%d\t0\t%d\n", uid, uid))
end

test("a new worker process has the credentials", function()
  check(spawn_as(3001), 3001)
end)

test("a claimed spare has the credentials", function()
  vm:exec("sleep 1") -- the spare starts once spawns pause
  check(spawn_as(3002), 3002)
end)
