// Command provium runs Lua test files against Linux VMs. The same binary is
// the guest's init and agent: what it does depends on the name it runs as.
package main

import (
	"os"
	"path/filepath"

	"github.com/provium/provium/internal/agent"
	"github.com/provium/provium/internal/cli"
	"github.com/provium/provium/internal/guestinit"
	"github.com/provium/provium/internal/wire/boot"
)

func main() {
	switch filepath.Base(os.Args[0]) {
	case boot.InitName:
		guestinit.Main()
	case boot.AgentName:
		agent.Main()
	case boot.SupervisorName:
		guestinit.SupervisorMain()
	case boot.WorkerName:
		agent.WorkerMain()
	default:
		os.Exit(cli.Main(os.Args[1:]))
	}
}
