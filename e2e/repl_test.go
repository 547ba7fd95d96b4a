package e2e

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestREPL drives provium repl in a terminal: values printed as the
// assertions show them, a chunk over several lines, history, an error
// from the guest, print(), ^C of a running chunk and ^D.
func TestREPL(t *testing.T) {
	e := NewEnv(t, nil)
	x := newTmux(t, e, provium+" repl")
	x.waitFor(first, `vm is default#\d+`, 2*time.Minute)
	x.waitFor(first, `(?m)^> *$`, time.Minute)

	typeLine := func(s string) {
		x.keys(first, "-l", s)
		x.keys(first, "Enter")
	}
	typeLine(`vm:exec("echo hi $((6*7))").stdout`)
	x.waitFor(first, `(?m)^"hi 42\\n"$`, time.Minute)
	typeLine(`provium.pack("u32 u8", 0x01020304, 0)`)
	x.waitFor(first, `(?m)^"\\x04\\x03\\x02\\x01\\x00"$`, time.Minute)
	typeLine(`{1, "two", k = {v = true}}`)
	x.waitFor(first, `(?m)^\{1, "two", k = \{v = true\}\}$`, time.Minute)

	typeLine(`function double(n)`)
	x.waitFor(first, `(?m)^>> *$`, time.Minute)
	typeLine(`return 2 * n`)
	typeLine(`end`)
	typeLine(`double(21)`)
	x.waitFor(first, `(?m)^42$`, time.Minute)
	x.keys(first, "Up")
	x.waitFor(first, `(?m)^> double\(21\)$`, time.Minute)
	x.keys(first, "Enter")
	x.waitFor(first, `(?m)^42\n(.*\n)*42\n`, time.Minute)

	typeLine(`vm:read_file("/no/such")`)
	x.waitFor(first, `error: repl:1: vm:read_file on default#\d+: .*ENOENT`, time.Minute)
	typeLine(`print("from print", 7)`)
	x.waitFor(first, `(?m)^from print\s+7$`, time.Minute)

	typeLine(`while true do end`)
	time.Sleep(500 * time.Millisecond)
	x.keys(first, "C-c")
	x.waitFor(first, `(?m)^error: interrupted`, time.Minute)
	typeLine(`1 + 1`)
	x.waitFor(first, `(?m)^2$`, time.Minute)

	x.keys(first, "C-d")
	x.waitFor(first, `(?m)^EXITED 0$`, time.Minute)
	noVMsLeft(t, e)
}

// TestREPLFile gives provium repl a test file: its top level runs, its
// sub-tests wait in the table tests, and piped chunks print their values.
func TestREPLFile(t *testing.T) {
	e := NewEnv(t, map[string]string{"tests/setup.lua": `
local vm = provium.create("default")
vm:boot()
vm:write_file("/tmp/setup", "done by setup\n")
vm:exec("echo ran >> /tmp/subtests; true")
test("reads", function()
  vm:exec("echo reads >> /tmp/subtests")
  assert_eq(vm:read_file("/tmp/setup"), "done by setup\n")
end)
test("breaks", function() assert_eq(1, 2) end)
`, "fixtures/base.lua": `
local vm = provium.create("default")
vm:boot()
vm:write_file("/tmp/marker", "from the fixture\n")
`})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := e.Command(ctx, "repl", "tests/setup.lua")
	cmd.Stdin = strings.NewReader(`vm:read_file("/tmp/subtests")
tests.reads()
tests["breaks"]()
vm:read_file("/tmp/subtests")
for i = 1, 2 do
  print("line", i)
end
nosuch()
`)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("repl with a failing chunk: %v, want exit 1\n%s\n%s", err, out.String(), errb.String())
	}
	want := regexp.MustCompile(`^"ran\\n"
"ok"
"FAIL: tests/setup.lua:10: [^\n]*"
"ran\\nreads\\n"
line\t1
line\t2
error: repl:1: attempt to call a non-function object
$`)
	if !want.MatchString(out.String()) {
		t.Errorf("repl tests/setup.lua printed:\n%s\nwant it to match:\n%s\nstderr:\n%s", out.String(), want, errb.String())
	}
	noVMsLeft(t, e)

	// A fixture's VM, as the fixture left it.
	cmd = e.Command(ctx, "repl", "--fixture", "base")
	cmd.Stdin = strings.NewReader("vm:read_file(\"/tmp/marker\")\n")
	b, err := cmd.Output()
	if err != nil || string(b) != "\"from the fixture\\n\"\n" {
		t.Errorf("repl --fixture base: %v, printed %q", err, b)
	}
	noVMsLeft(t, e)
}

// TestAttachREPL opens a Lua prompt on the VM of a paused failing test:
// it sees what the test left, and ^D lets the run go on.
func TestAttachREPL(t *testing.T) {
	e := NewEnv(t, map[string]string{"tests/pause.lua": `
local vm = provium.create("default")
vm:boot()
vm:write_file("/tmp/note", "left by the test\n")
test("breaks", function() assert_eq(1, 2) end)
`, "fixtures/base.lua": `
local vm = provium.create("default")
vm:boot()
vm:write_file("/tmp/marker", "from the fixture\n")
`})
	x := newTmux(t, e, provium+" test --pause-on-failure tests/")
	m := x.waitFor(first, `provium attach (\S+/tests/pause\.lua)`, 3*time.Minute)
	w := x.window(e, provium+" attach --repl "+m[1])
	x.waitFor(w, `vm is default#\d+, as the failure left it`, time.Minute)
	x.keys(w, "-l", `vm:read_file("/tmp/note")`)
	x.keys(w, "Enter")
	x.waitFor(w, `(?m)^"left by the test\\n"$`, time.Minute)
	x.keys(w, "-l", `provium.create("default")`)
	x.keys(w, "Enter")
	x.waitFor(w, `not in a prompt on a paused test`, time.Minute)
	x.keys(w, "C-d")
	x.waitFor(w, `(?m)^EXITED 0$`, time.Minute)
	x.waitFor(first, `(?m)^EXITED 1$`, 2*time.Minute)
	noVMsLeft(t, e)
}
