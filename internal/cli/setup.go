package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/provium/provium/internal/doctor"
	"github.com/provium/provium/internal/setup"
)

func init() {
	register("setup", "install QEMU and busybox (apt) and fetch the guest kernel into the cache", runSetup)
	register("doctor", "check QEMU, KVM, vsock, kernel and busybox, and say how to fix what is missing", runDoctor)
}

func runSetup(args []string) int {
	if len(args) > 0 {
		fmt.Println("usage: provium setup\n\nInstalls qemu-system-x86 and busybox-static with apt when missing and\nfetches Debian's cloud kernel into the user cache, where the built-in\nprofiles find it. Quick when everything is already there.")
		if args[0] == "-h" || args[0] == "--help" {
			return exitOK
		}
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := setup.Run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "provium setup:", err)
		return exitFail
	}
	return exitOK
}

func runDoctor(args []string) int {
	if len(args) > 0 {
		fmt.Println("usage: provium doctor\n\nChecks what provium needs and prints the fix for each missing piece.")
		if args[0] == "-h" || args[0] == "--help" {
			return exitOK
		}
		return exitUsage
	}
	if !doctor.Run(os.Stdout) {
		return exitFail
	}
	return exitOK
}
