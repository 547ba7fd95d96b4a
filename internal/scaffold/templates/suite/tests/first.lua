-- A first test: boot a VM of the built-in "minimal" profile and drive it.
-- Run it with `provium test tests/`.

local vm = provium.create("minimal")
vm:boot()

test("the guest runs commands", function()
	local r = vm:exec("uname -s")
	assert(r.ok, "uname failed: " .. tostring(r.stderr))
	assert_eq("Linux", r.stdout:trim())
end)

test("files go in and come out", function()
	vm:write_file("/tmp/greeting", "hello\n")
	assert_eq("hello\n", vm:read_file("/tmp/greeting"))
end)

test("a worker is another process of the guest", function()
	local w = vm:spawn()
	assert(vm:syscall("getpid") ~= w:syscall("getpid"), "the worker shares the VM's pid")
	w:kill()
end)

vm:shutdown()
