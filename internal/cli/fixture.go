package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/provium/provium/internal/cache"
	"github.com/provium/provium/internal/fixture"
	"github.com/provium/provium/internal/harness"
	"github.com/provium/provium/internal/pool"
)

func init() {
	register("fixture", "list, clean, export or import the persistent fixture cache", runFixture)
}

const fixtureUsage = `usage: provium fixture list|clean
       provium fixture export FILE [NAME...]
       provium fixture import FILE

  list     show cached fixture snapshots: name, key, size, age, last use
  clean    remove every cached snapshot
  export   write the cached entries of the named fixtures (all without
           names), and of the fixtures they resumed, to the archive FILE:
           gzip-compressed, unless FILE ends in .tar; - is standard output
  import   add the entries of the archive FILE (- is standard input) to
           the cache; entries of another provium build are skipped

An imported entry is resumed only where its key holds: in a checkout of
the same fixture scripts, the files they load and the same kernel; any
other checkout rebuilds it. Import an archive only from whom you would let
prepare your guests. The cache lives in $PROVIUM_CACHE/fixtures (default
~/.cache/provium/fixtures).`

func runFixture(args []string) int {
	if len(args) >= 1 && (args[0] == "export" || args[0] == "import") {
		if len(args) < 2 || (args[0] == "import" && len(args) != 2) {
			fmt.Fprintln(os.Stderr, fixtureUsage)
			return exitUsage
		}
		if args[0] == "export" {
			return fixtureExport(args[1], args[2:])
		}
		return fixtureImport(args[1])
	}
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

// fixtureExport is provium fixture export FILE [NAME...]. The file
// appears whole or not at all.
func fixtureExport(file string, names []string) int {
	compress := !strings.HasSuffix(file, ".tar")
	var out *fixture.Exported
	export := func(w io.Writer) error {
		var err error
		out, err = fixture.Export(cache.Fixtures(), names, w, compress)
		return err
	}
	var err error
	if file == "-" {
		err = export(os.Stdout)
	} else {
		err = cache.WriteFile(file, 0o644, export)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "provium fixture:", err)
		if errors.Is(err, fixture.ErrNotFound) {
			return exitUsage
		}
		return exitFail
	}
	for _, m := range out.Missing {
		fmt.Fprintf(os.Stderr, "provium fixture export: not in the cache, to be built where imported: %s\n", m)
	}
	msg := os.Stdout
	if file == "-" {
		msg = os.Stderr
	}
	for _, e := range out.Entries {
		fmt.Fprintf(msg, "exported %s (key %.12s)\n", e.Name, e.Key)
	}
	size := ""
	if st, err := os.Stat(file); err == nil && file != "-" {
		size = fmt.Sprintf(", %s in %s", pool.FormatMiB(int((st.Size()+(1<<20)-1)>>20)), file)
	}
	fmt.Fprintf(msg, "%d entries, %s of snapshots%s\n", len(out.Entries), pool.FormatMiB(int((out.Bytes+(1<<20)-1)>>20)), size)
	return exitOK
}

// fixtureImport is provium fixture import FILE.
func fixtureImport(file string) int {
	in := os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, "provium fixture import:", err)
			return exitUsage
		}
		defer f.Close()
		in = f
	}
	build, err := harness.BuildID()
	if err != nil {
		fmt.Fprintln(os.Stderr, "provium fixture import:", err)
		return exitFail
	}
	max, err := harness.CacheMax()
	if err != nil {
		fmt.Fprintln(os.Stderr, "provium fixture import:", err)
		return exitUsage
	}
	done, err := fixture.Import(cache.Fixtures(), in, build, fixture.ImportLimits{MaxBytes: max})
	for _, e := range done {
		if e.Skipped != "" {
			fmt.Printf("skipped %s (key %.12s): %s\n", e.Name, e.Key, e.Skipped)
		} else {
			fmt.Printf("imported %s (key %.12s)\n", e.Name, e.Key)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "provium fixture: %s: %v\n", file, err)
		return exitFail
	}
	return exitOK
}
