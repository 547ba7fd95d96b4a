-- Ten workers at once, each with its own uid: five processes, five threads.
local SYS_getpid, SYS_getuid, SYS_setresuid, SYS_gettid = 39, 102, 117, 186

local vm = provium.create("minimal")
vm:boot()
vm:mount_vfs()

local workers = {}
for i = 1, 10 do
  workers[i] = vm:spawn({thread = (i % 2 == 0)})
end
for i, w in ipairs(workers) do
  local uid = 2000 + i
  assert_eq(0, w:syscall(SYS_setresuid, uid, uid, uid), "setresuid in worker " .. i)
end

test("each worker sees only its own uid", function()
  for i, w in ipairs(workers) do
    assert_eq(2000 + i, w:syscall(SYS_getuid), "getuid of worker " .. i)
    assert_eq(tostring(2000 + i), w:exec("id -u").stdout.trim(), "id -u of worker " .. i)
  end
end)

test("the parent is still root", function()
  assert_eq(0, vm:syscall(SYS_getuid))
  assert_eq("0", vm:exec("id -u").stdout.trim())
end)

test("the kernel sees the ten identities at the same time", function()
  local agent = vm:syscall(SYS_getpid)
  local pids, tids = {}, {}
  for i, w in ipairs(workers) do
    local pid, tid = w:syscall(SYS_getpid), w:syscall(SYS_gettid)
    if w.thread then
      assert_eq(agent, pid, "a thread worker is a thread of the agent")
    else
      assert(pid ~= agent, "a fork worker is a process of its own")
    end
    assert(not tids[tid], "worker " .. i .. " shares thread " .. tid)
    tids[tid] = true
    -- Seen from the parent, through the kernel: real, effective, saved
    -- and fs uid of that very thread.
    local status = vm:read_file(string.format("/proc/%d/task/%d/status", pid, tid))
    local uid = 2000 + i
    assert_contains(status, string.format("Uid:\t%d\t%d\t%d\t%d\n", uid, uid, uid, uid), "worker " .. i)
  end
  assert_contains(vm:read_file(string.format("/proc/%d/status", agent)), "Uid:\t0\t0\t0\t0\n", "the agent's main thread")
end)
