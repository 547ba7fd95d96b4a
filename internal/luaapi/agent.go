package luaapi

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/provium/provium/internal/client"
	"github.com/provium/provium/internal/wire"
)

// target is what the agent methods run on: a VM's own agent or a worker.
// Both answer the same calls; only the identity in the guest differs.
type target interface {
	kind() string // "vm" or "worker": the receiver in messages
	name() string // "minimal#1", "minimal#1/worker2"
	vm() *vmObj   // the VM whose console explains failures
	// agent is the identity to call, or an error naming why there is
	// none (VM not running, worker killed).
	agent() (*client.Agent, error)
}

// agentMethods are the methods shared by VMs and workers, built in one
// place so both metatables get exactly the same ones.
func (rt *script) agentMethods() map[string]lua.LGFunction {
	return map[string]lua.LGFunction{
		"exec":         rt.exec,
		"json":         rt.json,
		"read_file":    rt.readFile,
		"write_file":   rt.writeFile,
		"dmesg":        rt.dmesg,
		"mount_vfs":    rt.mountVFS,
		"wait_until":   rt.waitUntilMethod,
		"background":   rt.background,
		"job_wait":     rt.jobWait,
		"job_kill":     rt.jobKill,
		"syscall":      rt.syscall,
		"syscall_buf":  rt.syscallBuf,
		"syscall_bufs": rt.syscallBufs,
		"syscall_ptr":  rt.syscallPtr,
		"ioctl":        rt.ioctl,
		"ioctl_buf":    rt.ioctlBuf,
	}
}

// self checks the receiver of an agent method and notes its VM as the one
// the current test uses.
func (rt *script) self(L *lua.LState, method string) target {
	if ud, ok := L.Get(1).(*lua.LUserData); ok {
		switch o := ud.Value.(type) {
		case *vmObj:
			rt.use(o)
			return o
		case *workerObj:
			rt.use(o.parent)
			return o
		}
	}
	L.ArgError(1, fmt.Sprintf("vm or worker expected, got %s (call it as vm:%s(...))", L.Get(1).Type(), method))
	return nil
}

// agentOf returns the identity to call, raising the state error if the VM
// or worker cannot take calls.
func (rt *script) agentOf(L *lua.LState, t target, method string) *client.Agent {
	rt.mark(L)
	a, err := t.agent()
	if err != nil {
		rt.fail(L, t, method, err)
	}
	return a
}

// execRequest reads a command and its options: timeout (seconds), stdin,
// env ({K=V} or {"K=V"}), cwd. Background commands take no stdin and no
// timeout.
func (rt *script) execRequest(L *lua.LState, background bool) (wire.Exec, []byte) {
	req := wire.Exec{Cmd: L.CheckString(2)}
	known := []string{"timeout", "stdin", "env", "cwd"}
	if background {
		known = []string{"env", "cwd"}
	}
	o := checkOpts(L, 3, known...)
	if s := o.seconds("timeout", 0); s > 0 {
		req.TimeoutMs = max(1, s.Milliseconds())
	}
	var stdin []byte
	if v := o.get("stdin"); v != lua.LNil {
		s, ok := stringOf(v)
		if !ok {
			o.bad("stdin", "string expected, got "+v.Type().String())
		}
		stdin = []byte(s)
	}
	if v := o.get("env"); v != lua.LNil {
		t, ok := v.(*lua.LTable)
		if !ok {
			o.bad("env", "table expected, got "+v.Type().String())
		}
		t.ForEach(func(k, v lua.LValue) {
			val, ok := stringOf(v)
			if !ok {
				o.bad("env", fmt.Sprintf("value of %s must be a string, got %s", k, v.Type()))
			}
			switch k := k.(type) {
			case lua.LNumber: // list form {"K=V"}
				if !strings.Contains(val, "=") {
					o.bad("env", fmt.Sprintf("entry %q is not KEY=VALUE", val))
				}
				req.Env = append(req.Env, val)
			case lua.LString:
				req.Env = append(req.Env, string(k)+"="+val)
			default:
				o.bad("env", "keys must be names, got "+k.Type().String())
			}
		})
		// Table order is random; a stable order keeps traces comparable.
		slices.Sort(req.Env)
	}
	req.Cwd = o.str("cwd", "")
	return req, stdin
}

// exec is vm:exec(cmd, opts?) -> result table.
func (rt *script) exec(L *lua.LState) int {
	t := rt.self(L, "exec")
	req, stdin := rt.execRequest(L, false)
	a := rt.agentOf(L, t, "exec")
	r, err := a.Exec(rt.ctx, req, stdin)
	if err != nil {
		rt.fail(L, t, "exec", err)
	}
	rt.pushExecResult(L, r)
	return 1
}

// json is vm:json(cmd, opts?) -> table: the command must succeed and print
// one JSON value.
func (rt *script) json(L *lua.LState) int {
	t := rt.self(L, "json")
	req, stdin := rt.execRequest(L, false)
	a := rt.agentOf(L, t, "json")
	r, err := a.Exec(rt.ctx, req, stdin)
	if err != nil {
		rt.fail(L, t, "json", err)
	}
	if r.ExitCode != 0 || r.Signal != 0 || r.TimedOut {
		stderr := strings.TrimSpace(string(r.Stderr))
		if stderr == "" {
			stderr = "(no stderr)"
		}
		rt.raise(L, t, "json", "%q exited with code %d: %s", req.Cmd, r.ExitCode, trimText(stderr, 500))
	}
	var v any
	if err := json.Unmarshal(r.Stdout, &v); err != nil {
		rt.raise(L, t, "json", "output of %q is not JSON (%v): %s", req.Cmd, err, quote(strings.TrimSpace(string(r.Stdout))))
	}
	L.Push(jsonToLua(L, v))
	return 1
}

