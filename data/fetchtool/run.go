// Package fetchtool runs the external tools that fetch data sets (npm,
// apt-get, go) and turns their failures into errors that say what was run
// and why it failed.
package fetchtool

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// maxOutput is how much of a failing tool's output an error quotes.
const maxOutput = 2000

// Run runs name with args in dir (env added to the environment) and returns
// its standard output. A failure names the command line, the exit status and
// the tool's own words (standard error, else standard output, its last
// maxOutput bytes); a tool that said nothing gets a hint about the network.
func Run(dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		said := strings.TrimSpace(stderr.String())
		if said == "" {
			said = strings.TrimSpace(stdout.String())
		}
		if len(said) > maxOutput {
			said = "…" + said[len(said)-maxOutput:]
		}
		if said == "" {
			said = "it printed nothing (no network, or no access to its registry?)"
		}
		return nil, fmt.Errorf("`%s %s` failed (%v): %s", name, strings.Join(args, " "), err, said)
	}
	return stdout.Bytes(), nil
}
