package luastubs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"

	"github.com/provium/provium/internal/client"
	"github.com/provium/provium/internal/luaapi"
	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/network"
	"github.com/provium/provium/internal/result"
)

// The stubs must describe the runtime exactly: every function, method and
// field a script can reach has a definition, no definition names what the
// runtime lacks, and where the runtime's answers tell (an argument it
// requires, the options it knows), the definition's parameters say the
// same.

func readStubs(t *testing.T) (*stubs, *luaapi.Surface) {
	t.Helper()
	s, err := parseStubs(definitions)
	if err != nil {
		t.Fatalf("provium.lua: %v", err)
	}
	surf, err := luaapi.ReadSurface()
	if err != nil {
		t.Fatal(err)
	}
	return s, surf
}

// sameNames reports what one list has and the other lacks.
func sameNames(t *testing.T, what string, runtime, stubbed []string) {
	t.Helper()
	for _, n := range runtime {
		if !slices.Contains(stubbed, n) {
			t.Errorf("%s %s is in the runtime but has no definition in provium.lua", what, n)
		}
	}
	for _, n := range stubbed {
		if !slices.Contains(runtime, n) {
			t.Errorf("%s %s has a definition in provium.lua but the runtime has none", what, n)
		}
	}
}

func TestStubsNameEveryFunctionOfTheRuntime(t *testing.T) {
	s, surf := readStubs(t)
	var globals, module []string
	for name := range s.functions {
		if strings.HasPrefix(name, "provium.") {
			module = append(module, name)
		} else {
			globals = append(globals, name)
		}
	}
	sameNames(t, "global", surf.Globals, globals)
	var runtimeModule []string
	for _, m := range surf.Module {
		runtimeModule = append(runtimeModule, "provium."+m)
	}
	sameNames(t, "function", runtimeModule, module)
	// Replaced standard functions keep Lua's signature, which LuaLS
	// knows; they need no definition, and must not shadow Provium's own.
	for _, r := range surf.Replaced {
		if slices.Contains(surf.Globals, r) {
			t.Errorf("%s is both a replaced standard function and a new one", r)
		}
	}
	if len(surf.Globals) == 0 || len(surf.Module) == 0 {
		t.Fatalf("the surface lists no functions: %+v", surf)
	}
}

// typeClasses maps the runtime's object types to the stubs' classes.
var typeClasses = map[string]string{
	"vm":      "provium.VM",
	"worker":  "provium.Worker",
	"text":    "provium.Text",
	"network": "provium.Network",
	"link":    "provium.Link",
}

// tableClasses maps the tables the runtime returns to the stubs' classes.
var tableClasses = map[string]string{
	"exec":          "provium.ExecResult",
	"job":           "provium.Job",
	"job_result":    "provium.JobResult",
	"kernel_report": "provium.KernelReport",
}

func TestStubsDescribeEveryObjectOfTheRuntime(t *testing.T) {
	s, surf := readStubs(t)
	for typ, cls := range typeClasses {
		rt, ok := surf.Types[typ]
		if !ok {
			t.Errorf("the runtime has no type %s", typ)
			continue
		}
		methods := slices.Collect(maps.Keys(s.methods(cls)))
		sameNames(t, cls+" method", rt.Methods, methods)
		for _, refused := range rt.Refused {
			if slices.Contains(methods, refused) {
				t.Errorf("%s:%s is an error at run time; the stubs must not offer it", cls, refused)
			}
		}
		fields := slices.Collect(maps.Keys(s.fields(cls)))
		sameNames(t, cls+" field", rt.Fields, fields)
	}
	for table, cls := range tableClasses {
		sameNames(t, cls+" field", surf.Tables[table], slices.Collect(maps.Keys(s.fields(cls))))
	}
	for _, typ := range surf.Unlisted {
		t.Errorf("the runtime has an object type %s that luaapi.ReadSurface does not list: list its methods and fields there, then describe it here", typ)
	}
	for typ := range surf.Types {
		if typeClasses[typ] == "" {
			t.Errorf("the runtime has a type %s that the stubs do not describe", typ)
		}
	}
	for table := range surf.Tables {
		if tableClasses[table] == "" {
			t.Errorf("the runtime returns a table %s that the stubs do not describe", table)
		}
	}
}

