// Package bench measures the costs users feel: cold boot, resume from a
// fixture, agent round trips, file throughput, syscalls and workers. It
// drives real VMs through the same packages tests use and prints figures;
// it never fails on a slow machine.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/provium/provium/internal/client"
	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/profile"
	"github.com/provium/provium/internal/wire"
)

// Options choose what to measure.
type Options struct {
	Profile string // default "minimal"
	Rounds  int    // repetitions of each small op
	Boots   int    // cold boots whose median is reported
	// BootOnly stops after the cold boots: the figure to watch when
	// changing what a boot does.
	BootOnly bool
	Dir      string // scratch directory
	Log      io.Writer
}

// Run boots VMs and prints one line per figure to out.
func Run(ctx context.Context, out io.Writer, opts Options) error {
	if opts.Profile == "" {
		opts.Profile = "minimal"
	}
	if opts.Rounds <= 0 {
		opts.Rounds = 200
	}
	if opts.Boots <= 0 {
		opts.Boots = 5
	}
	cfg, err := profile.Load(".")
	if err != nil {
		return err
	}
	p, err := cfg.Get(opts.Profile)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(opts.Dir, "provium-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	newVM := func(name string) machine.Config {
		return machine.Config{Name: name, Profile: p, Dir: filepath.Join(dir, name), Log: opts.Log}
	}

	// Warm the initramfs cache so the cold boot measures booting.
	warm := machine.New(newVM("warm"))
	if err := warm.Boot(ctx, machine.BootOptions{}); err != nil {
		return err
	}
	warm.Kill()

	// One boot swings by half a second with the host's load; the median
	// of several is the figure to compare.
	var boots []time.Duration
	var vm *machine.VM
	for i := 0; i < opts.Boots; i++ {
		if vm != nil {
			vm.Kill()
		}
		vm = machine.New(newVM(fmt.Sprintf("cold%d", i)))
		start := time.Now()
		if err := vm.Boot(ctx, machine.BootOptions{}); err != nil {
			return err
		}
		boots = append(boots, time.Since(start))
	}
	defer vm.Kill()
	cold := median(boots)
	fmt.Fprintf(out, "cold boot to agent ready        %8.0f ms (median of %d, %.0f-%.0f)\n",
		ms(cold), len(boots), ms(slices.Min(boots)), ms(slices.Max(boots)))
	if opts.BootOnly {
		return nil
	}
	a := vm.Agent()

	if err := roundTrips(ctx, out, a, opts.Rounds); err != nil {
		return err
	}
	if err := throughput(ctx, out, a); err != nil {
		return err
	}
	if err := workers(ctx, out, a, opts.Rounds/10+1); err != nil {
		return err
	}

	vm.Kill()
	// Fixtures: both ways of saving one, side by side.
	return fixtures(ctx, out, dir, newVM, cold)
}

func roundTrips(ctx context.Context, out io.Writer, a *client.Agent, n int) error {
	measure := func(label string, n int, f func() error) error {
		d := make([]time.Duration, 0, n)
		for i := 0; i < n; i++ {
			s := time.Now()
			if err := f(); err != nil {
				return fmt.Errorf("%s: %w", label, err)
			}
			d = append(d, time.Since(s))
		}
		fmt.Fprintf(out, "%-32s%8.3f ms (median of %d)\n", label, ms(median(d)), n)
		return nil
	}
	if err := measure("no-op round trip", n, func() error { return a.Ping(ctx) }); err != nil {
		return err
	}
	if err := measure("syscall getpid", n, func() error {
		_, _, err := a.Syscall(ctx, wire.Syscall{Nr: 39}, nil)
		return err
	}); err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	if err := measure("syscall with a 64 KiB buffer", n/4+1, func() error {
		// getrandom(buf, len, 0) fills the buffer: input and output.
		_, _, err := a.Syscall(ctx, wire.Syscall{Nr: 318, Args: [6]uint64{0, uint64(len(buf))}, Bufs: []wire.Buf{{Arg: 0}}}, [][]byte{buf})
		return err
	}); err != nil {
		return err
	}
	return measure("exec true", n/10+1, func() error {
		r, err := a.Exec(ctx, wire.Exec{Cmd: "true"}, nil)
		if err == nil && r.ExitCode != 0 {
			err = fmt.Errorf("exit %d", r.ExitCode)
		}
		return err
	})
}

func throughput(ctx context.Context, out io.Writer, a *client.Agent) error {
	data := bytes.Repeat([]byte("0123456789abcdef"), 20*65536) // 20 MiB
	var writes, reads []time.Duration
	for i := 0; i < 3; i++ {
		start := time.Now()
		if err := a.WriteFile(ctx, "/tmp/bench", data, 0o644); err != nil {
			return err
		}
		writes = append(writes, time.Since(start))
		start = time.Now()
		back, err := a.ReadFile(ctx, "/tmp/bench")
		if err != nil {
			return err
		}
		reads = append(reads, time.Since(start))
		if !bytes.Equal(back, data) {
			return fmt.Errorf("read_file returned different data")
		}
	}
	mb := float64(len(data)) / 1e6
	fmt.Fprintf(out, "write_file 20 MiB               %8.1f MB/s (median of 3; first %.1f)\n", mb/median(writes).Seconds(), mb/writes[0].Seconds())
	fmt.Fprintf(out, "read_file 20 MiB                %8.1f MB/s (median of 3; first %.1f)\n", mb/median(reads).Seconds(), mb/reads[0].Seconds())
	_, err := a.Exec(ctx, wire.Exec{Cmd: "rm -f /tmp/bench"}, nil)
	return err
}

func workers(ctx context.Context, out io.Writer, a *client.Agent, n int) error {
	// Back to back, every fork worker is a new process; with a pause
	// before each spawn, the agent's spare worker process is ready.
	for _, m := range []struct {
		label  string
		thread bool
		pause  time.Duration
		n      int
		note   string
	}{
		{"fork", false, 0, n, ", back to back"},
		{"fork", false, 300 * time.Millisecond, n/2 + 1, ", spare ready"},
		{"thread", true, 0, n, ""},
	} {
		var spawn, rtt []time.Duration
		for i := 0; i < m.n; i++ {
			time.Sleep(m.pause)
			s := time.Now()
			w, _, err := a.Spawn(ctx, m.thread)
			if err != nil {
				return fmt.Errorf("spawn %s worker: %w", m.label, err)
			}
			if err := w.Ping(ctx); err != nil {
				return err
			}
			spawn = append(spawn, time.Since(s))
			s = time.Now()
			if err := w.Ping(ctx); err != nil {
				return err
			}
			rtt = append(rtt, time.Since(s))
			if err := w.Close(ctx); err != nil {
				return err
			}
		}
		fmt.Fprintf(out, "%-32s%8.2f ms (median of %d%s)\n", m.label+" worker spawn to first op", ms(median(spawn)), m.n, m.note)
		if m.pause == 0 {
			fmt.Fprintf(out, "%-32s%8.3f ms (median of %d)\n", m.label+" worker round trip", ms(median(rtt)), m.n)
		}
	}
	return nil
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
