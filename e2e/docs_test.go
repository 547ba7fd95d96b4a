package e2e

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/provium/provium/internal/initramfs"
)

// A manual page's examples are a project: every ```lua block is a file of
// it, run by provium test, so an example that stops working fails here.
//
// A comment before a block says more:
//
//	<!-- file: fixtures/web.lua -->     the block is that file (any language:
//	                                    provium.toml, a helper, a fixture)
//	<!-- file: access.lua fails -->     the file is a test expected to fail
//	<!-- not run: why -->               the block is shown, never run (a
//	                                    fragment; the reason is required)
//	<!-- file: F run-by: TestX -->      the block is file F of a test of its
//	                                    own, which reads it with docFile
//
// Unnamed Lua blocks become example-N.lua. Files under fixtures/ and
// helpers that register no test are run the way provium runs them.

type docBlock struct {
	lang, file, text string
	fails, skip      bool
	runBy            string
	line             int
}

var docDirective = regexp.MustCompile(`^<!--\s*(?:file:\s*(\S+)(\s+fails)?(?:\s+run-by:\s*(Test\w+))?|(not run):\s*\S.*?)\s*-->$`)

// docBlocks returns the blocks of a page that run.
func docBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		blocks  []docBlock
		pending docBlock // what the last directive said of the next block
		cur     *docBlock
		n       int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur != nil && strings.HasPrefix(line, "```"):
			if !cur.skip && (cur.lang == "lua" || cur.file != "") {
				blocks = append(blocks, *cur)
			}
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		case strings.HasPrefix(line, "```"):
			b := pending
			b.lang, b.line = strings.TrimSpace(strings.TrimPrefix(line, "```")), n
			cur, pending = &b, docBlock{}
		default:
			if m := docDirective.FindStringSubmatch(trimmed); m != nil {
				pending = docBlock{file: m[1], fails: m[2] != "", runBy: m[3], skip: m[4] != ""}
			} else if trimmed != "" {
				pending = docBlock{}
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

func TestDocs(t *testing.T) {
	pages, _ := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	if len(pages) == 0 {
		t.Fatal("no manual pages in docs/")
	}
	for _, page := range pages {
		blocks := docBlocks(t, page)
		name := strings.TrimSuffix(filepath.Base(page), ".md")
		t.Run(name, func(t *testing.T) {
			var tests, failing []string
			files := map[string]string{}
			for i, b := range blocks {
				if b.runBy != "" {
					checkRunBy(t, page, b)
					continue
				}
				file := b.file
				if file == "" {
					file = "example-" + strconv.Itoa(i+1) + ".lua"
				}
				if _, dup := files[file]; dup {
					t.Fatalf("%s:%d: a second block for %s", page, b.line, file)
				}
				files[file] = b.text
				if strings.HasSuffix(file, ".lua") && !strings.HasPrefix(file, "fixtures/") && !strings.Contains(file, "/fixtures/") {
					if b.fails {
						failing = append(failing, file)
					} else {
						tests = append(tests, file)
					}
				}
			}
			if len(tests)+len(failing) == 0 {
				t.Skipf("%s has no Lua examples", page)
			}
			env := NewEnv(t, files)
			if setup := docSetup[name]; setup != nil {
				setup(t, env)
			}
			if len(tests) > 0 {
				env.Run(append([]string{"test"}, tests...)...).MustPass(t)
			}
			for _, f := range failing {
				if r := env.Run("test", f); r.Code != 1 {
					t.Errorf("%s: %s should fail, exit %d:\n%s", page, f, r.Code, r.Stdout)
				}
			}
		})
	}
}

// checkRunBy makes sure the test a block says runs it exists.
func checkRunBy(t *testing.T, page string, b docBlock) {
	t.Helper()
	srcs, _ := filepath.Glob("*_test.go")
	for _, src := range srcs {
		data, _ := os.ReadFile(src)
		if strings.Contains(string(data), "func "+b.runBy+"(t *testing.T)") && strings.Contains(string(data), `"`+b.file+`"`) {
			return
		}
	}
	t.Errorf("%s:%d: %s is said to run %s, but no test of that name reads it", page, b.line, b.runBy, b.file)
}

// docFile returns the block of a manual page that is the file name.
func docFile(t *testing.T, page, name string) string {
	t.Helper()
	for _, b := range docBlocks(t, filepath.Join("..", "docs", page)) {
		if b.file == name {
			return b.text
		}
	}
	t.Fatalf("docs/%s has no block for %s", page, name)
	return ""
}

// docSetup makes what a page's examples say they stand on, by page.
var docSetup = map[string]func(t *testing.T, env *Env){
	// provium_crash.ko is the test suite's module that provokes reports.
	"kernel-reports": func(t *testing.T, env *Env) {
		if err := os.Symlink(crashModule(t, env), filepath.Join(env.Dir, "provium_crash.ko")); err != nil {
			t.Fatal(err)
		}
	},
	// kernel/vmlinuz and kernel/modules are the kernel provium setup
	// fetched; tiny.cpio is the busybox root with /etc/flavour added.
	"configuration": func(t *testing.T, env *Env) {
		linkKernel(t, env, "kernel/vmlinuz", "kernel/modules")
		roots, _ := filepath.Glob(filepath.Join(userCache(t), "initramfs", "busybox-*.cpio"))
		if len(roots) == 0 {
			t.Fatal("no busybox root archive in the cache: boot a built-in profile first")
		}
		root, err := os.ReadFile(roots[0])
		if err != nil {
			t.Fatal(err)
		}
		env.Write("flavour", "tiny\n")
		var extra bytes.Buffer
		if err := initramfs.WriteFiles(&extra, map[string]string{"/etc/flavour": filepath.Join(env.Dir, "flavour")}); err != nil {
			t.Fatal(err)
		}
		// Concatenated archives: the kernel unpacks one after the other.
		root = append(root, make([]byte, (512-len(root)%512)%512)...)
		env.Write("tiny.cpio", string(root)+extra.String())
	},
}

// linkKernel links the guest kernel provium setup fetched, and its module
// tree, into the project under the given names.
func linkKernel(t *testing.T, env *Env, kernel, modules string) {
	t.Helper()
	var k, m string
	for _, kv := range kernelEnv(t) {
		if v, ok := strings.CutPrefix(kv, "PROVIUM_KERNEL="); ok {
			k = v
		}
		if v, ok := strings.CutPrefix(kv, "PROVIUM_MODULES="); ok {
			m = v
		}
	}
	if k == "" {
		k, m = os.Getenv("PROVIUM_KERNEL"), os.Getenv("PROVIUM_MODULES")
	}
	for link, target := range map[string]string{kernel: k, modules: m} {
		p := filepath.Join(env.Dir, link)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
}