// everyFunction lists the definitions, methods included.
func (s *stubs) everyFunction() []*function {
	var out []*function
	for _, f := range s.functions {
		out = append(out, f)
	}
	for _, c := range s.classes {
		for _, f := range c.methods {
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(a, b *function) int { return a.line - b.line })
	return out
}

func TestEveryDefinitionIsDocumentedAndTyped(t *testing.T) {
	s, _ := readStubs(t)
	for _, f := range s.everyFunction() {
		if strings.TrimSpace(f.doc) == "" {
			t.Errorf("provium.lua:%d: %s has no doc line", f.line, f.name)
		}
		for _, p := range f.problems {
			t.Errorf("provium.lua:%d: %s: %s", f.line, f.name, p)
		}
		for _, p := range f.params {
			if !knownType(s, p.typ) {
				t.Errorf("provium.lua:%d: %s: parameter %s has type %s, which names no class", f.line, f.name, p.name, p.typ)
			}
		}
	}
	for _, c := range s.classes {
		if strings.TrimSpace(c.doc) == "" {
			t.Errorf("class %s has no doc line", c.name)
		}
		if c.parent != "" && c.parent != "string" && s.classes[c.parent] == nil {
			t.Errorf("class %s extends %s, which is not defined", c.name, c.parent)
		}
		for _, f := range c.fields {
			if !knownType(s, f.typ) {
				t.Errorf("class %s: field %s has type %s, which names no class", c.name, f.name, f.typ)
			}
		}
	}
}

// knownType tells whether every provium.* name in a type is a class.
func knownType(s *stubs, typ string) bool {
	for _, name := range regexp.MustCompile(`provium\.\w+`).FindAllString(typ, -1) {
		if s.classes[name] == nil {
			return false
		}
	}
	return true
}

// The stub files are Lua: run in a plain state, they must define the
// tables of names exactly as the runtime has them.
func TestStubFilesAreLuaAndCarryTheRuntimesNames(t *testing.T) {
	files, err := Definitions()
	if err != nil {
		t.Fatal(err)
	}
	L := lua.NewState()
	defer L.Close()
	for _, name := range []string{"provium.lua", "provium_names.lua"} {
		if err := L.DoString(string(files[name])); err != nil {
			t.Fatalf("%s does not run as Lua: %v", name, err)
		}
	}
	surf, err := luaapi.ReadSurface()
	if err != nil {
		t.Fatal(err)
	}
	mod := L.GetGlobal("provium").(*lua.LTable)
	for table, want := range surf.Constants {
		got := map[string]float64{}
		tab, ok := mod.RawGetString(table).(*lua.LTable)
		if !ok {
			t.Errorf("provium_names.lua has no provium.%s", table)
			continue
		}
		tab.ForEach(func(k, v lua.LValue) { got[k.String()] = float64(v.(lua.LNumber)) })
		if !maps.Equal(got, want) {
			t.Errorf("provium.%s: the stubs have %d names, the runtime %d, or their values differ", table, len(got), len(want))
		}
	}
	if len(surf.Constants["sys"]) < 300 || surf.Constants["errno"]["ENOENT"] != 2 {
		t.Errorf("the runtime's tables look wrong: %d syscalls, ENOENT = %v", len(surf.Constants["sys"]), surf.Constants["errno"]["ENOENT"])
	}
}

func TestWriteLaysOutASuite(t *testing.T) {
	dir := t.TempDir()
	written, note, err := Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".provium/stubs/provium.lua", ".provium/stubs/provium_names.lua", ".luarc.json"}
	if !slices.Equal(written, want) || note != "" {
		t.Fatalf("Write wrote %v (note %q), want %v", written, note, want)
	}
	var rc struct {
		Runtime   struct{ Version string }
		Workspace struct{ Library []string }
	}
	b, _ := os.ReadFile(filepath.Join(dir, ".luarc.json"))
	if err := json.Unmarshal(b, &rc); err != nil {
		t.Fatal(err)
	}
	if rc.Runtime.Version != "Lua 5.1" || !slices.Equal(rc.Workspace.Library, []string{Dir}) {
		t.Errorf(".luarc.json = %s", b)
	}
	// A user's own .luarc.json stays; the note says what to add.
	os.WriteFile(filepath.Join(dir, ".luarc.json"), []byte(`{"runtime": {"version": "Lua 5.1"}}`), 0o644)
	written, note, err = Write(dir)
	if err != nil || len(written) != 2 || !strings.Contains(note, Dir) {
		t.Errorf("second Write: %v, note %q, %v", written, note, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, ".luarc.json")); !strings.Contains(string(b), `"Lua 5.1"}}`) {
		t.Errorf("the user's .luarc.json was changed: %s", b)
	}
}

