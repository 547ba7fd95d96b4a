package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// A few constants user space needs (AF_*, SOCK_*, EFD_*) live in
// kernel-internal headers under include/linux, not in uapi; the C library
// carries its own copies. Those headers do not preprocess on their own
// outside a kernel build, so the generator extracts from them only the
// definitions a group selects, plus the conditional directives around them,
// into a file of the same name in its scratch directory and preprocesses
// that after the uapi headers. Enumerations the group names become #defines.
// A selected definition under a CONFIG_ conditional is an error: its value
// would depend on a kernel configuration the generator does not have.

// extract writes the extract of the kernel-internal header g.internal and
// returns its path.
func (t *tree) extract(g *group) (string, error) {
	src := filepath.Join(t.dir, g.internal)
	b, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("extract from kernel header: %w", err)
	}
	lines := strings.Split(joinContinued(stripComments(string(b))), "\n")
	var out []string
	var conds []string // the conditional directives enclosing the current line
	var inEnum bool
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		directive, rest := splitDirective(trimmed)
		switch directive {
		case "if", "ifdef", "ifndef":
			conds = append(conds, rest)
			out = append(out, trimmed)
			continue
		case "elif":
			if len(conds) > 0 {
				conds[len(conds)-1] = rest
			}
			out = append(out, trimmed)
			continue
		case "else":
			out = append(out, trimmed)
			continue
		case "endif":
			if len(conds) > 0 {
				conds = conds[:len(conds)-1]
			}
			out = append(out, trimmed)
			continue
		case "define":
			m := defineLine.FindStringSubmatch("#define " + rest)
			if m == nil || m[2] == "(" || !g.selects(m[1]) {
				continue
			}
			if err := configFree(conds, g.internal, i+1, m[1]); err != nil {
				return "", err
			}
			out = append(out, "#define "+rest)
			continue
		case "":
		default:
			continue // #include, #undef, #error, ...: not part of the extract
		}
		if em := enumStart.FindStringSubmatch(trimmed); em != nil {
			inEnum = g.hasEnum(em[1])
			continue
		}
		if !inEnum {
			continue
		}
		if strings.HasPrefix(trimmed, "}") {
			inEnum = false
			continue
		}
		for item := range strings.SplitSeq(trimmed, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			name, value, ok := strings.Cut(item, "=")
			name = strings.TrimSpace(name)
			if !g.selects(name) {
				continue
			}
			if !ok {
				return "", fmt.Errorf("%s:%d: enumerator %s has no explicit value: %w", g.internal, i+1, name, errTree)
			}
			if err := configFree(conds, g.internal, i+1, name); err != nil {
				return "", err
			}
			out = append(out, "#define "+name+" "+strings.TrimSpace(value))
		}
	}
	dst := filepath.Join(t.scratch, "kernel", g.internal)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("extract from kernel header: %w", err)
	}
	if err := os.WriteFile(dst, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("extract from kernel header: %w", err)
	}
	return dst, nil
}

var enumStart = regexp.MustCompile(`^enum\s+([A-Za-z_][A-Za-z0-9_]*)\s*\{`)

func configFree(conds []string, file string, line int, name string) error {
	for _, c := range conds {
		if strings.Contains(c, "CONFIG_") {
			return fmt.Errorf("%s:%d: %s is defined under #if %s: %w", file, line, name, c, errTree)
		}
	}
	return nil
}

// splitDirective splits a preprocessor line into its directive and the rest;
// the directive is empty for a line that is not one.
func splitDirective(line string) (string, string) {
	if !strings.HasPrefix(line, "#") {
		return "", line
	}
	s := strings.TrimSpace(line[1:])
	i := 0
	for i < len(s) && isIdent(s[i]) {
		i++
	}
	return s[:i], strings.TrimSpace(s[i:])
}

// joinContinued joins lines that end in a backslash with the next, and puts
// an empty line after the joined one for each line it absorbed, so that
// line numbers stay right.
func joinContinued(s string) string {
	var out []string
	pending := 0
	var cur strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		if rest, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(rest)
			cur.WriteByte(' ')
			pending++
			continue
		}
		cur.WriteString(line)
		out = append(out, cur.String())
		cur.Reset()
		for ; pending > 0; pending-- {
			out = append(out, "")
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return strings.Join(out, "\n")
}

// stripComments removes C comments, keeping the newlines inside block
// comments so that line numbers stay right.
func stripComments(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				end = len(s) - i - 2
			}
			b.WriteString(strings.Repeat("\n", strings.Count(s[i:i+2+end], "\n")))
			b.WriteByte(' ')
			i += end + 3
		case strings.HasPrefix(s[i:], "//"):
			end := strings.IndexByte(s[i:], '\n')
			if end < 0 {
				return b.String()
			}
			i += end - 1
		case s[i] == '"' || s[i] == '\'':
			q := s[i]
			b.WriteByte(q)
			for i++; i < len(s) && s[i] != q && s[i] != '\n'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					b.WriteByte(s[i])
					i++
				}
				b.WriteByte(s[i])
			}
			if i < len(s) {
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
