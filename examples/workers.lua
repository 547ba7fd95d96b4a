-- Workers: several identities inside one guest, each with its own credentials.
local SYS_getuid, SYS_setresuid, SYS_getpid = 102, 117, 39
local vm = provium.fixture("prepared")

test("a worker drops privileges, the VM keeps them", function()
  local w = vm:spawn()
  assert_eq(0, w:syscall(SYS_setresuid, 1000, 1000, 1000))
  assert_eq(1000, w:syscall(SYS_getuid))
  assert_eq("1000", w:exec("id -u").stdout.trim())
  assert_eq(0, vm:syscall(SYS_getuid))
  assert(vm:syscall(SYS_getpid) ~= w:syscall(SYS_getpid), "a fork worker is its own process")
  w:kill()
end)

test("thread workers share the process", function()
  local t = vm:spawn({thread = true})
  assert_eq(vm:syscall(SYS_getpid), t:syscall(SYS_getpid))
  assert_eq(0, t:syscall(SYS_setresuid, 7, 7, 7))
  assert_eq(0, vm:syscall(SYS_getuid), "credentials stay with the thread")
  t:kill()
end)

vm:shutdown()
