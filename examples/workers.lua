-- Workers: several identities inside one guest, each with its own credentials.
local vm = provium.fixture("prepared")

test("a worker drops privileges, the VM keeps them", function()
  local w = vm:spawn()
  assert_eq(0, w:syscall("setresuid", 1000, 1000, 1000))
  assert_eq(1000, w:syscall("getuid"))
  assert_eq("1000", w:exec("id -u").stdout.trim())
  assert_eq(0, vm:syscall("getuid"))
  assert(vm:syscall("getpid") ~= w:syscall("getpid"), "a fork worker is its own process")
  w:kill()
end)

test("thread workers share the process", function()
  local t = vm:spawn({thread = true})
  assert_eq(vm:syscall("getpid"), t:syscall("getpid"))
  assert_eq(0, t:syscall("setresuid", 7, 7, 7))
  assert_eq(0, vm:syscall("getuid"), "credentials stay with the thread")
  t:kill()
end)

vm:shutdown()
