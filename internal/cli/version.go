package cli

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"
)

func init() {
	register("version", "print the provium version", runVersion)
}

func runVersion(args []string) int {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" {
			fmt.Println("usage: provium version\n\nPrints the provium version and the source revision it was built from.")
			return exitOK
		}
		fmt.Fprintln(os.Stderr, "usage: provium version")
		return exitUsage
	}
	info, _ := debug.ReadBuildInfo()
	fmt.Println(versionString(info))
	return exitOK
}

// versionString is "provium <version>": the module version when provium was
// built as a module (go install ...@v1.2.0), "devel" otherwise, followed by
// the source revision when the build recorded one.
func versionString(info *debug.BuildInfo) string {
	if info == nil {
		return "provium devel"
	}
	v := info.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		rev = rev[:min(len(rev), 12)]
		// Since Go 1.24 a version stamped from the repository already
		// names the revision.
		if !strings.Contains(v, rev) {
			if modified == "true" {
				rev += ", modified"
			}
			v += " (" + rev + ")"
		}
	}
	return "provium " + v
}
