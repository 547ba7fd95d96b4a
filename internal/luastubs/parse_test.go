package luastubs

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// The definitions as the test reads them: LuaLS annotations are a small
// language of comment lines, and the file keeps to a few forms of it.

type param struct {
	name     string
	typ      string
	optional bool
}

type function struct {
	name    string // "test", "provium.create", "provium.VM:boot"
	line    int
	doc     string
	params  []param  // from the function's own line, typed by @param
	returns []string // their types
	// varReturns: the last @return is "...", any number of values.
	varReturns bool
	// problems found while reading it: a @param without a parameter, a
	// parameter without a @param.
	problems []string
}

type class struct {
	name    string
	parent  string
	doc     string
	fields  map[string]param
	methods map[string]*function
}

type stubs struct {
	functions map[string]*function // globals and module functions
	classes   map[string]*class
}

var (
	classLine  = regexp.MustCompile(`^---@class\s+([\w.]+)(?:\s*:\s*([\w.]+))?\s*$`)
	fieldLine  = regexp.MustCompile(`^---@field\s+(\w+)(\??)\s+(\S+)`)
	paramLine  = regexp.MustCompile(`^---@param\s+(\w+|\.\.\.)(\??)\s+(\S+)`)
	returnLine = regexp.MustCompile(`^---@return\s+(\S+)(?:\s+(\S+))?`)
	localLine  = regexp.MustCompile(`^local\s+(\w+)\s*=\s*\{\}\s*$`)
	funcLine   = regexp.MustCompile(`^function\s+([\w.]+)(?::(\w+))?\(([^)]*)\)\s*end\s*$`)
)

func parseStubs(src []byte) (*stubs, error) {
	s := &stubs{functions: map[string]*function{}, classes: map[string]*class{}}
	locals := map[string]*class{}
	var (
		doc     []string
		params  []param
		returns []string
		varRet  bool
		cur     *class // the class whose annotations are being read
	)
	reset := func() { doc, params, returns, varRet, cur = nil, nil, nil, false, nil }
	sc := bufio.NewScanner(bytes.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || (strings.HasPrefix(line, "--") && !strings.HasPrefix(line, "---")):
			if line == "" {
				reset()
			}
		case strings.HasPrefix(line, "---@meta"), strings.HasPrefix(line, "---@generic"):
		case classLine.MatchString(line):
			m := classLine.FindStringSubmatch(line)
			cur = &class{name: m[1], parent: m[2], doc: strings.Join(doc, " "), fields: map[string]param{}, methods: map[string]*function{}}
			if s.classes[cur.name] != nil {
				return nil, fmt.Errorf("line %d: class %s defined twice", n, cur.name)
			}
			s.classes[cur.name] = cur
		case fieldLine.MatchString(line):
			m := fieldLine.FindStringSubmatch(line)
			if cur == nil {
				return nil, fmt.Errorf("line %d: @field outside a class", n)
			}
			cur.fields[m[1]] = param{name: m[1], typ: m[3], optional: m[2] == "?"}
		case paramLine.MatchString(line):
			m := paramLine.FindStringSubmatch(line)
			params = append(params, param{name: m[1], typ: m[3], optional: m[2] == "?"})
		case returnLine.MatchString(line):
			m := returnLine.FindStringSubmatch(line)
			returns = append(returns, m[1])
			varRet = m[2] == "..."
		case strings.HasPrefix(line, "---@"):
			return nil, fmt.Errorf("line %d: annotation the test does not know: %s", n, line)
		case strings.HasPrefix(line, "---"):
			doc = append(doc, strings.TrimPrefix(line, "---"))
		case localLine.MatchString(line):
			if cur == nil {
				return nil, fmt.Errorf("line %d: local table without a class", n)
			}
			locals[localLine.FindStringSubmatch(line)[1]] = cur
			reset()
		case funcLine.MatchString(line):
			m := funcLine.FindStringSubmatch(line)
			f := &function{name: m[1], line: n, doc: strings.Join(doc, " "), returns: returns, varReturns: varRet}
			f.params, f.problems = matchParams(m[3], params)
			if m[2] != "" {
				c := locals[m[1]]
				if c == nil {
					return nil, fmt.Errorf("line %d: method of %s, which is no class's table", n, m[1])
				}
				f.name = c.name + ":" + m[2]
				c.methods[m[2]] = f
			} else {
				if s.functions[f.name] != nil {
					return nil, fmt.Errorf("line %d: %s defined twice", n, f.name)
				}
				s.functions[f.name] = f
			}
			reset()
		default: // provium = {}, provium.ioc = {}
			reset()
		}
	}
	return s, sc.Err()
}

// matchParams pairs the parameters of a function's line with its @param
// annotations, which must name the same parameters in the same order.
func matchParams(list string, annotated []param) ([]param, []string) {
	var names []string
	for _, p := range strings.Split(list, ",") {
		if p = strings.TrimSpace(p); p != "" {
			names = append(names, p)
		}
	}
	var out []param
	var problems []string
	for i, name := range names {
		if i >= len(annotated) || annotated[i].name != name {
			problems = append(problems, fmt.Sprintf("parameter %s has no @param in its place", name))
			out = append(out, param{name: name, typ: "any"})
			continue
		}
		out = append(out, annotated[i])
	}
	for _, a := range annotated[min(len(names), len(annotated)):] {
		problems = append(problems, fmt.Sprintf("@param %s names no parameter", a.name))
	}
	return out, problems
}

// methods are a class's methods with those it inherits.
func (s *stubs) methods(name string) map[string]*function {
	out := map[string]*function{}
	for c := s.classes[name]; c != nil; c = s.classes[c.parent] {
		for k, f := range c.methods {
			if out[k] == nil {
				out[k] = f
			}
		}
	}
	return out
}

// fields are a class's fields with those it inherits.
func (s *stubs) fields(name string) map[string]param {
	out := map[string]param{}
	for c := s.classes[name]; c != nil; c = s.classes[c.parent] {
		for k, f := range c.fields {
			if _, ok := out[k]; !ok {
				out[k] = f
			}
		}
	}
	return out
}
