package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/provium/provium/internal/luastubs"
)

func init() {
	register("stubs", "write editor type definitions (LuaLS) of the Lua API", runStubs)
}

const stubsUsage = `usage: provium stubs [DIR]

Writes type definitions of provium's Lua API for lua-language-server into
DIR/` + luastubs.Dir + ` (DIR defaults to the current directory), and a
DIR/.luarc.json that points the server at them, unless DIR has one already.
Editors that use lua-language-server then complete, document and check test
scripts. The definitions are replaced each time: run it again after
upgrading provium.`

func runStubs(args []string) int {
	dir, code, ok := dirArg("stubs", stubsUsage, args)
	if !ok {
		return code
	}
	written, note, err := luastubs.Write(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "provium stubs: %v\n", err)
		return exitFail
	}
	for _, f := range written {
		fmt.Println("wrote", f)
	}
	if note != "" {
		fmt.Fprintln(os.Stderr, "provium stubs:", note)
	}
	return exitOK
}

// dirArg reads the optional directory argument of a command that writes
// into one; ok is false when the command should return code at once.
func dirArg(name, usage string, args []string) (dir string, code int, ok bool) {
	switch {
	case len(args) == 1 && (args[0] == "-h" || args[0] == "--help"):
		fmt.Println(usage)
		return "", exitOK, false
	case len(args) > 1 || (len(args) == 1 && len(args[0]) > 0 && args[0][0] == '-'):
		fmt.Fprintln(os.Stderr, usage)
		return "", exitUsage, false
	case len(args) == 1:
		dir = args[0]
	default:
		dir = "."
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		why := "not a directory"
		if err != nil {
			why = unwrapPath(err).Error()
		}
		fmt.Fprintf(os.Stderr, "provium %s: %s: %s\n", name, dir, why)
		return "", exitUsage, false
	}
	return dir, exitOK, true
}

// unwrapPath drops the path an *fs.PathError repeats.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