// pathError names the path in a file error unless the guest's message
// already does; the errno name is in client.OpError's text.
func (rt *script) pathError(L *lua.LState, t target, method, path string, err error) {
	if !strings.Contains(err.Error(), path) {
		err = fmt.Errorf("%s: %w", path, err)
	}
	rt.fail(L, t, method, err)
}

// readFile is vm:read_file(path) -> string.
func (rt *script) readFile(L *lua.LState) int {
	t := rt.self(L, "read_file")
	path := L.CheckString(2)
	a := rt.agentOf(L, t, "read_file")
	data, err := a.ReadFile(rt.ctx, path)
	if err != nil {
		rt.pathError(L, t, "read_file", path, err)
	}
	L.Push(lua.LString(data))
	return 1
}

// writeFile is vm:write_file(path, data, mode?); mode defaults to 0644.
func (rt *script) writeFile(L *lua.LState) int {
	t := rt.self(L, "write_file")
	path := L.CheckString(2)
	data := checkBytes(L, 3)
	mode := uint32(0o644)
	if L.Get(4) != lua.LNil {
		m := L.CheckInt(4)
		if m < 0 || m > 0o7777 {
			L.ArgError(4, fmt.Sprintf("mode %#o is not a file mode", m))
		}
		mode = uint32(m)
	}
	a := rt.agentOf(L, t, "write_file")
	if err := a.WriteFile(rt.ctx, path, []byte(data), mode); err != nil {
		rt.pathError(L, t, "write_file", path, err)
	}
	return 0
}

// dmesg is vm:dmesg(pattern?) -> string: the kernel log, or only the lines
// that contain pattern (a plain substring: kernel messages are full of
// characters that are magic in Lua patterns).
func (rt *script) dmesg(L *lua.LState) int {
	t := rt.self(L, "dmesg")
	pattern := L.OptString(2, "")
	a := rt.agentOf(L, t, "dmesg")
	log, err := a.Dmesg(rt.ctx)
	if err != nil {
		rt.fail(L, t, "dmesg", err)
	}
	if pattern == "" {
		L.Push(lua.LString(log))
		return 1
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(log), "\n") {
		if strings.Contains(line, pattern) {
			b.WriteString(line)
		}
	}
	L.Push(lua.LString(b.String()))
	return 1
}

// mountVFS is vm:mount_vfs().
func (rt *script) mountVFS(L *lua.LState) int {
	t := rt.self(L, "mount_vfs")
	a := rt.agentOf(L, t, "mount_vfs")
	if err := a.MountVFS(rt.ctx); err != nil {
		rt.fail(L, t, "mount_vfs", err)
	}
	return 0
}

// waitUntilMethod is vm:wait_until(fn, opts?): the global with a receiver.
func (rt *script) waitUntilMethod(L *lua.LState) int {
	rt.self(L, "wait_until")
	return rt.waitUntil(L, 2)
}

// background is vm:background(cmd, opts?) -> {id=, pid=}.
func (rt *script) background(L *lua.LState) int {
	t := rt.self(L, "background")
	req, _ := rt.execRequest(L, true)
	a := rt.agentOf(L, t, "background")
	j, err := a.Background(rt.ctx, req)
	if err != nil {
		rt.fail(L, t, "background", err)
	}
	L.Push(jobTable(L, j))
	return 1
}

// jobTable is the job background returns: {id=, pid=}.
func jobTable(L *lua.LState, j wire.Job) *lua.LTable {
	tab := L.CreateTable(0, 2)
	tab.RawSetString("id", lua.LNumber(j.ID))
	tab.RawSetString("pid", lua.LNumber(j.PID))
	return tab
}

// checkJob reads a job: the table background returned, or its id.
func checkJob(L *lua.LState, n int) int {
	v := L.Get(n)
	if t, ok := v.(*lua.LTable); ok {
		v = t.RawGetString("id")
	}
	if id, ok := v.(lua.LNumber); ok && float64(id) == float64(int(id)) {
		return int(id)
	}
	L.ArgError(n, "job expected (the table background returned, or its id)")
	return 0
}

// jobWait is vm:job_wait(job, timeout?): nil or 0 polls.
func (rt *script) jobWait(L *lua.LState) int {
	t := rt.self(L, "job_wait")
	id := checkJob(L, 2)
	timeout := checkSeconds(L, 3, 0)
	a := rt.agentOf(L, t, "job_wait")
	r, err := a.JobWait(rt.ctx, id, timeout)
	if err != nil {
		rt.fail(L, t, "job_wait", err)
	}
	rt.pushJobResult(L, r)
	return 1
}

// jobKill is vm:job_kill(job): the job's final state after the kill.
func (rt *script) jobKill(L *lua.LState) int {
	t := rt.self(L, "job_kill")
	id := checkJob(L, 2)
	a := rt.agentOf(L, t, "job_kill")
	r, err := a.JobKill(rt.ctx, id)
	if err != nil {
		rt.fail(L, t, "job_kill", err)
	}
	rt.pushJobResult(L, r)
	return 1
}

// checkSeconds reads an optional duration in seconds at argument n.
func checkSeconds(L *lua.LState, n int, def float64) time.Duration {
	s := def
	if v := L.Get(n); v != lua.LNil {
		num, ok := v.(lua.LNumber)
		if !ok || num < 0 {
			L.ArgError(n, "duration in seconds (a number >= 0) expected, got "+describe(v))
		}
		s = float64(num)
	}
	return seconds(s)
}

func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second))
}
