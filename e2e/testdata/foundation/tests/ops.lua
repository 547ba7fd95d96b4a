-- Every agent operation on one VM, from "created" to "shut down".
-- The Go test writes disk.img (a known byte pattern) and inject.txt into
-- the project before the run.

test("unknown profile lists the known ones", function()
  local ok, err = pcall(provium.create, "no-such-profile")
  assert(not ok, "create of an unknown profile must fail")
  err = tostring(err)
  assert_contains(err, "no-such-profile")
  assert_contains(err, "default")
  assert_contains(err, "minimal")
end)

local vm = provium.create("minimal")

test("calls before boot name the state", function()
  assert_eq("created", vm.state)
  for _, call in ipairs({
    function() return vm:exec("true") end,
    function() return vm:read_file("/etc/passwd") end,
    function() return vm:syscall(39) end,
  }) do
    local ok, err = pcall(call)
    assert(not ok, "a call before boot must fail")
    assert_contains(tostring(err), "created")
    assert_contains(tostring(err), vm.name)
  end
end)

vm:boot({
  memory = "256M",
  files = {
    ["/etc/provium-injected.txt"] = "inject.txt",
    ["/opt/deep/dir/payload.bin"] = "payload.bin",
  },
  disks = {{path = "disk.img", format = "raw", readonly = true}},
})

test("boot", function()
  assert_eq("running", vm.state)
  assert(vm:syscall(39) > 0, "getpid")
  assert_contains(vm:exec("uname -s").stdout, "Linux")
end)

test("exec exit code, stdout and stderr", function()
  local r = vm:exec("echo out; echo err >&2; exit 3")
  assert_eq(false, r.ok)
  assert_eq(3, r.exit_code)
  assert_eq("out\n", r.stdout.value)
  assert_eq("err\n", r.stderr.value)
  assert_eq(nil, r.signal)
  assert_eq(false, r.timed_out)
  local t = vm:exec("true")
  assert(t.ok)
  assert_eq(0, t.exit_code)
  assert_eq("", t.stdout.value)
  -- binary output and output with no newline survive as they are
  local b = vm:exec("printf 'a\\000b\\377'")
  assert_eq("a\0b\255", b.stdout.value)
end)

test("exec reports a signal", function()
  local r = vm:exec("echo before; kill -9 $$; echo after")
  assert_eq(false, r.ok)
  assert_eq(137, r.exit_code)
  assert_eq(9, r.signal)
  assert_eq(false, r.timed_out)
  assert_eq("before\n", r.stdout.value)
  local t = vm:exec("kill -TERM $$")
  assert_eq(143, t.exit_code)
  assert_eq(15, t.signal)
end)

test("exec of a missing command is a result, not an error", function()
  local r = vm:exec("no-such-command-xyz --flag")
  assert_eq(false, r.ok)
  assert_eq(127, r.exit_code)
  assert_contains(r.stderr, "no-such-command-xyz")
  assert(vm:exec("true").ok, "VM still usable")
end)

test("write_file and read_file", function()
  vm:write_file("/tmp/hello.txt", "hello\nworld\n")
  assert_eq("hello\nworld\n", vm:read_file("/tmp/hello.txt"))
  assert_eq("12", vm:exec("wc -c < /tmp/hello.txt").stdout.trim())
  -- replacing a file truncates it
  vm:write_file("/tmp/hello.txt", "x")
  assert_eq("x", vm:read_file("/tmp/hello.txt"))
  -- empty file
  vm:write_file("/tmp/empty", "")
  assert_eq("", vm:read_file("/tmp/empty"))
  assert_eq("0", vm:exec("wc -c < /tmp/empty").stdout.trim())
  -- a file written in the guest is read back by the host
  vm:exec("printf 'from-guest' > /tmp/g.txt")
  assert_eq("from-guest", vm:read_file("/tmp/g.txt"))
  -- mode argument
  vm:write_file("/tmp/script.sh", "#!/bin/sh\necho ran\n", tonumber("755", 8))
  assert_eq("ran\n", vm:exec("/tmp/script.sh").stdout.value)
end)

test("binary file round trip", function()
  local bytes = {}
  for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
  local data = table.concat(bytes):rep(3)
  vm:write_file("/tmp/bin", data)
  assert(vm:read_file("/tmp/bin") == data, "binary data differs")
  assert_eq("768", vm:exec("wc -c < /tmp/bin").stdout.trim())
  -- the guest sees the same bytes: byte 0, 10 (newline) and 255
  assert_eq("00 0a ff", vm:exec("od -An -tx1 -j0 -N1 /tmp/bin; od -An -tx1 -j10 -N1 /tmp/bin; od -An -tx1 -j255 -N1 /tmp/bin").stdout.value:gsub("%s+", " "):match("^%s*(.-)%s*$"))
end)

