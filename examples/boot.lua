-- Boot a VM from the built-in profile, run commands, move files.
local vm = provium.create("minimal"):boot({memory = "256M"})

test("commands", function()
  local r = vm:exec("uname -s; echo oops >&2; exit 3")
  assert_eq(3, r.exit_code)
  assert(r.stdout:starts_with("Linux"))
  assert_contains(r.stderr, "oops")
end)

test("exec options", function()
  local r = vm:exec("cat; echo $GREETING; pwd", {stdin = "in\n", env = {GREETING = "hi"}, cwd = "/tmp"})
  assert_eq("in\nhi\n/tmp\n", r.stdout.value)
  local slow = vm:exec("sleep 30", {timeout = 1})
  assert(slow.timed_out, "the command was stopped")
end)

test("files", function()
  vm:write_file("/tmp/blob", "\0\1\2binary")
  assert_eq("\0\1\2binary", vm:read_file("/tmp/blob"))
  local ok, err = pcall(vm.read_file, vm, "/no/such/file")
  assert(not ok)
  assert_contains(tostring(err), "ENOENT")
end)

test("json and dmesg", function()
  local t = vm:json([[echo '{"cpus": 1, "ok": true}']])
  assert_eq(true, t.ok)
  assert_contains(vm:dmesg("Linux version"), "Linux version")
end)

vm:shutdown()
