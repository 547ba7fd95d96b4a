package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/provium/provium/internal/scaffold"
)

func init() {
	register("init", "start a suite: provium.toml, a first test and fixture, editor and CI files", runInit)
}

var initUsage = `usage: provium init [--ci NAME,...] [DIR]

Lays out a new suite in DIR (default: the current directory):

  provium.toml                  the built-in profiles, shown commented
  tests/first.lua               a first test: boot, commands, files, a worker
  tests/prepared.lua            a test that resumes the fixture below
  tests/fixtures/prepared.lua   a fixture: a VM prepared once and snapshotted
  .luarc.json, .provium/stubs/  type definitions for editors (provium stubs)
  and the CI recipes asked for.

Options:
  --ci NAME,...   CI recipes to add (default github; "none" for none):
                    github      .github/workflows/provium.yml
                    gitlab      .gitlab-ci.yml
                    kubernetes  ci/provium-job.yaml (an Indexed Job)

It overwrites nothing: if one of the files exists, it writes none. Then run
'provium test tests/' there.`

func runInit(args []string) int {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	ci := fs.String("ci", "github", "")
	if err := fs.Parse(args); err != nil {
		if err == errHelp {
			fmt.Println(initUsage)
			return exitOK
		}
		fmt.Fprintf(os.Stderr, "provium init: %v\n%s\n", err, initUsage)
		return exitUsage
	}
	dir := "."
	switch fs.NArg() {
	case 0:
	case 1:
		dir = fs.Arg(0)
	default:
		fmt.Fprintln(os.Stderr, initUsage)
		return exitUsage
	}
	var recipes []string
	if *ci != "none" && *ci != "" {
		recipes = strings.Split(*ci, ",")
	}
	files, err := scaffold.Files(recipes)
	if err != nil {
		fmt.Fprintf(os.Stderr, "provium init: %v\n", err)
		return exitUsage
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "provium init: %v\n", err)
		return exitFail
	}
	if err := scaffold.Write(dir, files); err != nil {
		fmt.Fprintf(os.Stderr, "provium init: %v\n", err)
		return exitFail
	}
	for _, f := range files {
		fmt.Println("created", f.Path)
	}
	fmt.Printf("\nNext: cd %s && provium test tests/\n", dir)
	return exitOK
}
