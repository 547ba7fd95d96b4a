-- The guest powers off behind provium's back: every call after that is an
-- infrastructure error that names the call and the VM and shows the console.
-- The last call is not caught, so the file fails with that message (the Go
-- test checks what the user sees).
local vm = provium.create("minimal"):boot({memory = "256M"})
assert(vm:exec("true").ok)

test("guest powers off during a call", function()
  local ok, err = pcall(function()
    return vm:exec("echo agent-gone-marker > /dev/kmsg; echo o > /proc/sysrq-trigger; sleep 60")
  end)
  assert(not ok, "exec must fail when the guest powers off under it")
  err = tostring(err)
  assert_contains(err, "vm:exec")
  assert_contains(err, vm.name)
  assert_contains(err, "--- console")
end)

test("the next call fails too", function()
  local ok, err = pcall(function() return vm:read_file("/etc/passwd") end)
  assert(not ok, "read_file on a powered-off guest must fail")
  err = tostring(err)
  assert_contains(err, "vm:read_file")
  assert_contains(err, vm.name)
  assert_contains(err, "--- console")
  -- the console tail shows what the guest printed last
  assert_contains(err, "agent-gone-marker")
end)

-- not caught: this fails the file
vm:syscall(39)
