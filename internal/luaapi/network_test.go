package luaapi

import "testing"

// Networks as the bindings see them: addresses by join order, hostnames
// in every member's hosts table, and calls that say what is wrong.
func TestNetworks(t *testing.T) {
	r := runLua(t, `
local lan = provium.network("lan")
local back = provium.network("back")
assert_eq("lan", lan.name)
assert_eq("10.2.0.0/24", back.prefix)
local a = provium.create("minimal"):boot({networks = {lan}, hostname = "alpha"})
local b = provium.create("minimal"):boot({networks = {lan, back}})
local c = provium.create("minimal"):boot()
test("addresses", function()
  assert_eq("10.1.0.1", a:ip(lan))
  assert_eq("10.1.0.1", a:ip())
  assert_eq("10.1.0.2", b:ip(lan))
  assert_eq("10.2.0.1", b:ip(back))
end)
test("hosts tables list every member, the later ones too", function()
  assert_contains(a:read_file("/etc/hosts"), "10.1.0.2\tminimal-2\n")
  assert_contains(b:read_file("/etc/hosts"), "10.1.0.1\talpha\n")
end)
test("errors", function()
  local function err(f) local ok, e = pcall(f); assert(not ok, "no error"); return tostring(e) end
  assert_contains(err(function() b:ip() end), "on 2 networks")
  assert_contains(err(function() a:ip(back) end), "is not on network back")
  assert_contains(err(function() lan:partition({a}, {c}) end), "minimal#3 is not on network lan")
  assert_contains(err(function() lan:link(a, a) end), "two different VMs")
  assert_contains(err(function() lan:link(a, b):set({loss = 2}) end), "not a probability")
  assert_contains(err(function() lan:link(a, b):set({rate = "fast"}) end), "rate")
  assert_contains(err(function() lan:link(a, b):set({delay = "soon"}) end), "not a duration")
  assert_contains(err(function() lan:link(a, b):set({dealy = "1ms"}) end), "unknown option \"dealy\"")
  assert_contains(err(function() provium.create("minimal"):boot({networks = {lan}, hostname = "alpha"}) end), "hostname in use")
  assert_contains(err(function() provium.create("minimal"):boot({networks = {lan}, hostname = "no_way"}) end), "not a hostname")
  assert_contains(err(function() provium.create("minimal"):boot({networks = {"lan"}}) end), "network (provium.network) expected")
  assert_contains(err(function() provium.create("nonet"):boot({networks = {lan}}) end), "has no address 10.1.0.")
end)
test("instruments", function()
  lan:partition({a}, {b})
  lan:heal()
  lan:link(a, b):set({delay = "50ms", jitter = 0.005, loss = 0.1, rate = "10mbit"})
  lan:link(a, b):set({})
end)
`)
	r.mustPass(t)
}
