package cli

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/provium/provium/internal/cache"
	"github.com/provium/provium/internal/fixture"
	"github.com/provium/provium/internal/pool"
)

func init() {
	register("fixture", "list or clean the persistent fixture cache", runFixture)
}

const fixtureUsage = `usage: provium fixture list|clean

  list    show cached fixture snapshots: name, key, size, age, last use
  clean   remove every cached snapshot

The cache lives in $PROVIUM_CACHE/fixtures (default ~/.cache/provium/fixtures).`

func runFixture(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, fixtureUsage)
		return exitUsage
	}
	root := cache.Fixtures()
	switch args[0] {
	case "-h", "--help":
		fmt.Println(fixtureUsage)
		return exitOK
	case "list":
		entries := fixture.List(root)
		if len(entries) == 0 {
			fmt.Println("no cached fixtures in", root)
			return exitOK
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tKEY\tVMS\tSIZE\tAGE\tLAST USED\tSCRIPT")
		for _, e := range entries {
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s ago\t%s\n", e.Name, e.Key, len(e.VMs), pool.FormatMiB(int((e.Size()+(1<<20)-1)>>20)),
				age(e.Created), age(e.LastUsed), e.Script)
		}
		w.Flush()
		return exitOK
	case "clean":
		n, err := fixture.Clean(root)
		if err != nil {
			fmt.Fprintln(os.Stderr, "provium fixture clean:", err)
			return exitFail
		}
		fmt.Printf("removed %d cached fixtures\n", n)
		return exitOK
	default:
		fmt.Fprintf(os.Stderr, "provium fixture: unknown action %q\n%s\n", args[0], fixtureUsage)
		return exitUsage
	}
}

func age(t time.Time) string {
	d := time.Since(t).Round(time.Second)
	if d > time.Hour {
		d = d.Round(time.Minute)
	}
	return d.String()
}
