package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// netHelpers are Lua helpers the network tests share: a TCP transfer with
// busybox nc and ping statistics.
const netHelpers = `
-- transfer sends n KiB of random bytes from client to server over TCP
-- and returns whether they arrived intact, and how long it took.
function transfer(client, server, kib)
  local job = server:background("nc -l -p 5000 -e sh -c 'cat > /tmp/got'")
  wait_until(function() return server:exec("netstat -ltn | grep -q ':5000 '").ok end, {desc = "the listener"})
  assert(client:exec("dd if=/dev/urandom of=/tmp/data bs=1k count=" .. kib .. " 2>/dev/null").ok)
  local t0 = os.time()
  local r = client:exec("nc " .. server.hostname .. " 5000 < /tmp/data")
  local took = os.time() - t0
  assert(r.ok, "nc: " .. r.stderr)
  assert_eq(0, server:job_wait(job, 120).exit_code)
  local sent = client:exec("md5sum < /tmp/data").stdout.trim()
  local got = server:exec("md5sum < /tmp/got").stdout.trim()
  return sent == got, took
end

-- pings sends n pings and returns how many came back and the average
-- round trip in milliseconds.
function pings(from, to, n, interval)
  local r = from:exec("ping -q -c " .. n .. " -i " .. interval .. " -W 2 " .. to)
  local received = tonumber(r.stdout:match("(%d+) packets received"))
  local avg = tonumber(r.stdout:match("min/avg/max = [%d.]+/([%d.]+)/"))
  return received, avg
end
`

// Two and three guests on real links: traffic, a partition healed, a
// delay and a loss measured from the guests, a rate limit felt by a TCP
// transfer, and a capture read back by tcpdump.
func TestNetworks(t *testing.T) {
	env := NewEnv(t, map[string]string{
		"helpers.lua": netHelpers,
		"net.lua": `dofile("helpers.lua")
local net = provium.network("lan")
local a = provium.create("minimal"):boot({networks = {net}, hostname = "alpha"})
local b = provium.create("minimal"):boot({networks = {net}, hostname = "beta"})
local c = provium.create("minimal"):boot({networks = {net}})
net:capture("lan.pcap")

test("addresses, names and a TCP transfer", function()
  assert_eq("10.1.0.3", c:ip(net))
  assert_eq("minimal-3", c.hostname)
  assert_eq("minimal-3\n", c:exec("hostname").stdout.value)
  assert(a:exec("ping -c 1 -W 5 minimal-3").ok, "alpha reaches the third VM by its default name")
  local intact = transfer(b, a, 512)
  assert(intact, "512 KiB arrive intact")
end)

test("a partition of three, healed", function()
  net:partition({a, b}, {c})
  assert(a:exec("ping -c 1 -W 2 beta").ok, "alpha and beta are on the same side")
  assert(not a:exec("ping -c 1 -W 2 minimal-3").ok, "the third VM is cut off")
  assert(not c:exec("ping -c 1 -W 2 beta").ok, "in both directions")
  net:heal()
  wait_until(function() return a:exec("ping -c 1 -W 2 minimal-3").ok end, {desc = "traffic after heal"})
end)

test("delay: the round trip pays it both ways", function()
  local _, base = pings(a, "beta", 5, 0.2)
  net:link(a, b):set({delay = "50ms"})
  local n, avg = pings(a, "beta", 10, 0.2)
  assert_eq(10, n)
  assert(avg >= 100, "round trip " .. avg .. " ms with 50 ms each way")
  assert(avg <= 100 + base + 60, "round trip " .. avg .. " ms, base " .. base .. " ms")
  net:link(a, b):set({})
  local _, after = pings(a, "beta", 5, 0.2)
  assert(after < 100, "the delay lifted: " .. after .. " ms")
end)

test("loss: a bounded number of packets", function()
  net:link(a, c):set({loss = 0.3})
  -- A round trip survives with 0.7 * 0.7 = 0.49: 100 pings give 49
  -- on average, and 25 to 75 with overwhelming odds.
  local n = pings(a, "minimal-3", 100, 0.05)
  assert(n >= 25 and n <= 75, n .. " of 100 pings came back")
  net:link(a, c):set({})
  assert_eq(20, (pings(a, "minimal-3", 20, 0.05)))
end)

test("rate: a transfer takes what the link allows", function()
  net:link(b, a):set({rate = "1mbit"})
  -- 256 KiB at 1 Mbit/s take at least 2.1 s, on any machine.
  local intact, took = transfer(b, a, 256)
  assert(intact)
  assert(took >= 2, "256 KiB through a 1 Mbit/s link took " .. took .. " s")
  net:link(b, a):set({})
end)
`,
	})
	env.Run("test", "net.lua").MustPass(t)
	out, err := exec.Command("tcpdump", "-n", "-r", filepath.Join(env.Dir, "lan.pcap")).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, out)
	}
	for _, want := range []string{"IP 10.1.0.1 > 10.1.0.3: ICMP echo request", "IP 10.1.0.3 > 10.1.0.1: ICMP echo reply", "10.1.0.2.", " > 10.1.0.1.5000: Flags [S]", "ARP, Request who-has"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the capture lacks %q:\n%.3000s", want, out)
		}
	}
}

