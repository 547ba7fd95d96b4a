-- A client and a server on one network, and what the client sees when the
-- network fails: the test drives the network as well as the guests.
local lan = provium.network("lan")
local server = provium.create("minimal"):boot({networks = {lan}, hostname = "server"})
local client = provium.create("minimal"):boot({networks = {lan}, hostname = "client"})

-- A tiny service: answer every connection on port 7000 with "pong".
server:background("while true; do echo pong | nc -l -p 7000; done")
wait_until(function() return server:exec("netstat -ltn | grep -q ':7000 '").ok end,
  {desc = "the server listening"})

local function ask()
  return client:exec("nc -w 2 server 7000 < /dev/null")
end

test("the client reaches the server by name", function()
  assert_eq("10.1.0.1", server:ip(lan))
  assert_eq("pong\n", ask().stdout.value)
end)

test("a partition fails the request, and healing brings it back", function()
  lan:partition({server}, {client})
  local r = ask()
  assert(r.stdout.value ~= "pong\n", "no answer across the partition")
  lan:heal()
  wait_until(function() return ask().stdout.value == "pong\n" end, {desc = "an answer after heal"})
end)

test("a slow link is slow, not broken", function()
  lan:link(server, client):set({delay = "100ms"})
  assert_eq("pong\n", ask().stdout.value)
  lan:link(server, client):set({})
end)
