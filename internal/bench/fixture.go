package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/memfile"
	"github.com/provium/provium/internal/qemu"
	"github.com/provium/provium/internal/wire"
)

// fixturePath is one way of saving a fixture.
type fixturePath struct {
	name     string
	template bool
}

// fixtureFigures is what one path costs at one memory size.
type fixtureFigures struct {
	save, resume time.Duration
}

// fixtures measures both ways of saving a fixture side by side, on the
// same guest: a migration stream of the whole VM, and a memory template
// (the RAM in a file that resumes map privately). Each is saved from a
// guest prepared alike, then resumed three times to its first op; at
// 512 MiB and at 4 GiB of guest RAM, to show what resume costs grow with.
func fixtures(ctx context.Context, out io.Writer, dir string, newVM func(string) machine.Config, cold time.Duration) error {
	paths := []fixturePath{{"stream", false}, {"template", true}}
	why := qemu.Templates(ctx)
	if why == nil {
		why = memfile.Probe(dir)
	}
	if why != nil {
		fmt.Fprintf(out, "fixture templates not measured: %v\n", why)
		paths = paths[:1]
	}
	sizes := []int{512, 4096}
	got := map[string]map[int]fixtureFigures{}
	for _, mib := range sizes {
		for _, p := range paths {
			f, err := fixtureCost(ctx, dir, newVM, p, mib)
			if err != nil {
				return fmt.Errorf("fixture %s at %d MiB: %w", p.name, mib, err)
			}
			if got[p.name] == nil {
				got[p.name] = map[int]fixtureFigures{}
			}
			got[p.name][mib] = f
		}
	}
	for _, p := range paths {
		small, big := got[p.name][512], got[p.name][4096]
		fmt.Fprintf(out, "%-9s save (512 MiB)             %8.0f ms\n", p.name, ms(small.save))
		fmt.Fprintf(out, "%-9s resume to first op         %8.0f ms (median of 3)\n", p.name, ms(small.resume))
		fmt.Fprintf(out, "%-9s resume / cold boot         %8.3f\n", p.name, float64(small.resume)/float64(cold))
		fmt.Fprintf(out, "%-9s resume at 4 GiB            %8.0f ms (%.2f x 512 MiB; save %.0f ms)\n", p.name, ms(big.resume), float64(big.resume)/float64(small.resume), ms(big.save))
	}
	return nil
}

// fixtureCost boots a guest of mib MiB, dirties some of its memory as a
// fixture script would, saves it by path p and resumes it three times.
func fixtureCost(ctx context.Context, dir string, newVM func(string) machine.Config, p fixturePath, mib int) (fixtureFigures, error) {
	var f fixtureFigures
	name := fmt.Sprintf("fixture-%s-%d", p.name, mib)
	cfg := newVM(name)
	snap := filepath.Join(dir, name+"-snapshot")
	if err := os.MkdirAll(snap, 0o755); err != nil {
		return f, err
	}
	defer os.RemoveAll(snap)
	if p.template {
		cfg.RAMDir = snap
	}
	vm := machine.New(cfg)
	if err := vm.Boot(ctx, machine.BootOptions{MemoryMiB: mib}); err != nil {
		return f, err
	}
	defer vm.Kill()
	// 32 MiB of data in the page cache: a fixture that installed
	// something.
	r, err := vm.Agent().Exec(ctx, wire.Exec{Cmd: "head -c 33554432 /dev/urandom > /tmp/fixture-data"}, nil)
	if err == nil && r.ExitCode != 0 {
		err = fmt.Errorf("exit %d", r.ExitCode)
	}
	if err != nil {
		return f, fmt.Errorf("prepare the guest: %w", err)
	}
	start := time.Now()
	shape, err := vm.Snapshot(ctx, snap)
	if err != nil {
		return f, err
	}
	f.save = time.Since(start)
	var resumes []time.Duration
	for i := 0; i < 3; i++ {
		start := time.Now()
		r, err := machine.Resume(ctx, newVM(fmt.Sprintf("%s-resume%d", name, i)), machine.SavedIn(snap), shape)
		if err != nil {
			return f, err
		}
		err = r.Agent().Ping(ctx)
		resumes = append(resumes, time.Since(start))
		r.Kill()
		if err != nil {
			return f, err
		}
	}
	f.resume = median(resumes)
	return f, nil
}