// Probing: a definition's parameters are held to what the runtime does
// with calls built from them. The runtime runs real scripts; its VMs are
// probes that never boot, which is enough for everything a binding checks
// before it reaches the guest.

type probeVM struct{ name string }

var errProbe = errors.New("probe VM: no guest")

func (p *probeVM) Name() string                                    { return p.name }
func (p *probeVM) State() machine.State                            { return machine.StateCreated }
func (p *probeVM) Boot(context.Context, machine.BootOptions) error { return errProbe }
func (p *probeVM) Agent() *client.Agent                            { return nil }
func (p *probeVM) Shutdown(context.Context) error                  { return nil }
func (p *probeVM) Kill() error                                     { return nil }
func (p *probeVM) ConsoleTail(int) []string                        { return nil }
func (p *probeVM) KernelReports(int) []result.KernelReport         { return nil }
func (p *probeVM) DrainConsole(context.Context)                    {}
func (p *probeVM) ScanLeaks(context.Context) error                 { return nil }
func (p *probeVM) KernelIgnore() []string                          { return nil }
func (p *probeVM) Settle(context.Context) []result.KernelReport    { return nil }

type probeHost struct{}

func (probeHost) Create(profile string) (luaapi.Machine, error) {
	return &probeVM{name: profile + "#1"}, nil
}
func (probeHost) Fixture(context.Context, string) (*luaapi.Resumed, error) { return nil, errProbe }
func (probeHost) Network(name string) (*network.Network, error)            { return network.New(name, 1) }

// run runs a script and returns its failure message, "" if it passed.
func run(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "probe.lua")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	res := luaapi.Run(context.Background(), luaapi.Options{Path: path, StartDir: dir, Host: probeHost{}})
	if res.Failure != nil {
		return res.Failure.Message
	}
	for _, st := range res.Subtests {
		if st.Failure != nil {
			return st.Failure.Message
		}
	}
	return ""
}

// samples are arguments that a binding accepts as far as their types go,
// where the type alone does not make one.
var samples = map[string][]string{
	"provium.pack":   {`"u8"`, `1`},
	"provium.unpack": {`"u8"`, `"\0"`},
}

// sample is a Lua expression of type typ, or "" when none is known.
func sample(typ string) string {
	alts := strings.Split(typ, "|")
	for _, pref := range []string{"integer", "number", "string", "boolean"} {
		if slices.Contains(alts, pref) {
			return map[string]string{"integer": "0", "number": "0", "string": `"x"`, "boolean": "false"}[pref]
		}
	}
	switch a := alts[0]; {
	case strings.HasPrefix(a, "fun("):
		return "function() return true end"
	case strings.HasPrefix(a, "table<"), strings.HasSuffix(a, "[]"):
		return "{}"
	case a == "provium.Text":
		return `"x"`
	case a == "provium.VM":
		return "vm"
	case a == "provium.Network":
		return "net"
	}
	return ""
}

// probePrefix makes the objects probes call methods on and pass as
// arguments: a VM that never boots and a network.
const probePrefix = `local vm = provium.create("probe")
local net = provium.network("probe")
`

