package luaapi

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/provium/provium/internal/client"
	"github.com/provium/provium/internal/result"
	"github.com/provium/provium/internal/wire"
)

// Surface is the Lua API as a script sees it, read from a state built
// the way Run builds one: what editor type definitions must describe, and
// what a test holds them to.
type Surface struct {
	// Globals are the global functions Provium adds.
	Globals []string
	// Replaced are the functions of Lua's standard library that Provium
	// replaces with its own, keeping their signature ("dofile",
	// "os.exit").
	Replaced []string
	// Module are the functions of the provium module, named below it
	// ("create", "ioc.IOR").
	Module []string
	// Constants are the module's tables of names for numbers, by name
	// below the module ("sys", "errno", "c").
	Constants map[string]map[string]float64
	// Types are the object types scripts get, by the name the stubs give
	// them: "vm", "worker", "text" (a command's stdout or stderr),
	// "network", "link" (net:link's).
	Types map[string]Type
	// Unlisted are the object types the state has (its type metatables)
	// that this listing does not describe: a new type must be added here
	// before stubs can cover it.
	Unlisted []string
	// Tables are the fields of the tables the API returns: "exec" (exec's
	// result), "job" (background's), "job_result" (job_wait's and
	// job_kill's), "kernel_report" (an entry of vm:kernel_reports()).
	Tables map[string][]string
}

// Type is one object type of the API.
type Type struct {
	Methods []string
	Fields  []string
	// Refused are methods that are there only to say the type lacks
	// them (a worker has no boot).
	Refused []string
}

// ReadSurface builds a script's Lua state, without a host, and lists what
// it offers.
func ReadSurface() (*Surface, error) {
	rt := &script{
		ctx:     context.Background(),
		res:     &result.File{},
		scope:   &scope{},
		loaded:  map[string]bool{},
		created: map[string]int{},
		methods: map[string]*lua.LTable{},
	}
	L := lua.NewState(stateOptions)
	defer L.Close()
	plain := lua.NewState(stateOptions)
	defer plain.Close()
	openStandard(plain)
	rt.open(L)

	s := &Surface{Constants: map[string]map[string]float64{}, Types: map[string]Type{}, Tables: map[string][]string{}}
	L.G.Global.ForEach(func(k, v lua.LValue) {
		name, ok := k.(lua.LString)
		if !ok || name == "provium" || name == "_G" {
			return
		}
		switch std := plain.G.Global.RawGetString(string(name)); {
		case std == lua.LNil:
			if _, ok := v.(*lua.LFunction); ok {
				s.Globals = append(s.Globals, string(name))
			}
		case isFunction(v):
			if !sameFunction(v, std) {
				s.Replaced = append(s.Replaced, string(name))
			}
		default:
			lib, ok1 := v.(*lua.LTable)
			stdLib, ok2 := std.(*lua.LTable)
			if ok1 && ok2 {
				lib.ForEach(func(k, f lua.LValue) {
					if isFunction(f) && !sameFunction(f, stdLib.RawGet(k)) {
						s.Replaced = append(s.Replaced, fmt.Sprintf("%s.%s", name, k))
					}
				})
			}
		}
	})
	mod, ok := L.GetGlobal("provium").(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("the state has no provium module")
	}
	var err error
	mod.ForEach(func(k, v lua.LValue) {
		name := k.String()
		switch v := v.(type) {
		case *lua.LFunction:
			s.Module = append(s.Module, name)
		case *lua.LTable:
			consts, funcs := map[string]float64{}, []string{}
			v.ForEach(func(k, e lua.LValue) {
				switch e := e.(type) {
				case lua.LNumber:
					consts[k.String()] = float64(e)
				case *lua.LFunction:
					funcs = append(funcs, name+"."+k.String())
				default:
					err = fmt.Errorf("provium.%s.%s is a %s", name, k, e.Type())
				}
			})
			if len(consts) > 0 && len(funcs) > 0 {
				err = fmt.Errorf("provium.%s mixes functions and numbers", name)
			}
			if len(consts) > 0 {
				s.Constants[name] = consts
			}
			s.Module = append(s.Module, funcs...)
		default:
			err = fmt.Errorf("provium.%s is a %s", name, v.Type())
		}
	})
	if err != nil {
		return nil, err
	}

	s.Types["vm"] = Type{Methods: tableKeys(rt.methods[vmType]), Fields: mapKeys(vmFields)}
	worker := Type{Fields: mapKeys(workerFields), Refused: slices.Sorted(slices.Values(vmOnly))}
	for _, m := range tableKeys(rt.methods[workerType]) {
		if !slices.Contains(vmOnly, m) {
			worker.Methods = append(worker.Methods, m)
		}
	}
	s.Types["worker"] = worker
	s.Types["text"] = Type{Methods: mapKeys(wrapperMethods), Fields: []string{"value"}}
	s.Types["network"] = Type{Methods: tableKeys(rt.methods[networkType]), Fields: mapKeys(netFields)}
	s.Types["link"] = Type{Methods: tableKeys(rt.methods[linkType])}
	listed := []string{vmType, workerType, wrapperType, networkType, linkType, todoType} // a todo is raised, not called
	L.G.Registry.ForEach(func(k, v lua.LValue) {
		name, ok := k.(lua.LString)
		if _, isTable := v.(*lua.LTable); ok && isTable && strings.HasPrefix(string(name), "provium.") && !slices.Contains(listed, string(name)) {
			s.Unlisted = append(s.Unlisted, string(name))
		}
	})

	// The tables as the real builders make them, with every optional
	// field present.
	rt.pushExecResult(L, &client.ExecResult{ExecResult: wire.ExecResult{Signal: 9}})
	rt.pushJobResult(L, &client.JobResult{JobStatus: wire.JobStatus{Signal: 9}})
	s.Tables["job_result"] = tableKeys(L.CheckTable(-1))
	s.Tables["exec"] = tableKeys(L.CheckTable(-2))
	L.Pop(2)
	s.Tables["job"] = tableKeys(jobTable(L, wire.Job{}))
	s.Tables["kernel_report"] = tableKeys(reportTable(L, result.KernelReport{}))

	for _, list := range []*[]string{&s.Globals, &s.Replaced, &s.Module} {
		slices.Sort(*list)
	}
	return s, nil
}

func isFunction(v lua.LValue) bool {
	_, ok := v.(*lua.LFunction)
	return ok
}

// sameFunction tells whether two functions of two states are the same
// built-in: the same Go function behind them.
func sameFunction(a, b lua.LValue) bool {
	fa, ok1 := a.(*lua.LFunction)
	fb, ok2 := b.(*lua.LFunction)
	if !ok1 || !ok2 || !fa.IsG || !fb.IsG {
		return false
	}
	return reflect.ValueOf(fa.GFunction).Pointer() == reflect.ValueOf(fb.GFunction).Pointer()
}

func tableKeys(t *lua.LTable) []string {
	var keys []string
	t.ForEach(func(k, _ lua.LValue) { keys = append(keys, k.String()) })
	slices.Sort(keys)
	return keys
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
