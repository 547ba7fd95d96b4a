-- Workers that die under the test: killed from inside the guest, or ended
-- by their own exit system call.
local SYS_getpid, SYS_gettid, SYS_exit = 39, 186, 60

local vm = provium.create("minimal")
vm:boot()
vm:mount_vfs()

-- The error a call on w raises, or nil if it succeeds.
local function call_error(fn)
  local ok, err = pcall(fn)
  if ok then return nil end
  return tostring(err)
end

local function alive(pid)
  return vm:exec("test -d /proc/" .. pid).ok
end

test("a worker process killed with kill -9 in the guest", function()
  local w, other = vm:spawn(), vm:spawn()
  assert_eq(w.pid, w:syscall(SYS_getpid))
  assert(vm:exec("kill -9 " .. w.pid).ok, "kill -9 from the guest")
  local err = call_error(function() return w:exec("true") end)
  assert(err, "a call on the killed worker must raise")
  assert_contains(err, "exited")
  assert_contains(err, "killed")
  -- and so does every later call, of any kind
  assert(call_error(function() return w:syscall(SYS_getpid) end), "a later syscall must raise")
  assert(call_error(function() return w:read_file("/proc/version") end), "a later read_file must raise")
  -- the VM and the other worker go on
  assert_eq("alive", vm:exec("echo alive").stdout.trim())
  assert_eq(other.pid, other:syscall(SYS_getpid))
  assert(not alive(w.pid), "the killed worker is reaped")
  -- killing a dead worker is not an error: it is gone either way
  w:kill()
  assert(call_error(function() return w:exec("true") end), "a call after kill must raise")
  other:kill()
end)

test("a worker process that calls exit", function()
  local w = vm:spawn()
  local err = call_error(function() return w:syscall(SYS_exit, 3) end)
  assert(err, "exit has no result: the call must raise")
  assert_contains(err, "exit status 3")
  err = call_error(function() return w:exec("true") end)
  assert(err, "a call after exit must raise")
  assert_contains(err, "exit status 3")
  wait_until(function() return not alive(w.pid) end, {desc = "the worker process to be gone", timeout = 20})
  assert_eq("alive", vm:exec("echo alive").stdout.trim())
  w:kill()
end)

test("a thread worker that calls exit", function()
  local agent = vm:syscall(SYS_getpid)
  local t = vm:spawn({thread = true})
  local err = call_error(function() return t:syscall(SYS_exit, 4) end)
  assert(err, "exit has no result: the call must raise")
  assert_contains(err, "exit status 4")
  err = call_error(function() return t:exec("true") end)
  assert(err, "a call after exit must raise")
  assert_contains(err, "exit status 4")
  -- only that thread ended: the agent, its parent, goes on
  wait_until(function() return not vm:exec(string.format("test -d /proc/%d/task/%d", agent, t.tid)).ok end,
    {desc = "the worker thread to be gone", timeout = 20})
  assert_eq(agent, vm:syscall(SYS_getpid))
  assert_eq("alive", vm:exec("echo alive").stdout.trim())
  t:kill()
  local t2 = vm:spawn({thread = true})
  assert_eq(agent, t2:syscall(SYS_getpid))
  t2:kill()
end)
