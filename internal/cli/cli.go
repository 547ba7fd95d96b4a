// Package cli is provium's command line: a table of subcommands, each
// registered from its own file with register, and the help generated from
// that table.
//
// Every command returns its exit status: 0 success, 1 a failure of what it
// did (a test failed), 2 a usage or configuration error, 130 interrupted.
package cli

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Exit statuses shared by the commands.
const (
	exitOK          = 0
	exitFail        = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// command is one subcommand.
type command struct {
	name    string
	summary string // one line for the command list
	run     func(args []string) int
}

// commands is filled by register, from init functions in each command's file.
var commands = map[string]command{}

// register adds a subcommand. run receives the arguments after the command
// name and returns the exit status; given -h or --help it prints its usage
// to stdout and returns 0, which is also how "provium help <name>" works.
func register(name, summary string, run func(args []string) int) {
	if _, dup := commands[name]; dup {
		panic("cli: command registered twice: " + name)
	}
	commands[name] = command{name: name, summary: summary, run: run}
}

func init() {
	register("help", "show help for provium or one of its commands", runHelp)
}

// Main runs the command line args (without the program name) and returns
// the exit status.
func Main(args []string) int {
	if len(args) == 0 {
		writeUsage(os.Stderr)
		return exitUsage
	}
	name := args[0]
	if name == "-h" || name == "--help" {
		name = "help"
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "provium: unknown command %q\nRun 'provium help' for usage.\n", args[0])
		return exitUsage
	}
	return cmd.run(args[1:])
}

func runHelp(args []string) int {
	switch {
	case len(args) == 0 || (len(args) == 1 && args[0] == "help"):
		writeUsage(os.Stdout)
		return exitOK
	case len(args) > 1:
		fmt.Fprintln(os.Stderr, "usage: provium help [command]")
		return exitUsage
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "provium help: unknown command %q\nRun 'provium help' for usage.\n", args[0])
		return exitUsage
	}
	return cmd.run([]string{"-h"})
}

// writeUsage lists the commands from the table, so a new command shows up
// by registering.
func writeUsage(w io.Writer) {
	names := slices.Sorted(func(yield func(string) bool) {
		for name := range commands {
			if !yield(name) {
				return
			}
		}
	})
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	var b strings.Builder
	b.WriteString("Provium runs Lua test files against Linux VMs.\n\nUsage:\n  provium <command> [arguments]\n\nCommands:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, n, commands[n].summary)
	}
	b.WriteString("\nRun 'provium help <command>' for a command's options.\n")
	io.WriteString(w, b.String())
}

// usageError prints a one-line error for command and a hint, and returns
// the usage exit status.
func usageError(stderr io.Writer, command string, err error) int {
	fmt.Fprintf(stderr, "provium %s: %v\nRun 'provium help %s' for usage.\n", command, err, command)
	return exitUsage
}
