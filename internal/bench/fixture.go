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
	"github.com/provium/provium/internal/pool"
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
	// standby is resume to first op through a standby QEMU, which held
	// standbyMiB of its own while it waited (templates only).
	standby    time.Duration
	standbyMiB int
	// pssMiB is the host memory (PSS) of idleVMs resumed VMs together.
	pssMiB int
}

// idleVMs is how many resumed VMs the memory figure holds at once.
const idleVMs = 20

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
		if p.template {
			fmt.Fprintf(out, "%-9s resume from a standby      %8.0f ms (median of 3; %.3f x cold boot; the standby held %d MiB of its own)\n",
				p.name, ms(small.standby), float64(small.standby)/float64(cold), small.standbyMiB)
		}
		fmt.Fprintf(out, "%-9s %d idle VMs resumed, PSS  %8d MiB (%.2f x %d x 512 MiB)\n", p.name, idleVMs, small.pssMiB, float64(small.pssMiB)/float64(idleVMs*512), idleVMs)
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
	saved := machine.SavedIn(snap)
	var resumes []time.Duration
	for i := 0; i < 3; i++ {
		d, _, err := firstOp(ctx, newVM(fmt.Sprintf("%s-resume%d", name, i)), saved, shape)
		if err != nil {
			return f, err
		}
		resumes = append(resumes, d)
	}
	f.resume = median(resumes)
	if p.template {
		if f.standby, f.standbyMiB, err = standbyCost(ctx, newVM, name, saved, shape); err != nil {
			return f, err
		}
	}
	if mib == 512 {
		if f.pssMiB, err = idleCost(ctx, newVM, name, saved, shape); err != nil {
			return f, err
		}
	}
	return f, nil
}

// firstOp resumes saved as cfg to its first op, and says how long that
// took and which QEMU it ran in.
func firstOp(ctx context.Context, cfg machine.Config, saved machine.Saved, shape machine.Shape) (time.Duration, int, error) {
	start := time.Now()
	r, err := machine.Resume(ctx, cfg, saved, shape)
	if err != nil {
		return 0, 0, err
	}
	defer r.Kill()
	if err := r.Agent().Ping(ctx); err != nil {
		return 0, 0, err
	}
	return time.Since(start), r.QEMUPid(), nil
}

// standbyCost resumes saved three times through a standby QEMU that
// loaded it first, to the first op, and says what the standby held while
// it waited.
func standbyCost(ctx context.Context, newVM func(string) machine.Config, name string, saved machine.Saved, shape machine.Shape) (time.Duration, int, error) {
	var resumes []time.Duration
	most := 0
	for i := 0; i < 3; i++ {
		s, err := machine.PrepareResume(ctx, saved, shape)
		if err != nil {
			return 0, 0, err
		}
		mib, err := pool.PrivateDirtyMiB(s.Pid())
		if err != nil {
			s.Close()
			return 0, 0, err
		}
		most = max(most, mib)
		cfg := newVM(fmt.Sprintf("%s-standby%d", name, i))
		cfg.Standby = s
		d, pid, err := firstOp(ctx, cfg, saved, shape)
		if err != nil {
			return 0, 0, err
		}
		resumes = append(resumes, d)
		if pid != s.Pid() {
			return 0, 0, fmt.Errorf("the resume did not use its standby QEMU (%d, not %d)", pid, s.Pid())
		}
	}
	return median(resumes), most, nil
}

// idleCost resumes idleVMs VMs from saved, lets them idle, and adds up
// the host memory their QEMUs hold.
func idleCost(ctx context.Context, newVM func(string) machine.Config, name string, saved machine.Saved, shape machine.Shape) (int, error) {
	var vms []*machine.VM
	defer func() {
		for _, vm := range vms {
			vm.Kill()
		}
	}()
	for i := range idleVMs {
		vm, err := machine.Resume(ctx, newVM(fmt.Sprintf("%s-idle%d", name, i)), saved, shape)
		if err != nil {
			return 0, err
		}
		vms = append(vms, vm)
		if err := vm.Agent().Ping(ctx); err != nil {
			return 0, err
		}
	}
	time.Sleep(2 * time.Second) // idle: what a VM waiting for its test holds
	total := 0
	for _, vm := range vms {
		mib, err := pool.PSSMiB(vm.QEMUPid())
		if err != nil {
			return 0, err
		}
		total += mib
	}
	return total, nil
}
