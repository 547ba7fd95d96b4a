package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/provium/provium/internal/runner"
	"github.com/provium/provium/internal/size"
)

// errHelp is returned by an argument parser given -h or --help.
var errHelp = flag.ErrHelp

// parseTestArgs reads provium test's arguments. Options may come before or
// after the paths, as users type them; "--" ends the options.
func parseTestArgs(args []string) (testOptions, error) {
	o := testOptions{timeout: runner.DefaultTimeout}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line by the caller
	fs.Func("p", "", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return errors.New("want a number of files, 0 for unlimited")
		}
		o.parallel, o.parallelSet = n, true
		return nil
	})
	fs.Func("f", "", func(s string) error {
		o.filters = append(o.filters, s)
		return nil
	})
	fs.BoolVar(&o.failFast, "fail-fast", false, "")
	fs.BoolVar(&o.rerunFailed, "rerun-failed", false, "")
	fs.Func("mem", "", func(s string) error {
		mib, err := size.ParseMiB(s)
		if err != nil || mib <= 0 {
			return errors.New("want a size such as 8G, 512M or a number of MiB")
		}
		o.memMiB = mib
		return nil
	})
	fs.Func("cpus", "", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return errors.New("want a positive number")
		}
		o.cpus = n
		return nil
	})
	fs.Func("timeout", "", func(s string) error {
		d, err := parseTimeout(s)
		o.timeout = d
		return err
	})
	fs.StringVar(&o.junit, "junit", "", "")
	fs.BoolVar(&o.json, "json", false, "")
	fs.BoolVar(&o.verbose, "v", false, "")
	fs.BoolVar(&o.quiet, "q", false, "")
	fs.Func("shard", "", func(s string) error {
		sh, err := runner.ParseShard(s)
		if err != nil {
			return errors.New("want K/N with 1 <= K <= N, e.g. 2/4")
		}
		o.shard = sh
		return nil
	})
	fs.BoolVar(&o.list, "list", false, "")
	fs.Func("repeat", "", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return errors.New("want a number of runs, at least 1")
		}
		o.repeat = n
		return nil
	})
	fs.BoolVar(&o.untilFail, "until-fail", false, "")
	fs.BoolVar(&o.noCache, "no-cache", false, "")
	fs.BoolVar(&o.pause, "pause-on-failure", false, "")
	o.debug.register(fs)

	for {
		if err := fs.Parse(args); err != nil {
			return o, flagError(fs, err)
		}
		// flag stops at the first path; continue after it, unless what
		// stopped it was "--".
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			o.paths = append(o.paths, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		o.paths = append(o.paths, rest[0])
		args = rest[1:]
	}

	switch {
	case o.verbose && o.quiet:
		return o, errors.New("-v and -q do not go together")
	case len(o.paths) == 0 && !o.rerunFailed:
		return o, errors.New("no test paths given")
	case o.junit != "" && o.list:
		return o, errors.New("--junit and --list do not go together")
	case o.pause && o.json:
		return o, errors.New("--pause-on-failure and --json do not go together: a paused run talks to a person")
	}
	return o, nil
}

// parseTimeout reads a Go duration ("90s", "10m") or a number of seconds.
func parseTimeout(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		secs, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return 0, errors.New("want a duration such as 90s or 10m, or seconds")
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d < 0 {
		return 0, errors.New("a timeout cannot be negative")
	}
	return d, nil
}

// flagError words the flag package's errors as users typed the options:
// "--shard", not "-shard".
func flagError(fs *flag.FlagSet, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	long := func(name string) string {
		if len(name) > 1 {
			return "--" + name
		}
		return "-" + name
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Errorf("unknown option %s", long(name))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Errorf("option %s needs a value", long(name))
	}
	fs.VisitAll(func(f *flag.Flag) {
		msg = strings.Replace(msg, " -"+f.Name+": ", " "+long(f.Name)+": ", 1)
	})
	return errors.New(msg)
}
