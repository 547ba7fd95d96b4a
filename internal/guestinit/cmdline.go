package guestinit

import "github.com/provium/provium/internal/wire/boot"

// readParams reads what the host put on the kernel command line, saying on
// the console what it could not use.
func readParams() boot.Params {
	p, errs := boot.Read(boot.CmdlinePath)
	for _, err := range errs {
		logf("%v", err)
	}
	return p
}
