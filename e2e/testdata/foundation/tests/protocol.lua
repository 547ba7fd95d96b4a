-- The guest is untrusted: a frame that announces more than a frame may
-- carry is a protocol violation. The host must report it (with the
-- console tail), not crash and not hang. frame.lua is written by the Go
-- test: a frame header with a valid CRC and Length 1 MiB.
local frame = dofile("frame.lua")
assert_eq(24, #frame)
local vm = provium.create("minimal"):boot({memory = "256M"})

-- The agent's end of the transport: the descriptor of the agent process
-- that is the virtio port (or a vsock socket).
local pid = vm:syscall(39)
assert(pid > 0)
local fds = vm:exec("for f in /proc/" .. pid .. "/fd/*; do echo \"${f##*/} $(readlink $f)\"; done").stdout.value
local portfd = fds:match("(%d+) /dev/vport%S*") or fds:match("(%d+) socket:")
assert(portfd, "no transport descriptor in\n" .. fds)
portfd = tonumber(portfd)

test("bytes that are not a frame are skipped", function()
  -- the magic, then junk: the CRC does not match, so this is line noise
  -- that the host skips, not a violation
  local junk = "PRVM" .. string.rep("\1", 20)
  assert_eq(#junk, vm:syscall_buf(1, 1, junk, portfd, 0, #junk))
  assert_eq(pid, vm:syscall(39))
  assert_eq("still here\n", vm:exec("echo still here").stdout.value)
end)

local err
test("oversize frame is a protocol violation", function()
  local ok, e = pcall(function()
    return vm:syscall_buf(1, 1, frame, portfd, 0, #frame) -- write(portfd, frame, 24)
  end)
  if ok then
    -- the write went out before the reply: the next call sees it
    ok, e = pcall(function() return vm:syscall(39) end)
  end
  assert(not ok, "the host must reject the oversize frame")
  err = tostring(e)
  assert_contains(err, "exceeds limit")
  assert_contains(err, vm.name)
  assert_contains(err, "--- console")
end)

test("later calls fail at once and the VM can be killed", function()
  local ok, e = pcall(function() return vm:exec("true") end)
  assert(not ok, "the session is broken: exec must fail")
  assert_contains(tostring(e), "vm:exec")
  vm:kill()
  assert_eq("killed", vm.state)
  ok, e = pcall(function() return vm:exec("true") end)
  assert(not ok, "exec after kill must fail")
  assert_contains(tostring(e), "killed")
  vm:kill() -- again: no error
end)
