package luaapi

import "testing"

func TestNames(t *testing.T) {
	r := runLua(t, `
local vm = provium.create("minimal"):boot()
test("tables", function()
  assert_eq(257, provium.sys.openat)
  assert_eq(2, provium.errno.ENOENT)
  assert_eq(-100, provium.c.AT_FDCWD)
  assert_eq(0x80000, provium.c.O_CLOEXEC)
  assert_eq(21, provium.c.CAP_SYS_ADMIN)
  assert_eq("ENOENT", provium.strerror(-2))
  assert_eq("ENOENT", provium.strerror(2))
  assert_eq(nil, provium.strerror(4000))
  local n = 0
  for name, nr in pairs(provium.sys) do n = n + 1 end
  assert(n > 300, "pairs lists the names: " .. n)
end)
test("misspelt names are errors", function()
  local ok, e = pcall(function() return provium.sys.opnat end)
  assert(not ok); assert_contains(e, "provium.sys has no opnat")
  ok, e = pcall(function() provium.errno.ENOTHING = 3 end)
  assert(not ok); assert_contains(e, "provium.errno is not for adding names to (ENOTHING)")
  ok, e = pcall(vm.syscall, vm, "opnat")
  assert(not ok); assert_contains(e, 'unknown system call "opnat" (x86_64)')
end)
test("ioctl encoders", function()
  assert_eq(0x80045200, provium.ioc.IOR(0x52, 0, 4))
  assert_eq(0x80045200, provium.ioc.IOR("R", 0, 4))
  assert_eq(0x40045201, provium.ioc.IOW(0x52, 1, 4))
  assert_eq(0xc0045202, provium.ioc.IOWR(0x52, 2, 4))
  assert_eq(0x5206, provium.ioc.IO(0x52, 6))
  assert(not pcall(provium.ioc.IOR, 0x52, 256, 4), "nr past 255")
  assert(not pcall(provium.ioc.IOR, 0x52, 0, 16384), "size past 14 bits")
end)
test("syscalls by name", function()
  assert_eq(vm:syscall(39), vm:syscall("getpid"))
  assert_eq(vm:syscall_buf(257, 1, "/x\0", -100), vm:syscall_buf("openat", 1, "/x\0", -100))
end)
test("errno names in failures", function()
  local ok, e = pcall(assert_eq, 0, -13)
  assert_contains(e, "expected 0, got -13 (-EACCES)")
end)
`)
	r.mustPass(t)
}
