package luaapi

import (
	"context"
	"io"

	"github.com/provium/provium/internal/client"
	"github.com/provium/provium/internal/machine"
	"github.com/provium/provium/internal/network"
	"github.com/provium/provium/internal/result"
)

// Machine is a VM as the bindings use it; *machine.VM implements it.
type Machine interface {
	// Name identifies the VM in messages, e.g. "minimal#1".
	Name() string
	State() machine.State
	Boot(ctx context.Context, opts machine.BootOptions) error
	// Agent is the VM's own agent identity; nil unless running.
	Agent() *client.Agent
	// Shutdown powers the VM off gracefully (10 s, then kill); idempotent.
	Shutdown(ctx context.Context) error
	Kill() error
	// ConsoleTail returns the last n lines of the serial console.
	ConsoleTail(n int) []string
	// KernelReports returns the kernel reports the VM printed, from the
	// n-th on.
	KernelReports(n int) []result.KernelReport
	// DrainConsole waits, briefly, until the VM has printed what it
	// had, so that a report printed just before is in KernelReports.
	DrainConsole(ctx context.Context)
	// ScanLeaks has kmemleak look for leaks, when the profile asks for
	// it, and adds what it finds to KernelReports.
	ScanLeaks(ctx context.Context) error
	// KernelIgnore lists what the profile says is kernel noise.
	KernelIgnore() []string
	// Settle waits, briefly, for a VM whose agent is gone to end, and
	// returns the kernel panics it printed.
	Settle(ctx context.Context) []result.KernelReport
}

// Host makes VMs for one file. The runner gives each file its own Host,
// which knows the profiles, the resource pool and the fixtures.
type Host interface {
	// Create returns a VM of the named profile, not booted. An unknown
	// profile is an error that lists the known ones.
	Create(profile string) (Machine, error)
	// Fixture resumes fixture name: its VMs, running, and the networks
	// they are on.
	Fixture(ctx context.Context, name string) (*Resumed, error)
	// Network returns a new network of this file: the N-th one is
	// 10.N.0.0/24. The host closes it when the file ends.
	Network(name string) (*network.Network, error)
}

// Resumed is a fixture resumed: one VM, or several on networks.
type Resumed struct {
	VMs      []ResumedVM
	Networks []*network.Network
}

// ResumedVM is one VM of a resumed fixture.
type ResumedVM struct {
	Machine  Machine
	Hostname string            // its name in the fixture; "" when it has none
	Members  []*network.Member // its places on Resumed.Networks, in card order
}

// Options configure one run of a Lua file.
type Options struct {
	Path     string // the Lua file
	StartDir string // base of relative dofile/loadfile paths: where provium started
	Host     Host
	Log      io.Writer // the file's log; the bindings note sub-test results here
	// Fixture is set when the file is a fixture script: the VMs it created
	// are left as they are for the caller to snapshot and discard.
	Fixture bool
	// OnSubtest, if set, is called as each sub-test ends.
	OnSubtest func(result.Subtest)
	// OnReport, if set, is told of every kernel report, with the
	// sub-test it belongs to ("" outside any).
	OnReport func(r result.KernelReport, subtest string)
	// Print, if set, hears each line print() writes, as it writes it.
	Print func(line string)
	// OnFailure, if set, runs when a sub-test fails, before the file
	// goes on: the file's VMs are still as the failure left them.
	OnFailure func(st result.Subtest)
}
