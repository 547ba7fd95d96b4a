//go:build !linux

package report

import "os"

// Provium runs VMs on Linux only; elsewhere the report has no live line.
func isTerminal(*os.File) bool { return false }

func termWidth(*os.File) int { return 80 }