test("a 20 MiB file round trip", function()
  local chunk = {}
  for i = 0, 4095 do chunk[#chunk + 1] = string.char(i % 251) end
  local big = table.concat(chunk):rep(5 * 1024) -- 4096 * 5120 = 20 MiB
  assert_eq(20 * 1024 * 1024, #big)
  vm:write_file("/tmp/big", big)
  assert_eq(tostring(#big), vm:exec("wc -c < /tmp/big").stdout.trim())
  -- the guest's view of the content matches the host's
  local sum = vm:exec("md5sum /tmp/big").stdout.value:match("^(%x+)")
  vm:exec("head -c 4096 /tmp/big > /tmp/big-head")
  assert(vm:read_file("/tmp/big-head") == big:sub(1, 4096), "first page differs")
  local back = vm:read_file("/tmp/big")
  assert_eq(#big, #back)
  assert(back == big, "20 MiB content differs")
  vm:write_file("/tmp/big2", back)
  assert_eq(sum, vm:exec("md5sum /tmp/big2").stdout.value:match("^(%x+)"))
  vm:exec("rm -f /tmp/big /tmp/big2")
end)

test("file errors name the path and the errno", function()
  local ok, err = pcall(function() return vm:read_file("/nonexistent/file.txt") end)
  assert(not ok, "read of a missing file must fail")
  err = tostring(err)
  assert_contains(err, "ENOENT")
  assert_contains(err, "/nonexistent/file.txt")
  assert_contains(err, "read_file")
  assert(not err:find("--- console", 1, true), "an ENOENT is not an infrastructure failure: " .. err)

  ok, err = pcall(function() vm:write_file("/nonexistent/dir/x", "data") end)
  assert(not ok, "write into a missing directory must fail")
  assert_contains(tostring(err), "ENOENT")
  assert_contains(tostring(err), "/nonexistent/dir/x")

  ok, err = pcall(function() return vm:read_file("/tmp") end)
  assert(not ok, "reading a directory must fail")
  assert_contains(tostring(err), "EISDIR")

  -- A file without an end stops at half the guest's available memory.
  ok, err = pcall(function() return vm:read_file("/dev/zero") end)
  assert(not ok, "reading /dev/zero must fail")
  assert_contains(tostring(err), "EFBIG")
  assert_contains(tostring(err), "half of the guest's available memory")
  assert(vm:exec("true").ok, "VM still usable after file errors")
end)

test("files given at boot are present", function()
  assert_eq("injected at boot\n", vm:read_file("/etc/provium-injected.txt"))
  local payload = vm:read_file("/opt/deep/dir/payload.bin")
  assert_eq(1000, #payload)
  assert_eq("\0\1\2\3", payload:sub(1, 4))
  assert_eq(string.char(999 % 256), payload:sub(1000, 1000))
end)

test("disks given at boot are attached", function()
  vm:wait_until(function() return vm:exec("test -b /dev/vda").ok end,
    {timeout = 30, interval = 0.2, desc = "/dev/vda"})
  local head = vm:exec("head -c 16 /dev/vda")
  assert(head.ok, head.stderr.value)
  assert_eq("PROVIUM-DISK-01\n", head.stdout.value)
  -- a byte in the middle: offset 1 MiB + 7 holds 0xa5
  local mid = vm:exec("dd if=/dev/vda bs=1 skip=1048583 count=1 2>/dev/null | od -An -tx1")
  assert_eq("a5", mid.stdout.trim())
  assert_eq("2097152", vm:exec("blockdev --getsize64 /dev/vda").stdout.trim())
  -- attached read-only
  assert_eq("1", vm:exec("cat /sys/block/vda/ro").stdout.trim())
  assert(not vm:exec("echo x | dd of=/dev/vda conv=notrunc 2>/dev/null").ok,
    "writing to a read-only disk must fail")
end)

vm:shutdown()

test("calls after shutdown name the state", function()
  assert_eq("shut down", vm.state)
  local ok, err = pcall(function() return vm:exec("true") end)
  assert(not ok, "exec after shutdown must fail")
  assert_contains(tostring(err), "shut down")
  assert_contains(tostring(err), "exec")
  ok, err = pcall(function() return vm:write_file("/tmp/x", "x") end)
  assert(not ok, "write_file after shutdown must fail")
  assert_contains(tostring(err), "shut down")
  vm:shutdown() -- idempotent
  ok, err = pcall(function() return vm:boot() end)
  assert(not ok, "a shut down VM cannot boot again")
  assert_contains(tostring(err), "shut down")
end)
