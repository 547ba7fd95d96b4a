package luaapi

import (
	"context"
	"encoding/binary"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/result"
	"github.com/provium/provium/internal/wire"
)

func TestPackUnpack(t *testing.T) {
	r := runLua(t, `
test("round trips", function()
  local d = provium.pack("u32 u32 u64", 1, 42, 0)
  assert_eq("\1\0\0\0\42\0\0\0\0\0\0\0\0\0\0\0", d)
  local a, b, c = provium.unpack("u32 u32 u64", d)
  assert_eq(1, a); assert_eq(42, b); assert_eq(0, c)
  assert_eq(-2, provium.unpack("i16", provium.pack("i16", -2)))
  assert_eq(-128, provium.unpack("i8", provium.pack("i8", -128)))
  assert_eq(255, provium.unpack("u8", provium.pack("u8", 255)))
  assert_eq(-5, provium.unpack("i32", provium.pack("i32", -5)))
  assert_eq(4294967295, provium.unpack("u32", "\255\255\255\255"))
  assert_eq(-1, provium.unpack("i64", provium.pack("i64", -1)))
  assert_eq("", provium.pack(""))
  -- data longer than the format is fine
  assert_eq(1, provium.unpack("u8", "\1\2\3"))
end)

test("exact 64-bit values as strings", function()
  assert_eq("\255\255\255\255\255\255\255\255", provium.pack("u64", "0xffffffffffffffff"))
  assert_eq("\255\255\255\255\255\255\255\255", provium.pack("u64", "18446744073709551615"))
  assert_eq("\1\0\0\0\0\0\0\128", provium.pack("u64", "0x8000000000000001"))
  assert_eq("\0\0\0\0\0\0\0\128", provium.pack("i64", "-9223372036854775808"))
  assert_eq("\255\255\255\255\255\255\255\127", provium.pack("i64", "0x7fffffffffffffff"))
  assert_eq("\10", provium.pack("u8", "010")) -- decimal, not octal
  -- Beyond 2^53 a double is not exact: unpack gives the decimal string,
  -- which pack takes back.
  assert_eq("9223372036854775808", provium.unpack("u64", "\0\0\0\0\0\0\0\128"))
  assert_eq("18446744073709551615", provium.unpack("u64", provium.pack("u64", "0xffffffffffffffff")))
  assert_eq("9007199254740993", provium.unpack("u64", provium.pack("u64", "9007199254740993")))
  assert_eq("-9223372036854775808", provium.unpack("i64", provium.pack("i64", "-9223372036854775808")))
  assert_eq(2^53, provium.unpack("u64", provium.pack("u64", 2^53)))
  assert_eq(-2^53, provium.unpack("i64", provium.pack("i64", -2^53)))
  local big = provium.unpack("u64", provium.pack("u64", "0x8000000000000001"))
  assert_eq(provium.pack("u64", "0x8000000000000001"), provium.pack("u64", big))
end)

local function err(f, ...)
  local ok, e = pcall(f, ...)
  assert(not ok, "expected an error")
  return e
end

test("errors", function()
  assert_contains(err(provium.pack, "u8", 256), "bad argument #2 to 'provium.pack' (value 256 is out of range for u8 (0..255))")
  local ok, e = pcall(function() provium.pack("u8", 256) end)
  assert_contains(e, "tests/t.lua:45: bad argument #2 to 'provium.pack' (value 256")
  assert_contains(err(provium.pack, "u16", -1), "value -1 is out of range for u16 (0..65535)")
  assert_contains(err(provium.pack, "i8", 128), "value 128 is out of range for i8 (-128..127)")
  assert_contains(err(provium.pack, "i64", "0x8000000000000000"), "out of range for i64")
  assert_contains(err(provium.pack, "u64", "0x10000000000000000"), "does not fit in 64 bits")
  assert_contains(err(provium.pack, "u64", "-0x8000000000000001"), "does not fit in 64 bits")
  assert_contains(err(provium.pack, "q32", 1), 'unknown type "q32"')
  assert_contains(err(provium.pack, "u32 u32", 1), 'format "u32 u32" has 2 values, got 1')
  assert_contains(err(provium.pack, "u8", 1, 2), 'format "u8" has 1 values, got 2')
  assert_contains(err(provium.pack, "u8", 1.5), "1.5 is not an integer")
  assert_contains(err(provium.pack, "u8", "zz"), '"zz" is not an integer')
  assert_contains(err(provium.pack, "u8", true), "integer expected, got boolean")
  assert_contains(err(provium.unpack, "u32", "ab"), 'data is 2 bytes, format "u32" needs 4')
  assert_contains(err(provium.unpack, "u8 x", "ab"), 'unknown type "x"')
  assert_contains(err(provium.unpack, "u8", 5), "string expected, got number")
end)
`)
	r.mustPass(t)
}

