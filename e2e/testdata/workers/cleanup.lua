-- Workers left running by a fixture script are killed before its
-- snapshot; worker:kill() ends a worker and later calls raise.
local vm = provium.fixture("busy")

test("workers and jobs alive at the end of the fixture script are gone", function()
  -- Checked at once: the resumed guest is what the snapshot holds.
  local fpid, tpid, ttid, jpid, wjpid = vm:read_file("/tmp/left-running"):match("(%d+) (%d+) (%d+) (%d+) (%d+)")
  assert(fpid, "the fixture recorded its workers")
  -- Alive: a /proc entry that is not a zombie (those are dead, not reaped yet).
  local check = string.format([[
alive() { s=$(cut -d' ' -f3 "$1/stat" 2>/dev/null) && [ -n "$s" ] && [ "$s" != Z ]; }
alive /proc/%s && echo fork-worker
alive /proc/%s/task/%s && echo thread-worker
alive /proc/%s && echo job
alive /proc/%s && echo worker-job
ps | grep -e '[p]rovium-worker' -e '[s]leep 100'
true]], fpid, tpid, ttid, jpid, wjpid)
  assert_eq("", vm:exec(check).stdout.trim(), "left over in the snapshot")
end)

test("a killed worker refuses calls", function()
  local w = vm:spawn()
  local pid = w.pid
  assert_eq("w", w:exec("echo w").stdout.trim())
  w:kill()
  assert_contains(tostring(w), "killed")
  local ok, err = pcall(function() return w:exec("true") end)
  assert(not ok, "a call on a killed worker must raise")
  ok = pcall(function() return w:syscall(39) end)
  assert(not ok, "a syscall on a killed worker must raise")
  w:kill() -- twice is fine
  wait_until(function() return not vm:exec("test -d /proc/" .. pid).ok end, {desc = "the killed worker to exit", timeout = 20})
  assert(vm:exec("true").ok, "the VM is unaffected")
end)
