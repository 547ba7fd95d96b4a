package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/provium/provium/internal/client"
	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/network"
	"github.com/provium/provium/internal/profile"
	"github.com/provium/provium/internal/wire"
)

// pingAvg reads the average of busybox ping's "min/avg/max = a/b/c ms".
var pingAvg = regexp.MustCompile(`min/avg/max = [\d.]+/([\d.]+)/([\d.]+)`)

// Network boots two VMs of the profile on one network and prints the
// round trip between them as the guests measure it and the throughput of
// a TCP transfer from one to the other.
func Network(ctx context.Context, out io.Writer, opts Options) error {
	if opts.Profile == "" {
		opts.Profile = "minimal"
	}
	cfg, err := profile.Load(".")
	if err != nil {
		return err
	}
	p, err := cfg.Get(opts.Profile)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(opts.Dir, "provium-bench-net-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	lan, err := network.New("bench", 1)
	if err != nil {
		return err
	}
	defer lan.Close()
	var agents []*client.Agent
	var addrs []string
	for _, name := range []string{"server", "client"} {
		m, err := lan.Join(name, name)
		if err != nil {
			return err
		}
		vm := machine.New(machine.Config{Name: name, Profile: p, Dir: filepath.Join(dir, name), Log: opts.Log})
		err = vm.Boot(ctx, machine.BootOptions{Hostname: name, NICs: []machine.NIC{{MAC: m.MAC(), Addr: m.Addr().String(), Socket: m.Socket()}}})
		if err != nil {
			return err
		}
		defer vm.Kill()
		agents = append(agents, vm.Agent())
		addrs = append(addrs, m.Addr().Addr().String())
	}
	// By address: the hosts table is the Lua bindings' business.
	server, cl, peer := agents[0], agents[1], addrs[0]
	sh := func(a *client.Agent, cmd string) (string, error) {
		r, err := a.Exec(ctx, wire.Exec{Cmd: cmd}, nil)
		if err != nil {
			return "", err
		}
		if r.ExitCode != 0 {
			return "", fmt.Errorf("%s: exit %d: %s", cmd, r.ExitCode, r.Stderr)
		}
		return string(r.Stdout), nil
	}

	const pings = 50
	// The first ping pays for ARP; the figure is the steady state.
	if _, err := sh(cl, "ping -c 1 -W 5 "+peer); err != nil {
		return err
	}
	o, err := sh(cl, fmt.Sprintf("ping -q -c %d -i 0.05 %s", pings, peer))
	if err != nil {
		return err
	}
	m := pingAvg.FindStringSubmatch(o)
	if m == nil {
		return fmt.Errorf("ping printed no round trip: %q", o)
	}
	fmt.Fprintf(out, "VM-to-VM round trip (ping)      %8s ms (average of %d, max %s)\n", m[1], pings, m[2])

	const mib = 32
	if _, err := sh(cl, fmt.Sprintf("dd if=/dev/zero of=/tmp/data bs=1M count=%d 2>/dev/null", mib)); err != nil {
		return err
	}
	var rates []float64
	for i := 0; i < 3; i++ {
		job, err := server.Background(ctx, wire.Exec{Cmd: "nc -l -p 5000 -e sh -c 'cat > /dev/null'"})
		if err != nil {
			return err
		}
		if err := waitListening(ctx, sh, server); err != nil {
			return err
		}
		start := time.Now()
		if _, err := sh(cl, "nc "+peer+" 5000 < /tmp/data"); err != nil {
			return err
		}
		d := time.Since(start)
		if _, err := server.JobWait(ctx, job.ID, 30*time.Second); err != nil {
			return err
		}
		rates = append(rates, float64(mib<<20)/1e6/d.Seconds())
	}
	slices.Sort(rates)
	fmt.Fprintf(out, "VM-to-VM TCP, %d MiB (nc)        %8.1f MB/s (median of 3; %.1f-%.1f)\n", mib, rates[1], rates[0], rates[2])
	return nil
}

func waitListening(ctx context.Context, sh func(*client.Agent, string) (string, error), a *client.Agent) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := sh(a, "netstat -ltn | grep -q ':5000 '"); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the listener did not come up in 10s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