func TestAssertionMessages(t *testing.T) {
	long := strings.Repeat("x", 300)
	r := runLua(t, `
test("eq strings", function()
  assert_eq("a\0b\n", "a\0c\n", "bytes")
end)
test("eq types", function()
  assert_eq(3, "3")
end)
test("eq long", function()
  assert_eq(string.rep("x", 300), string.rep("x", 299) .. "y")
end)
test("assert msg", function()
  assert(1 == 2, "one is not two")
end)
test("assert bare", function()
  assert(false)
end)
test("contains", function()
  local w = provium.create("minimal"):boot():exec("lines").stdout
  assert_contains(w, "zz", "no zz")
end)
test("equal values pass", function()
  assert_eq(3, 3.0)
  assert_eq({1, {a = "b"}}, {1, {a = "b"}})
  assert_eq(nil, nil)
  local r = provium.create("minimal"):boot():exec("lines")
  assert_eq("a\nb\n", r.stdout)
  assert_eq(r.stdout, "a\nb\n")
  assert_contains(r.stdout, "b")
  assert_eq(5, assert(5, "returned"))
end)
`)
	cases := map[string]string{
		"eq strings":  `tests/t.lua:3: bytes: expected "a\x00b\n", got "a\x00c\n"`,
		"eq types":    `tests/t.lua:6: expected 3 (number), got "3" (string)`,
		"eq long":     `tests/t.lua:9: expected "` + long[:100] + `"... (300 bytes), got "` + long[:100] + `"... (300 bytes) (first difference at byte 299)`,
		"assert msg":  `tests/t.lua:12: assertion failed: one is not two`,
		"assert bare": `tests/t.lua:15: assertion failed`,
		"contains":    `tests/t.lua:19: no zz: expected "a\nb\n" to contain "zz"`,
	}
	for name, want := range cases {
		f := r.failure(t, name)
		if !strings.HasSuffix(f.Message, want) {
			t.Errorf("%s: message\n  %s\nwant suffix\n  %s", name, f.Message, want)
		}
		if !strings.HasSuffix(f.Location, "tests/t.lua:"+strings.Split(strings.TrimPrefix(want, "tests/t.lua:"), ":")[0]) {
			t.Errorf("%s: location %q", name, f.Location)
		}
		if !strings.Contains(f.Traceback, "t.lua:") {
			t.Errorf("%s: traceback %q", name, f.Traceback)
		}
	}
	// An assertion is not the guest's failure: no console of its own, the
	// file's report shows the VM's console once.
	if f := r.failure(t, "contains"); f.Guest != nil {
		t.Errorf("assertion failure carries the guest's side: %+v", f.Guest)
	}
	if c := r.res.Console; c == nil || c.VM != "minimal#1" || len(c.Console) == 0 {
		t.Errorf("file console after an assertion on a VM: %+v", c)
	}
	if st := r.res.Subtests[len(r.res.Subtests)-1]; st.Status != result.Passed {
		t.Errorf("equal values: %v %+v", st.Status, st.Failure)
	}
}

func TestSubtestFlow(t *testing.T) {
	t.Run("failures stay in their sub-test", func(t *testing.T) {
		var seen []string
		r := runLua(t, `
test("one", function() end)
test("two", function() error("boom") end)
test("three", function() todo("not yet"); error("never reached") end)
test("outer", function()
  test("inner", function() error({code = 1}) end)
end)
after = true
`, func(o *Options, _ *context.Context) {
			o.OnSubtest = func(s result.Subtest) { seen = append(seen, s.Name+":"+s.Status.String()) }
		})
		want := []string{"one:ok", "two:FAIL", "three:todo", "outer/inner:FAIL", "outer:ok"}
		if !reflect.DeepEqual(seen, want) {
			t.Errorf("OnSubtest saw %v, want %v", seen, want)
		}
		if r.res.Status != result.Failed || r.res.Failure != nil || !r.res.Touched {
			t.Errorf("status %v failure %+v touched %v", r.res.Status, r.res.Failure, r.res.Touched)
		}
		if r.res.Subtests[2].Reason != "not yet" {
			t.Errorf("todo reason %q", r.res.Subtests[2].Reason)
		}
		wantContains(t, r.failure(t, "outer/inner").Message, "tests/t.lua:6: error raised with a table value: {code = 1}")
		wantContains(t, r.log.String(), "[test] two: FAIL:", "[test] three: todo: not yet")
	})
	t.Run("an error outside test stops the file", func(t *testing.T) {
		r := runLua(t, `
test("first", function() end)
local x = nil
x.field = 1
test("never", function() end)
`)
		if r.res.Status != result.Failed || r.res.Failure == nil || len(r.res.Subtests) != 1 {
			t.Fatalf("status %v failure %+v subtests %d", r.res.Status, r.res.Failure, len(r.res.Subtests))
		}
		wantContains(t, r.res.Failure.Message, "tests/t.lua:4: ")
		if !strings.HasSuffix(r.res.Failure.Location, "tests/t.lua:4") {
			t.Errorf("location %q", r.res.Failure.Location)
		}
	})
	t.Run("todo at file scope skips the rest", func(t *testing.T) {
		r := runLua(t, `
test("first", function() end)
todo("whole file later")
test("never", function() end)
`)
		if r.res.Status != result.Skipped || r.res.Reason != "whole file later" || len(r.res.Subtests) != 1 {
			t.Errorf("status %v reason %q subtests %d", r.res.Status, r.res.Reason, len(r.res.Subtests))
		}
	})
	t.Run("todo at file scope after a failure", func(t *testing.T) {
		r := runLua(t, `test("bad", function() error("x") end) todo()`)
		if r.res.Status != result.Failed {
			t.Errorf("status %v", r.res.Status)
		}
	})
	t.Run("a helper file passes untouched", func(t *testing.T) {
		r := runLua(t, `local h = {} function h.f() end return h`)
		if r.res.Status != result.Passed || r.res.Touched {
			t.Errorf("status %v touched %v", r.res.Status, r.res.Touched)
		}
	})
	t.Run("non-string errors and panics do not crash", func(t *testing.T) {
		r := runLua(t, `
test("nil", function() error(nil) end)
test("panic", function() provium.create("panicky"):boot() end)
error(setmetatable({}, {__tostring = function() return "custom" end}))
`)
		wantContains(t, r.failure(t, "nil").Message, "tests/t.lua:2: error raised with a nil value")
		wantContains(t, r.failure(t, "panic").Message, "tests/t.lua:3: internal error in boot: fake machine exploded")
		wantContains(t, r.res.Failure.Message, "tests/t.lua:4: custom")
	})
	t.Run("syntax error", func(t *testing.T) {
		r := runLua(t, "test('x', function()\n  if then\nend)\n")
		if r.res.Status != result.Failed || r.res.Failure == nil {
			t.Fatalf("status %v", r.res.Status)
		}
		wantContains(t, r.res.Failure.Location, "tests/t.lua:2")
		wantContains(t, r.res.Failure.Message, "tests/t.lua:2: syntax error near 'then' (column 9)")
	})
	t.Run("os.exit is refused", func(t *testing.T) {
		r := runLua(t, `os.exit(0)`)
		wantContains(t, r.res.Failure.Message, "tests/t.lua:1: os.exit is not available")
	})
}

