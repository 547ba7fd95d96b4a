package e2e

import (
	"strings"
	"testing"
)

// restartLua kills the agent from a command and from a worker's command,
// and checks that the pending call fails at once with how the agent died,
// that the VM is usable afterwards, and that workers of the dead agent say
// they died with it.
const restartLua = `local vm = provium.create(PROFILE):boot({memory = "256M"})
local function killed(agent, what)
  local t0 = os.time()
  local ok, err = pcall(agent.exec, agent, "kill -9 " .. what .. "; sleep 100")
  assert(not ok, "the call on the killed agent must fail")
  assert_contains(err, "agent restarted (was killed by signal 9)")
  assert_contains(err, "--- console")
  assert(os.time() - t0 < 30, "the failure took " .. (os.time() - t0) .. "s")
end
test("kill -9 of the agent from a command", function()
  killed(vm, "$PPID")
  assert_eq("ok\n", vm:exec("echo ok").stdout.value)
end)
test("kill -9 of the agent from a worker's command", function()
  local w = vm:spawn()
  local pid = vm:exec("echo $PPID").stdout.trim() -- the agent runs the shell
  killed(w, pid)
  local ok, err = pcall(w.exec, w, "true")
  assert(not ok)
  assert_contains(err, "the worker died with the agent")
  local w2 = vm:spawn()
  assert(w2:exec("true").ok)
end)
test("the VM is usable after the restarts", function()
  assert_contains(vm:read_file("/proc/version"), "Linux")
  assert_eq(0, vm:syscall(102)) -- getuid
end)
`

// The agent of a guest whose own init is PID 1 (systemd, here a shell
// loop) is restarted by provium's supervisor; without a real init, by
// provium's init itself. Either way a killed agent fails its pending call
// at once, not after the call's five-minute deadline.
func TestAgentRestart(t *testing.T) {
	env := NewEnv(t, map[string]string{
		"tests/pid1.lua":     "PROFILE = \"minimal\"\n" + restartLua,
		"tests/realinit.lua": "PROFILE = \"withinit\"\n" + restartLua + "test(\"a real init is PID 1\", function() assert_eq(\"myinit\\n\", vm:exec(\"cat /proc/1/comm\").stdout.value) end)\n",
	})
	diskProfile(t, env, "withinit", map[string]string{
		"sbin/myinit": "#!/bin/sh\nwhile :; do sleep 3600; done\n",
	}, `init = "/sbin/myinit"`)
	r := env.Run("test", "tests/")
	r.MustPass(t)
	if !strings.Contains(r.Stdout, "ok: 2 passed") {
		t.Errorf("want both files to pass:\n%s", r.Stdout)
	}
}
