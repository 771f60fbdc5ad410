// Package testutil holds helpers that the tests of several packages share:
// reading the JSON and JSON-lines files runs write, comparing float
// outputs, and holding a run directory's lock from a child process.
package testutil

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// ReadJSON decodes the JSON file at path into a T.
func ReadJSON[T any](t testing.TB, path string) T {
	t.Helper()
	var v T
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// ReadJSONL decodes every line of the JSON-lines file at path (lines of up
// to 16 MiB) into a T.
func ReadJSONL[T any](t testing.TB, path string) []T {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

// ExpectClose checks that got and want have the same length (fatal if not)
// and differ by at most tol anywhere (and are not NaN), and logs the
// largest difference.
func ExpectClose(t testing.TB, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	d := 0.0
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i]-want[i])))
	}
	if d > tol || math.IsNaN(d) {
		t.Errorf("%s: max |diff| = %g > %g", what, d, tol)
	}
	t.Logf("%s: max |diff| = %.2g over %d values", what, d, len(want))
}

// LockDirEnv names the directory a lock holder (HoldLock) locks.
const LockDirEnv = "VITBERT_LOCK_DIR"

// HoldLock is the body of a test that, run as a child process by
// StartLockHolder, locks $VITBERT_LOCK_DIR with lock, prints "locked" and
// holds the lock until its stdin closes. Run in the ordinary way (without
// the variable) it skips.
func HoldLock(t testing.TB, lock func(dir string) (release func(), err error)) {
	t.Helper()
	dir := os.Getenv(LockDirEnv)
	if dir == "" {
		t.Skip("child process of a run-directory lock test")
	}
	release, err := lock(dir)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	defer release()
	fmt.Println("locked")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}

// StartLockHolder runs the test named test of this test binary (one whose
// body is HoldLock) as a child process holding the lock of dir, and waits
// until it holds it. It returns the child's PID and a function that makes
// it release the lock and waits for it to exit; the test's cleanup calls
// that too.
func StartLockHolder(t testing.TB, test, dir string) (pid int, release func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), LockDirEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			stdin.Close()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(release)
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "locked" {
		t.Fatalf("lock holder %s: %q", test, line)
	}
	return cmd.Process.Pid, release
}