// callee is how a probe script calls f, and the offset of its first
// parameter in the runtime's argument count (1 for a method: self).
func callee(f *function) (prefix, call string, offset int, ok bool) {
	cls, method, isMethod := strings.Cut(f.name, ":")
	switch {
	case !isMethod:
		return probePrefix, f.name, 0, true
	case cls == "provium.VM" || cls == "provium.Agent":
		return probePrefix, "vm:" + method, 1, true
	case cls == "provium.Network":
		return probePrefix, "net:" + method, 1, true
	}
	// Workers and texts come only from a guest; links only from VMs on
	// a network.
	return "", "", 0, false
}

var (
	badArgument = regexp.MustCompile(`bad argument #(\d+) to '([^']*)'`)
	returned    = regexp.MustCompile(`provium-probe returned (\d+)`)
)

func TestDefinitionsMatchWhatTheRuntimeAccepts(t *testing.T) {
	s, _ := readStubs(t)
	probed, returnsChecked := 0, 0
	for _, f := range s.everyFunction() {
		prefix, call, offset, ok := callee(f)
		if !ok {
			continue
		}
		args := samples[f.name]
		if args == nil {
			for _, p := range f.params {
				if p.name == "..." {
					break
				}
				v := "nil"
				if !p.optional {
					if v = sample(p.typ); v == "" {
						v = "nil"
					}
				}
				args = append(args, v)
			}
		}
		probed++
		// Arguments of the right types: no complaint about any; and a
		// call that returns gives what the @return lines say.
		msg := run(t, prefix+`error("provium-probe returned " .. select("#", `+call+"("+strings.Join(args, ", ")+`)))`)
		if badArgument.MatchString(msg) {
			t.Errorf("provium.lua:%d: %s(%s): the runtime refuses arguments the definition allows: %s", f.line, call, strings.Join(args, ", "), msg)
		}
		if m := returned.FindStringSubmatch(msg); m != nil {
			n, fixed := 0, len(f.returns)
			fmt.Sscan(m[1], &n)
			if f.varReturns {
				fixed--
			}
			if n < fixed || (n > fixed && !f.varReturns) {
				t.Errorf("provium.lua:%d: %s returned %d values; its @return lines say %d", f.line, call, n, len(f.returns))
			}
			returnsChecked++
		}
		// No arguments: the runtime complains about an argument the
		// definition requires, or, when it requires none, about nothing.
		// (Not always the first: a system call's word arguments take nil
		// as 0.)
		var required []int
		for i, p := range f.params {
			if !p.optional && p.name != "..." {
				required = append(required, i+1+offset)
			}
		}
		msg = run(t, prefix+call+"()")
		got := 0
		if m := badArgument.FindStringSubmatch(msg); m != nil {
			fmt.Sscan(m[1], &got)
		}
		if (got == 0) != (len(required) == 0) || (got != 0 && !slices.Contains(required, got)) {
			t.Errorf("provium.lua:%d: %s(): the definition requires arguments %v, the runtime complained of #%d (%q)", f.line, call, required, got, msg)
		}
		// An options table: the runtime knows exactly the options the
		// definition's class lists.
		for i, p := range f.params {
			if !strings.HasSuffix(strings.TrimSuffix(p.typ, "?"), "Options") {
				continue
			}
			opts := append(slices.Clone(args[:i]), `{stubs_probe = true}`)
			msg := run(t, prefix+call+"("+strings.Join(opts, ", ")+")")
			m := regexp.MustCompile(`bad argument #(\d+) .*unknown option "stubs_probe" \(known: ([^)]*)\)`).FindStringSubmatch(msg)
			if m == nil || m[1] != fmt.Sprint(i+1+offset) {
				t.Errorf("provium.lua:%d: %s: parameter %s is no options table at run time: %q", f.line, call, p.name, msg)
				continue
			}
			known := strings.Split(m[2], ", ")
			sameNames(t, p.typ+" option", known, slices.Collect(maps.Keys(s.fields(p.typ))))
		}
	}
	if probed < 30 || returnsChecked < 10 {
		t.Errorf("only %d definitions were probed, %d of them returned", probed, returnsChecked)
	}
}
