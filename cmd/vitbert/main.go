// Command vitbert pre-trains, fine-tunes, evaluates and serves ViT-BERT: one
// Transformer encoder shared by images and text.
//
// Each subcommand lives in its own file and registers itself in init; this
// file only dispatches.
package main

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
)

// command is one subcommand: its flags are parsed by run itself.
type command struct {
	name    string
	summary string
	run     func(args []string) error
}

var commands = map[string]*command{}

func register(name, summary string, run func(args []string) error) {
	if _, dup := commands[name]; dup {
		panic("vitbert: command registered twice: " + name)
	}
	commands[name] = &command{name: name, summary: summary, run: run}
}

func usage() {
	fmt.Fprintf(os.Stderr, "vitbert: a unified Transformer jointly pre-trained on unpaired images and text.\n\nUsage:\n  vitbert COMMAND [flags]\n\nCommands:\n")
	names := slices.Sorted(maps.Keys(commands))
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'vitbert COMMAND --help' for the flags of a command.\n")
}

// isHelp reports whether args ask for help (-h, --help or help first).
func isHelp(args []string) bool {
	return len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help")
}

func main() {
	warnIfSlowBuild()
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		os.Args[1] = "version"
	}
	if len(os.Args) < 2 || isHelp(os.Args[1:]) {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "vitbert: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err := cmd.run(os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "vitbert %s: %v\n", cmd.name, strings.TrimSpace(err.Error()))
		os.Exit(1)
	}
}

// startHook runs after a command has read and checked its flags, just
// before its work starts (training, downloading, benchmarking). Tests set
// it to stop there.
var startHook = func() error { return nil }