func TestProtectedCallsKeepUpvalues(t *testing.T) {
	// gopher-lua closes every open upvalue of a state when an error is
	// raised in it; pcall, xpcall and test must not let that cut closures
	// off from their caller's locals.
	r := runLua(t, `
local n = 0
local function inc() n = n + 1 end
assert(not pcall(error, "a"))
assert(not pcall(function() error("b") end))
assert(not xpcall(function() local x = nil; return x.y end, function(e) return e end))
inc()
assert_eq(1, n)
test("fails", function() inc(); pcall(error, "c"); error("d") end)
inc()
assert_eq(3, n)
test("in a test", function()
  local m = 0
  local function inc2() m = m + 1 end
  pcall(error, "x")
  pcall(function() error("y") end)
  inc2()
  assert_eq(1, m)
end)
test("results", function()
  assert_eq({true, 1, 2}, {pcall(function(a, b) return a, b end, 1, 2)})
  assert_eq({false, "handled"}, {xpcall(function() error("e") end, function() return "handled" end)})
  local ok, e = pcall(function() error({code = 7}) end)
  assert_eq(7, e.code)
  ok, e = pcall(nil)
  assert(not ok)
end)
`)
	if st := r.res.Subtests; len(st) != 3 || st[0].Status != result.Failed || st[1].Status != result.Passed || st[2].Status != result.Passed {
		t.Errorf("sub-tests %+v", st)
	}
	if r.res.Failure != nil {
		t.Errorf("file failed: %s", r.res.Failure.Message)
	}
}

func TestDofileAndRequire(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "tests/helpers.lua", "return {answer = 42}\n")
	writeFile(t, dir, "lib/mod.lua", "#!/usr/bin/env lua\nlocal m = {}\nfunction m.boom() error('in mod') end\nreturn m\n")
	path := writeFile(t, dir, "tests/deep/t.lua", `
local h = dofile("tests/helpers.lua")
assert_eq(42, h.answer)
assert_eq(42, loadfile("tests/helpers.lua")().answer)
local f, msg = loadfile("tests/missing.lua")
assert_eq(nil, f)
assert_contains(msg, "cannot open tests/missing.lua")
assert(not pcall(dofile, "tests/missing.lua"))
package.path = "lib/?.lua;" .. package.path
local m = require("mod")
assert_eq(m, require("mod"))
assert(require("provium") == provium)
local ok, e = pcall(m.boom)
assert_contains(e, "lib/mod.lua:3: in mod") -- the #! line keeps line numbers
`)
	res := Run(context.Background(), Options{Path: path, StartDir: dir, Host: &fakeHost{t: t}})
	if res.Status != result.Passed {
		t.Fatalf("status %v: %+v", res.Status, res.Failure)
	}

	// A failure inside a helper leads with the test's line.
	path2 := writeFile(t, dir, "tests/t2.lua", "package.path = 'lib/?.lua'\nlocal m = require('mod')\n\ntest('x', function()\n  m.boom()\nend)\n")
	res2 := Run(context.Background(), Options{Path: path2, StartDir: dir, Host: &fakeHost{t: t}})
	if f := res2.Subtests[0].Failure; f == nil || f.Message != path2+":5: lib/mod.lua:3: in mod" || f.Location != path2+":5" {
		t.Errorf("helper failure %+v", f)
	} else {
		wantContains(t, f.Traceback, "lib/mod.lua:3: in function <lib/mod.lua:3>", path2+":5: in function <"+path2+":4>", path2+":4: in main chunk")
	}
	want := []string{filepath.Join(dir, "tests/helpers.lua"), filepath.Join(dir, "lib/mod.lua")}
	if !reflect.DeepEqual(res.Loaded, want) {
		t.Errorf("Loaded %v, want %v", res.Loaded, want)
	}
}

