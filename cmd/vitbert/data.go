package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/vitbert/vitbert/data"
	"github.com/vitbert/vitbert/data/images"
	"github.com/vitbert/vitbert/data/texts"
)

func init() {
	register("data", "fetch real datasets, or inspect a dataset on disk", runData)
}

const dataUsage = `Usage:
  vitbert data fetch NAME... [--dir DIR]   download datasets (NAME "all" fetches every one)
  vitbert data inspect PATH                 detect the format, print splits, shapes and counts
                                            (PATH "default": the embedded data)
  vitbert data list                         list the datasets fetch knows`

func runData(args []string) error {
	if len(args) == 0 || isHelp(args) {
		fmt.Fprintln(os.Stderr, dataUsage)
		if len(args) == 0 {
			return errors.New("missing subcommand")
		}
		return flag.ErrHelp
	}
	switch args[0] {
	case "fetch":
		return dataFetch(args[1:])
	case "inspect":
		return dataInspect(args[1:])
	case "list":
		for _, f := range data.Fetchers() {
			fmt.Printf("%-16s %-6s %s\n", f.Name, f.Modality, f.About)
		}
		return nil
	}
	return fmt.Errorf("unknown subcommand %q\n%s", args[0], dataUsage)
}

// dataParseInterspersed parses flags that may come after positional arguments.
func dataParseInterspersed(fs *flags, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func dataFetch(args []string) error {
	fs := newFlags("data fetch", "NAME... [--dir DIR]")
	dir := fs.String("dir", "data/cache", "folder the datasets go into, one subfolder each")
	names, err := dataParseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		fs.Usage()
		return fmt.Errorf("no dataset named: choose from %s or all", strings.Join(data.FetcherNames(), ", "))
	}
	if len(names) == 1 && names[0] == "all" {
		names = data.FetcherNames()
	}
	for _, n := range names {
		f, ok := data.LookupFetcher(n)
		if !ok {
			return fmt.Errorf("unknown dataset %q: choose from %s or all", n, strings.Join(data.FetcherNames(), ", "))
		}
		if err := f.Fetch(*dir, os.Stderr); err != nil {
			return err
		}
	}
	return nil
}

func dataInspect(args []string) error {
	fs := newFlags("data inspect", "PATH")
	paths, err := dataParseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(paths) != 1 {
		fs.Usage()
		return errors.New("inspect takes one PATH")
	}
	if _, err := os.Stat(paths[0]); os.IsNotExist(err) && paths[0] == "default" {
		train, test, err := images.Default()
		if err != nil {
			return err
		}
		fmt.Println("default: embedded image data (first images of Fashion-MNIST)")
		images.Describe(train, os.Stdout)
		images.Describe(test, os.Stdout)
		return nil
	}
	if _, err := os.Stat(paths[0]); err != nil {
		return err
	}
	ok, err := images.Inspect(paths[0], os.Stdout)
	if ok || err != nil {
		return err
	}
	ok, err = texts.Inspect(paths[0], os.Stdout)
	if ok || err != nil {
		return err
	}
	return fmt.Errorf("%s: not a recognised image or text dataset", paths[0])
}