// isolatedLua runs in two files at once, each with a network called lan:
// the first has one VM, 10.1.0.1, and must not reach 10.1.0.2, which only
// the second file has; the second's two VMs reach each other. A host file
// tells each when the other is up.
const isolatedLua = `local function wait_for(path)
  wait_until(function() local f = io.open(path) if f then f:close() return true end end, {timeout = 120, desc = path})
end
local function touch(path) io.open(path, "w"):close() end
local net = provium.network("lan")
if ROLE == "lonely" then
  local a = provium.create("minimal"):boot({networks = {net}})
  test("the other file's VMs are out of reach", function()
    wait_for(SYNC .. "/pair-up")
    assert(not a:exec("ping -c 3 -W 1 10.1.0.2").ok, "10.1.0.2 is the other file's")
    touch(SYNC .. "/lonely-done")
  end)
else
  local a = provium.create("minimal"):boot({networks = {net}})
  local b = provium.create("minimal"):boot({networks = {net}})
  test("a file's own VMs reach each other", function()
    touch(SYNC .. "/pair-up")
    assert(b:exec("ping -c 1 -W 5 10.1.0.1").ok)
    wait_for(SYNC .. "/lonely-done")
    assert(b:exec("ping -c 1 -W 5 minimal-1").ok)
  end)
end
`

// Networks of files that run at the same time never meet: not between
// files of one run, nor between two runs on one host.
func TestNetworksIsolated(t *testing.T) {
	files := func(dir string) map[string]string {
		return map[string]string{
			"lonely.lua": `ROLE, SYNC = "lonely", "` + dir + `"` + "\n" + isolatedLua,
			"pair.lua":   `ROLE, SYNC = "pair", "` + dir + `"` + "\n" + isolatedLua,
		}
	}
	t.Run("files of one run", func(t *testing.T) {
		env := NewEnv(t, nil)
		for p, c := range files(t.TempDir()) {
			env.Write(p, c)
		}
		env.Run("test", "-p", "2", "lonely.lua", "pair.lua").MustPass(t)
	})
	t.Run("two runs", func(t *testing.T) {
		env := NewEnv(t, files(t.TempDir()))
		var wg sync.WaitGroup
		results := make([]Result, 2)
		for i, f := range []string{"lonely.lua", "pair.lua"} {
			wg.Go(func() { results[i] = env.Run("test", f) })
		}
		wg.Wait()
		for _, r := range results {
			r.MustPass(t)
		}
	})
}

// A fixture of two VMs on a network resumes as a cluster: the same
// addresses, the ARP entries it learnt, the hosts table, and a network
// the test can partition. Two files resume it at once, each on its own
// network.
func TestClusterFixture(t *testing.T) {
	test := `local vms, nets = provium.fixture("cluster")
local lan = nets.lan
test("the cluster resumes whole", function()
  assert_eq("10.1.0.1", vms.server:ip(lan))
  assert_eq("10.1.0.2", vms.client:ip(lan))
  assert_contains(vms.client:exec("cat /proc/net/arp").stdout, "10.1.0.1")
  assert(vms.client:exec("ping -c 1 -W 5 server").ok, "the client reaches the server by name")
  assert_eq("ready\n", vms.client:exec("nc server 7000 < /dev/null").stdout.value)
  lan:partition({vms.server}, {vms.client})
  assert(not vms.client:exec("ping -c 1 -W 2 server").ok)
  lan:heal()
end)
`
	env := NewEnv(t, map[string]string{
		"fixtures/cluster.lua": `local lan = provium.network("lan")
local server = provium.create("minimal"):boot({networks = {lan}, hostname = "server"})
local client = provium.create("minimal"):boot({networks = {lan}, hostname = "client"})
assert(client:exec("ping -c 1 -W 5 server").ok)
-- A server that outlives the fixture script: a daemon, not a job.
assert(server:exec("start-stop-daemon -S -b -x /bin/sh -- -c 'while true; do echo ready | nc -l -p 7000; done'").ok)
wait_until(function() return server:exec("netstat -ltn | grep -q ':7000 '").ok end, {desc = "the server"})
`,
		"a.lua": test,
		"b.lua": test,
	})
	env.Run("test", "-p", "2", "a.lua", "b.lua").MustPass(t)
	again := env.Run("test", "--json", "a.lua")
	if again.Code != 0 || !strings.Contains(again.Stdout, `"event":"run_finished","status":"ok"`) {
		t.Fatalf("the second run failed:\n%s\n%s", again.Stdout, again.Stderr)
	}
	if booted := strings.Count(again.Stdout, `"event":"vm_booted"`); booted != 0 {
		t.Errorf("a run with the cluster cached booted %d VMs, want 0 (all resumed):\n%s", booted, again.Stdout)
	}
	if resumed := strings.Count(again.Stdout, `"event":"vm_resumed"`); resumed != 2 {
		t.Errorf("a run with the cluster cached resumed %d VMs, want 2:\n%s", resumed, again.Stdout)
	}
}
