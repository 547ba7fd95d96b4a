package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/provium/provium/internal/bench"
)

func init() {
	register("bench", "measure boot, resume, round trips, throughput, workers and the shell on real VMs", runBench)
}

func runBench(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: provium bench [-profile NAME] [-boots N] [-boot-only | -network-only | -shell-only] [-rounds N] [-suite N]\n\nBoots real VMs and prints what each operation costs.")
		fs.PrintDefaults()
	}
	profile := fs.String("profile", "minimal", "profile to boot")
	rounds := fs.Int("rounds", 200, "repetitions of each round-trip measurement")
	boots := fs.Int("boots", 5, "cold boots whose median is reported")
	bootOnly := fs.Bool("boot-only", false, "measure only cold boots")
	networkOnly := fs.Bool("network-only", false, "measure only VM-to-VM round trip and TCP throughput")
	suite := fs.Int("suite", 40, "files in the generated suite that resumes one shared fixture (0 skips it)")
	shellOnly := fs.Bool("shell-only", false, "measure only provium shell to its prompt, against cold boots and fixture resumes")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if n := btoi(*bootOnly) + btoi(*networkOnly) + btoi(*shellOnly); n > 1 {
		fmt.Fprintln(os.Stderr, "provium bench: one of -boot-only, -network-only and -shell-only at most")
		return exitUsage
	}
	if *networkOnly || *shellOnly {
		*bootOnly, *suite = false, 0
	}
	var err error
	if !*networkOnly && !*shellOnly {
		err = bench.Run(ctx, os.Stdout, bench.Options{Profile: *profile, Rounds: *rounds, Boots: *boots, BootOnly: *bootOnly})
	}
	if err == nil && !*bootOnly && !*networkOnly {
		err = bench.Shell(ctx, os.Stdout, bench.Options{Profile: *profile, Boots: *boots})
	}
	if err == nil && !*bootOnly && !*shellOnly {
		err = bench.Network(ctx, os.Stdout, bench.Options{Profile: *profile})
	}
	if err == nil && *suite > 0 && !*bootOnly {
		err = bench.Suite(ctx, os.Stdout, *suite)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "provium bench:", err)
		if ctx.Err() != nil {
			return exitInterrupted
		}
		return exitFail
	}
	return exitOK
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
