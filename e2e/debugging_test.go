package e2e

import (
	"testing"
	"time"
)

// TestDebuggingSession walks docs/debugging.md: its failing test, paused;
// a shell in its VM that sees what the test left; then, in a second run,
// a Lua prompt on the same VM.
func TestDebuggingSession(t *testing.T) {
	e := NewEnv(t, map[string]string{"tests/config.lua": docFile(t, "debugging.md", "tests/config.lua")})

	x := newTmux(t, e, provium+" test --pause-on-failure tests/config.lua")
	m := x.waitFor(first, `PAUSED: tests/config\.lua · level is 4: tests/config\.lua:8: [^\n]*\n\s*VMs running: default#\d+\n\s*to get in:  provium attach (\S+/tests/config\.lua)`, 3*time.Minute)
	w := x.window(e, provium+" attach "+m[1])
	x.waitFor(w, `(?m)^\[default#\d+ /\]# $`, time.Minute)
	x.keys(w, "cat /etc/app.conf", "Enter")
	x.waitFor(w, `(?m)^mode=fast\nlevel=3$`, time.Minute)
	x.keys(w, "exit", "Enter")
	x.waitFor(w, `(?m)^EXITED 0$`, time.Minute)
	x.waitFor(first, `(?m)^FAIL: 0 passed, 1 failed\n(.*\n)*EXITED 1$`, 2*time.Minute)
	noVMsLeft(t, e)

	x = newTmux(t, e, provium+" test --pause-on-failure tests/config.lua")
	m = x.waitFor(first, `to get in:  provium attach (\S+/tests/config\.lua)`, 3*time.Minute)
	w = x.window(e, provium+" attach --repl "+m[1])
	x.waitFor(w, `vm is default#\d+, as the failure left it`, time.Minute)
	for _, step := range []struct{ in, out string }{
		{`vm:read_file("/etc/app.conf")`, `(?m)^"mode=fast\\nlevel=3\\n"$`},
		{`vm:exec("id -u").stdout:trim()`, `(?m)^"0"$`},
		{`provium.pack("u32", 3)`, `(?m)^"\\x03\\x00\\x00\\x00"$`},
	} {
		x.keys(w, "-l", step.in)
		x.keys(w, "Enter")
		x.waitFor(w, step.out, time.Minute)
	}
	x.keys(w, "C-d")
	x.waitFor(w, `(?m)^EXITED 0$`, time.Minute)
	x.waitFor(first, `(?m)^EXITED 1$`, 2*time.Minute)
	noVMsLeft(t, e)
}