func TestLifecycleAndWrongState(t *testing.T) {
	r := runLua(t, `
local function err(f) local ok, e = pcall(f) assert(not ok, "expected an error") return e end
assert_contains(err(function() provium.create("nope") end), 'unknown profile "nope" (known: minimal, panicky)')
local vm = provium.create("minimal")
assert_eq("minimal#1", vm.name)
assert_contains(err(function() vm:exec("true") end), "vm:exec on minimal#1: VM is not running (state: created)")
assert_contains(err(function() vm:spawn() end), "vm:spawn on minimal#1: VM is not running (state: created)")
assert_contains(err(function() vm:boot({mem = "1G"}) end), "unknown option \"mem\"")
assert_contains(err(function() vm:boot({memory = "lots"}) end), "option memory")
assert(vm:boot({memory = "1G", cpus = 2, files = {["/etc/x"] = "data/x"},
  disks = {{"disk.img"}, {path = "/abs.qcow2", format = "qcow2", readonly = true}}}) == vm)
assert_contains(err(function() vm:boot() end), "vm:boot on minimal#1: VM cannot boot (state: running)")
assert(vm:exec("true").ok)
vm:shutdown()
vm:shutdown()
assert_contains(err(function() vm:exec("true") end), "(state: shut down)")
assert_contains(err(function() vm.exec("true") end), "vm or worker expected, got string")
local b = provium.fixture("base")
assert_eq("base", b:read_file("/tmp/fixture-marker"))
assert_contains(err(function() provium.fixture("zz") end), 'provium.fixture("zz"): no fixture zz')
local c = provium.create("minimal")
provium.shutdown_all()
assert_eq("shut down", b.state)
assert_eq("shut down", c.state)
`)
	r.mustPass(t)
	m := r.host.machine(0)
	want := struct {
		MemoryMiB, CPUs int
		Files           map[string]string
	}{1024, 2, map[string]string{"/etc/x": filepath.Join(r.dir, "data/x")}}
	if m.booted.MemoryMiB != want.MemoryMiB || m.booted.CPUs != want.CPUs || !reflect.DeepEqual(m.booted.Files, want.Files) {
		t.Errorf("boot options %+v", m.booted)
	}
	if d := m.booted.Disks; len(d) != 2 || d[0].Path != filepath.Join(r.dir, "disk.img") || d[0].Format != "raw" ||
		d[1].Format != "qcow2" || !d[1].ReadOnly {
		t.Errorf("disks %+v", d)
	}
	if len(r.host.machines) != 3 || r.host.machines[1].Name() != "base#2" {
		t.Errorf("machines %v", r.host.machines)
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]int{"512M": 512, "1G": 1024, "1.5G": 1536, "2048K": 2, "1K": 1, "256": 256, "1GiB": 1024} {
		if got, err := parseSizeMiB(luaString(in)); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1G", "0", "lots"} {
		if _, err := parseSizeMiB(luaString(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestExecAndFiles(t *testing.T) {
	r := runLua(t, `
local vm = provium.create("minimal"):boot()
test("result fields and wrappers", function()
  local r = vm:exec("echo out; echo err >&2; exit 3")
  assert(not r.ok)
  assert_eq(3, r.exit_code)
  assert_eq(nil, r.signal)
  assert_eq(false, r.timed_out)
  assert_eq("out\n", r.stdout.value)
  assert_eq("err\n", r.stderr.value)
  assert(r.stdout.contains("ou") and r.stdout:contains("ou"))
  assert(not r.stdout.contains("zz"))
  assert(r.stdout.starts_with("out") and r.stdout:starts_with("out"))
  assert(r.stdout.ends_with("t\n") and not r.stdout:ends_with("x"))
  assert_eq("out", r.stdout.trim())
  assert_eq("out", r.stdout:trim())
  assert_eq("out\n", tostring(r.stdout))
  assert_eq(4, #r.stdout)
  assert_eq("[out\n]", "[" .. r.stdout .. "]")
  assert_eq("OUT\n", r.stdout:upper())
  assert_eq("ou", r.stdout.sub(1, 2))
  assert(r.stdout == vm:exec("echo out; echo err >&2; exit 3").stdout)
  assert_eq({"a", "b"}, vm:exec("lines").stdout:lines())
  local k = vm:exec("killed")
  assert_eq(9, k.signal)
  assert(not k.ok)
  local ok, e = pcall(function() return r.stdout.contains() end)
  assert_contains(e, "bad argument #1 to 'contains' (string expected, got no value)")
end)
test("exec options", function()
  vm:exec("with-opts", {timeout = 1.5, stdin = "in", env = {B = "2", A = "1"}, cwd = "/tmp"})
  vm:exec("with-list-env", {env = {"X=1"}})
  assert(not pcall(vm.exec, vm, "x", {timeot = 1}))
  assert(not pcall(vm.exec, vm, "x", {env = {"novalue"}}))
end)
test("json", function()
  local t = vm:json("json-ok")
  assert_eq(1, t.a)
  assert_eq(true, t.b[1])
  assert_eq("x", t.b[2])
  assert_eq(nil, t.b[3])
  assert_eq({}, t.c)
  local ok, e = pcall(vm.json, vm, "json-bad")
  assert_contains(e, 'vm:json on minimal#1: output of "json-bad" is not JSON', '"not-json"')
  ok, e = pcall(vm.json, vm, "json-fail")
  assert_contains(e, "exited with code 2: boom happened")
end)
test("files", function()
  local bytes = {}
  for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
  local data = table.concat(bytes)
  vm:write_file("/tmp/bin", data)
  assert_eq(data, vm:read_file("/tmp/bin"))
  local ok, e = pcall(vm.read_file, vm, "/nonexistent/x")
  assert(not ok)
  assert_contains(e, "vm:read_file on minimal#1: open /nonexistent/x: no such file or directory (ENOENT)")
  assert(not e:find("console"), "no console tail for an operation error")
end)
test("dmesg and mount_vfs", function()
  assert_contains(vm:dmesg(), "virtio: ok")
  assert_eq("[0.0] Linux version 6.1 (x)\n[0.2] Linux version again\n", vm:dmesg("Linux version"))
  assert_eq("[0.0] Linux version 6.1 (x)\n", vm:dmesg("(x)")) -- plain text, not a pattern
  vm:mount_vfs()
end)
test("background jobs", function()
  local job = vm:background("sleep 1; echo done")
  assert_eq(7, job.id)
  assert_eq(1234, job.pid)
  local r = vm:job_wait(job, 0)
  assert(r.running)
  assert_eq(-1, r.exit_code)
  assert_contains(r.stdout, "so far")
  r = vm:job_wait(job.id, 60)
  assert(not r.running)
  assert_contains(r.stdout, "done")
  local k = vm:job_kill(job)
  assert_eq(137, k.exit_code)
  assert_eq(9, k.signal)
end)
`)
	r.mustPass(t)
	a := r.host.machine(0).agent
	var opts, list wire.Exec
	var stdin string
	for _, e := range a.execs {
		switch e.req.Cmd {
		case "with-opts":
			opts, stdin = e.req, e.stdin
		case "with-list-env":
			list = e.req
		}
	}
	want := wire.Exec{Cmd: "with-opts", Env: []string{"A=1", "B=2"}, Cwd: "/tmp", TimeoutMs: 1500}
	if !reflect.DeepEqual(opts, want) || stdin != "in" {
		t.Errorf("exec request %+v stdin %q, want %+v", opts, stdin, want)
	}
	if !reflect.DeepEqual(list.Env, []string{"X=1"}) {
		t.Errorf("list env %v", list.Env)
	}
}

func TestSyscallEncoding(t *testing.T) {
	// Each case runs in its own file, so the agent's last call is its own.
	type result struct {
		args [6]uint64
		bufs []wire.Buf
		ptrs []wire.Ptr
	}
	cases := []struct {
		name, lua string
		want      result
		check     string // Lua run after the call, with ret and outs
	}{
		{"negatives and strings", `ret = vm:syscall(257, -100, "0xffffffffffffffff", "-1", "18446744073709551615", 2^53, "-9223372036854775808")`,
			result{args: [6]uint64{^uint64(99), math.MaxUint64, math.MaxUint64, math.MaxUint64, 1 << 53, 1 << 63}}, `assert_eq(-38, ret)`},
		{"missing args are zero", `ret = vm:syscall(39, 5)`, result{args: [6]uint64{5}}, `assert_eq(42, ret)`},
		{"syscall_buf", `ret, out = vm:syscall_buf(257, 1, "/tmp/x\0", -100, 7, 64, 420)`,
			result{args: [6]uint64{^uint64(99), 0, 64, 420}, bufs: []wire.Buf{{Arg: 1}}}, `assert_eq("/tmp/x\0", out)`},
		{"syscall_buf beyond the args", `ret, out = vm:syscall_buf(1, 3, "zz")`,
			result{bufs: []wire.Buf{{Arg: 3}}}, `assert_eq("zz", out)`},
		{"syscall_bufs in index order", `ret, a, b, c = vm:syscall_bufs(0, {[4] = "four", [0] = "zero", [2] = "two"}, 0, 9)`,
			result{args: [6]uint64{0, 9}, bufs: []wire.Buf{{Arg: 0}, {Arg: 2}, {Arg: 4}}},
			`assert_eq("zero", a) assert_eq("two", b) assert_eq("four", c)`},
		{"syscall_ptr", `ret, iov, other, p1, p3 = vm:syscall_ptr(20, {[1] = provium.pack("u64 u64 u64 u64", 0, 5, 0, 3), [3] = string.rep("\0", 8)},
		    {{buf_idx = 1, ptr_offset = 0, data_len = 5, output = true},
		     {buf_idx = 3, ptr_offset = 0, data_len = 4, data = "abc"},
		     {1, 16, 3, "xyz", true}}, 4, 0, 2)`,
			result{args: [6]uint64{4, 0, 2}, bufs: []wire.Buf{{Arg: 1}, {Arg: 3}},
				ptrs: []wire.Ptr{{Buf: 0, Offset: 0, Len: 5, Output: true}, {Buf: 1, Offset: 0, Len: 4, HasData: true}, {Buf: 0, Offset: 16, Len: 3, HasData: true, Output: true}}},
			`assert_eq(provium.pack("u64 u64 u64 u64", 0x1000, 5, 0x3000, 3), iov)
			 assert_eq(provium.pack("u64", 0x2000), other)
			 assert_eq("aaaaa", p1)
			 assert_eq("xyz", p3)`},
		{"ioctl read without data", `ret, out = vm:ioctl(3, 0x80045200)`,
			result{args: [6]uint64{3, 0x80045200}, bufs: []wire.Buf{{Arg: 2}}}, `assert_eq("\0\0\0\0", out)`},
		{"ioctl write with data", `ret, out = vm:ioctl(3, 0x40085201, "12345678")`,
			result{args: [6]uint64{3, 0x40085201}, bufs: []wire.Buf{{Arg: 2}}}, `assert_eq(nil, out)`},
		{"ioctl readwrite pads short data", `ret, out = vm:ioctl(3, 0xc0085202, "ab")`,
			result{args: [6]uint64{3, 0xc0085202}, bufs: []wire.Buf{{Arg: 2}}}, `assert_eq("ab\0\0\0\0\0\0", out)`},
		{"ioctl integer argument", `ret, out = vm:ioctl(3, 0x5401, 77)`,
			result{args: [6]uint64{3, 0x5401, 77}}, `assert_eq(nil, out)`},
		{"ioctl _IO without data", `ret, out = vm:ioctl(3, 0x5402)`,
			result{args: [6]uint64{3, 0x5402}}, `assert_eq(nil, out)`},
		{"ioctl negative command", `ret = vm:ioctl(3, -2147200512)`,
			result{args: [6]uint64{3, 0x80045200}, bufs: []wire.Buf{{Arg: 2}}}, ``},
		{"ioctl_buf", `ret, st, o1 = vm:ioctl_buf(3, 0xc0105203, provium.pack("u64 u64", 0, 4), {{ptr_offset = 0, buf_len = 4, output = true}, {8, 2, "hi"}})`,
			result{args: [6]uint64{3, 0xc0105203}, bufs: []wire.Buf{{Arg: 2}},
				ptrs: []wire.Ptr{{Buf: 0, Offset: 0, Len: 4, Output: true}, {Buf: 0, Offset: 8, Len: 2, HasData: true}}},
			`assert_eq(provium.pack("u64 u64", 0x1000, 0x2000), st) assert_eq("aaaa", o1)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runLua(t, `local vm = provium.create("minimal"):boot()
`+c.lua+"\n"+c.check)
			r.mustPass(t)
			got := r.host.machine(0).agent.lastSyscall(t)
			if got.req.Args != c.want.args || !reflect.DeepEqual(got.req.Bufs, c.want.bufs) || !reflect.DeepEqual(got.req.Ptrs, c.want.ptrs) {
				t.Errorf("request %+v\nwant args %v bufs %v ptrs %v", got.req, c.want.args, c.want.bufs, c.want.ptrs)
			}
		})
	}
}

func TestSyscallRejectsMalformed(t *testing.T) {
	r := runLua(t, `
local vm = provium.create("minimal"):boot()
local function bad(want, f, ...)
  local ok, e = pcall(f, ...)
  assert(not ok, "expected an error for " .. want)
  assert_contains(e, want)
end
bad("bad argument #3 to 'syscall_buf' (buffer index 6 is not an argument index 0..5)", function() vm:syscall_buf(1, 6, "x") end)
bad("'syscall_buf' (buffer index -1", function() vm:syscall_buf(1, -1, "x") end)
bad("at most 6 arguments, got 7", function() vm:syscall(1, 1, 2, 3, 4, 5, 6, 7) end)
bad("bufs key 9 is not an argument index", function() vm:syscall_bufs(1, {[9] = "x"}) end)
bad("bufs key \"a\" is not an argument index", function() vm:syscall_bufs(1, {a = "x"}) end)
bad("bufs[1]: string expected, got number", function() vm:syscall_bufs(1, {[1] = 5}) end)
bad('"abc" is not an integer', function() vm:syscall(1, "abc") end)
bad("2.5 is not an integer", function() vm:syscall(1, 2.5) end)
bad("'syscall_ptr' (pointer spec 1: buf_idx 2: argument 2 has no buffer in bufs)",
  function() vm:syscall_ptr(20, {[1] = string.rep("\0", 16)}, {{buf_idx = 2, ptr_offset = 0, data_len = 1}}) end)
bad("'syscall_ptr' (pointer spec 2: ptr_offset 9 does not leave 8 bytes for a pointer inside the 16-byte buffer)",
  function() vm:syscall_ptr(20, {[1] = string.rep("\0", 16)}, {{1, 0, 1}, {buf_idx = 1, ptr_offset = 9, data_len = 1}}) end)
bad("pointer spec 1: ptr_offset -8 does not leave 8 bytes",
  function() vm:syscall_ptr(20, {[1] = string.rep("\0", 16)}, {{buf_idx = 1, ptr_offset = -8, data_len = 1}}) end)
bad("pointer spec 1: negative data_len -1",
  function() vm:syscall_ptr(20, {[1] = string.rep("\0", 16)}, {{buf_idx = 1, ptr_offset = 0, data_len = -1}}) end)
bad("pointer spec 1: 3 bytes of data do not fit in data_len 2",
  function() vm:syscall_ptr(20, {[1] = string.rep("\0", 16)}, {{buf_idx = 1, ptr_offset = 0, data_len = 2, data = "abc"}}) end)
bad("pointer spec 1: data_len missing",
  function() vm:syscall_ptr(20, {[1] = string.rep("\0", 16)}, {{buf_idx = 1, ptr_offset = 0}}) end)
bad("pointer spec 1: buf_len missing", function() vm:ioctl_buf(3, 0x5401, string.rep("\0", 8), {{0}}) end)
bad("'ioctl_buf' (pointer spec 1: ptr_offset 4 does not leave 8 bytes for a pointer inside the 8-byte buffer)",
  function() vm:ioctl_buf(3, 0x5401, string.rep("\0", 8), {{4, 1}}) end)
bad("ioctl command 4294967296 does not fit in 32 bits", function() vm:ioctl(3, 2^32) end)
bad("string, number or nil expected, got table", function() vm:ioctl(3, 1, {}) end)
bad("vm:syscall_bufs on minimal#1: 67108865 bytes of buffers exceed",
  function() vm:syscall_bufs(1, {[0] = string.rep("\0", 64 * 1024 * 1024 + 1)}) end)
`)
	r.mustPass(t)
	if _, n := r.host.machine(0).agent.count(); n != 0 {
		t.Errorf("%d malformed syscalls reached the agent", n)
	}
}

func TestDecodeIoctl(t *testing.T) {
	for cmd, want := range map[uint32]ioctlCmd{
		0x80045200: {0x80045200, iocRead, 4},               // _IOR('R', 0, int)
		0x40085201: {0x40085201, iocWrite, 8},              // _IOW
		0xc0105203: {0xc0105203, iocRead | iocWrite, 0x10}, // _IOWR
		0x5401:     {0x5401, 0, 0},                         // _IO (TCGETS style)
		0xbfff0000: {0xbfff0000, iocRead, 0x3fff},
	} {
		if got := decodeIoctl(cmd); got != want {
			t.Errorf("%#x: %+v, want %+v", cmd, got, want)
		}
	}
}

func TestWorkers(t *testing.T) {
	r := runLua(t, `
local vm = provium.create("minimal"):boot()
local w = vm:spawn()
local th = vm:spawn({thread = true})
assert_eq("minimal#1/worker1", w.name)
assert_eq(102, w.pid)
assert(th.thread)
assert_eq("ch1:who\n", vm:exec("who").stdout.value)
assert_eq("ch2:who\n", w:exec("who").stdout.value)
assert_eq("ch3:who\n", th:exec("who").stdout.value)
assert_eq(42, w:syscall(39))
local ok, e = pcall(function() w:boot() end)
assert_contains(e, "worker:boot on minimal#1/worker1: a worker has no boot; boot, shutdown and spawn are VM methods")
assert(not pcall(function() w:spawn() end))
w:kill()
w:kill()
ok, e = pcall(function() w:exec("true") end)
assert_contains(e, "worker:exec on minimal#1/worker1: worker was killed")
assert(vm:exec("true").ok)
left = vm:spawn() -- not killed: the file end closes it
`)
	r.mustPass(t)
	a := r.host.machine(0).agent
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.spawns) != 3 || a.spawns[0].Thread || !a.spawns[1].Thread {
		t.Errorf("spawns %+v", a.spawns)
	}
	if !reflect.DeepEqual(a.closed, []uint32{2, 3, 4}) {
		t.Errorf("closed channels %v, want [2 3 4] (the killed worker, then those left running)", a.closed)
	}
	if st := r.host.machine(0).State(); st != "killed" {
		t.Errorf("VM left running is %q at file end, want killed", st)
	}
}

func TestFixtureModeLeavesVMs(t *testing.T) {
	r := runLua(t, `
local vm = provium.create("minimal"):boot()
local w = vm:spawn()
`, func(o *Options, _ *context.Context) { o.Fixture = true })
	r.mustPass(t)
	m := r.host.machine(0)
	if m.State() != machine.StateRunning || len(m.agent.closed) != 0 {
		t.Errorf("fixture VM %q, closed %v", m.State(), m.agent.closed)
	}
	if len(r.host.machines) != 1 {
		t.Errorf("machines %v", r.host.machines)
	}
}

func TestInfrastructureErrorsCarryTheConsole(t *testing.T) {
	r := runLua(t, `
test("agent dies", function()
  local vm = provium.create("minimal"):boot()
  vm:exec("die")
end)
test("dead VM", function()
  local vm = provium.create("minimal"):boot()
  pcall(vm.exec, vm, "die")
  vm:exec("true")
end)
`)
	f := r.failure(t, "agent dies")
	if want := "tests/t.lua:4: vm:exec on minimal#1: agent connection lost: connection closed"; !strings.HasSuffix(f.Message, want) {
		t.Errorf("message %q, want it to end with %q and carry no console text", f.Message, want)
	}
	if g := f.Guest; g == nil || g.VM != "minimal#1" || !slices.Equal(g.Console, []string{"[    0.000] booting minimal#1", "[    1.000] provium agent ready"}) {
		t.Errorf("failure's guest side = %+v", f.Guest)
	}
	if d := r.failure(t, "dead VM"); !strings.HasSuffix(d.Message, "vm:exec on minimal#2: VM is not running (state: dead)") || d.Guest == nil {
		t.Errorf("dead VM failure %q, guest %+v", d.Message, d.Guest)
	}
	// What Lua itself sees is the whole story, console included.
	r = runLua(t, `
local vm = provium.create("minimal"):boot()
local ok, e = pcall(vm.exec, vm, "die")
assert(not ok)
assert_contains(e, "vm:exec on minimal#1: agent connection lost: connection closed\n--- console (last 2 lines) ---\n[    0.000] booting minimal#1\n")
`)
	r.mustPass(t)
}

func TestWaitUntil(t *testing.T) {
	r := runLua(t, `
local n = 0
assert_eq(3, wait_until(function() n = n + 1; return n >= 3 and n end, {interval = 0.001}))
local ok, e = pcall(wait_until, function() return false end, {timeout = 0.05, interval = 0.01, desc = "never-true"})
assert_contains(e, "timed out waiting for never-true (after 0.05s)")
ok, e = pcall(wait_until, function() return nil end, {timeout = 0})
assert_contains(e, "timed out waiting for condition (after 0s)")
ok, e = pcall(wait_until, function() error("inner failure") end)
assert_contains(e, "tests/t.lua:8: inner failure")
assert(not pcall(wait_until, function() return true end, {timeout = -1}))
assert(not pcall(wait_until, function() return true end, {tiemout = 1}))
local vm = provium.create("minimal"):boot()
assert(vm:wait_until(function() return vm:exec("true").ok end))
`)
	r.mustPass(t)
}

func TestCancellationStopsTheScript(t *testing.T) {
	cases := map[string]string{
		"busy loop":         `while true do end`,
		"loop in a test":    `test("spin", function() while true do end end) test("after", function() end)`,
		"wait_until sleeps": `wait_until(function() return false end, {timeout = 3600, interval = 3600})`,
		"pcall in a loop":   `while true do pcall(function() end) end`,
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			done := make(chan *run, 1)
			go func() {
				done <- runLua(t, "local vm = provium.create('minimal'):boot()\n"+src, expireOnceBooted(t, 50*time.Millisecond))
			}()
			var r *run
			select {
			case r = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the script did not stop")
			}
			if r.res.Status != result.Failed || r.res.Failure == nil {
				t.Fatalf("status %v failure %+v", r.res.Status, r.res.Failure)
			}
			wantContains(t, r.res.Failure.Message, "test file stopped: context deadline exceeded")
			for _, st := range r.res.Subtests {
				if st.Name == "after" {
					t.Error("the file went on after being stopped")
				}
			}
			if st := r.host.machine(0).State(); st != "killed" {
				t.Errorf("VM is %q after a stopped file", st)
			}
		})
	}
}

// expireOnceBooted ends the file's context as a deadline would, d after
// its first VM is running: a timer from the start could expire before
// the VM the test looks at exists, on a loaded machine.
func expireOnceBooted(t *testing.T, d time.Duration) func(*Options, *context.Context) {
	return func(o *Options, ctx *context.Context) {
		h := o.Host.(*fakeHost)
		c, cancel := context.WithCancelCause(*ctx)
		t.Cleanup(func() { cancel(nil) })
		*ctx = c
		go func() {
			for c.Err() == nil {
				h.mu.Lock()
				up := len(h.machines) > 0 && h.machines[0].State() == machine.StateRunning
				h.mu.Unlock()
				if up {
					time.Sleep(d)
					cancel(context.DeadlineExceeded)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
}

func TestPackHelpers(t *testing.T) {
	// The encoding used for both pack and syscall arguments.
	for in, want := range map[string]uint64{"-1": math.MaxUint64, "0x10": 16, "  42 ": 42, "+7": 7, "-0": 0, "0X1f": 31} {
		v, err := parseIntString(in)
		if err != nil || v.bits() != want {
			t.Errorf("%q: %v %v, want %d", in, v, err, want)
		}
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], 1<<63)
	if got := packTypes["i64"].get(b[:]); got != lua.LString("-9223372036854775808") {
		t.Errorf("i64 min decodes as %v", got)
	}
	binary.LittleEndian.PutUint64(b[:], 1<<53)
	if got := packTypes["u64"].get(b[:]); got != lua.LNumber(1<<53) {
		t.Errorf("2^53 decodes as %v, want the number", got)
	}
}

// print() keeps the last result.MaxPrints lines for the report, and tells
// a listener of every line as it is written.
func TestPrintKeepsTheLastLines(t *testing.T) {
	var heard []string
	r := runLua(t, `for i = 1, 60 do print("line " .. i) end
print("a\nb")`, func(o *Options, _ *context.Context) {
		o.Print = func(line string) { heard = append(heard, line) }
	})
	r.mustPass(t)
	if len(heard) != 62 || heard[0] != "line 1" || heard[61] != "b" {
		t.Errorf("heard %d lines: %q", len(heard), heard)
	}
	p := r.res.Prints
	if len(p) != result.MaxPrints || p[0] != "line 13" || p[len(p)-2] != "a" || p[len(p)-1] != "b" {
		t.Errorf("kept %d lines: %q", len(p), p)
	}
}
