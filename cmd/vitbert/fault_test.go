package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vitbert/vitbert/internal/testutil"
	"github.com/vitbert/vitbert/pretrain"
	"github.com/vitbert/vitbert/train"
)

// faultArgs is a tiny pretrain run: 12 joint steps with distillation-free
// masking (two mask updates) and a checkpoint every 3 steps.
var faultArgs = []string{"--steps", "12", "--text-batch", "2", "--image-batch", "2", "--checkpoint-every", "3",
	"--gradmask", "--mask-step", "0.25", "--quiet"}

// TestCommandChild runs the command $VITBERT_CHILD_CMD with the arguments
// in $VITBERT_CHILD_ARGS (a JSON list): the process the fault-injection
// tests kill.
func TestCommandChild(t *testing.T) {
	name, spec := os.Getenv("VITBERT_CHILD_CMD"), os.Getenv("VITBERT_CHILD_ARGS")
	if name == "" {
		t.Skip("child process of the fault-injection tests")
	}
	var args []string
	if err := json.Unmarshal([]byte(spec), &args); err != nil {
		t.Fatal(err)
	}
	cmd, ok := commands[name]
	if !ok {
		t.Fatalf("no command %q", name)
	}
	if _, err := capture(t, cmd.run, args...); err != nil {
		t.Fatal(err)
	}
}

// killPoint says when to SIGKILL a child: at the first checkpoint write in
// progress (a .tmp- directory under checkpoints/) after the run's metrics
// reached step atStep, or after delay once they did.
type killPoint struct {
	atStep  int
	inWrite bool
	delay   time.Duration
}

func (k killPoint) String() string {
	if k.inWrite {
		return fmt.Sprintf("during the first checkpoint write after step %d", k.atStep)
	}
	return fmt.Sprintf("%v after step %d", k.delay, k.atStep)
}

// lastStep is the step of the last line of metrics.jsonl (0 if none).
func lastStep(path string) int {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var rec struct{ Step int }
	if len(lines) == 0 || json.Unmarshal([]byte(lines[len(lines)-1]), &rec) != nil {
		return 0
	}
	return rec.Step
}

// writing reports whether a checkpoint write is in progress under root.
func writing(root string) bool {
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			return true
		}
	}
	return false
}

// runKillable runs command with args in a child process writing the run
// directory out; with kill set, it SIGKILLs the child at that point and
// reports whether it did (false: the run ended first).
func runKillable(t *testing.T, command string, args []string, out string, kill *killPoint) bool {
	t.Helper()
	spec, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCommandChild$")
	cmd.Env = append(os.Environ(), "VITBERT_CHILD_CMD="+command, "VITBERT_CHILD_ARGS="+string(spec))
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if kill == nil {
		if err := <-done; err != nil {
			t.Fatalf("%s child: %v\n%s", command, err, output.String())
		}
		return false
	}
	metrics, root := filepath.Join(out, train.MetricsFile), filepath.Join(out, train.CheckpointsDir)
	var reached time.Time
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s child (to be killed %v): %v\n%s", command, kill, err, output.String())
			}
			return false
		default:
		}
		if reached.IsZero() && lastStep(metrics) >= kill.atStep {
			reached = time.Now()
		}
		if !reached.IsZero() && (kill.inWrite && writing(root) || !kill.inWrite && time.Since(reached) >= kill.delay) {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
			return true
		}
		time.Sleep(500 * time.Microsecond)
	}
}

// metricsWithoutTimes reads metrics.jsonl without its wall-clock fields.
func metricsWithoutTimes(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	for _, rec := range testutil.ReadJSONL[map[string]any](t, path) {
		for _, k := range []string{"time", "elapsed_s", "steps_per_s", "examples_per_s"} {
			delete(rec, k)
		}
		b, _ := json.Marshal(rec)
		out = append(out, string(b))
	}
	return out
}

// killPlan is where to kill a 12-step run that checkpoints every 3 steps,
// drawn from a seed it logs: during the step-3 checkpoint write, between
// checkpoints, and during the step-9 write.
func killPlan(t *testing.T) []killPoint {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	return []killPoint{
		{atStep: 1 + rng.IntN(2), inWrite: true},
		{atStep: 3 + rng.IntN(4), delay: time.Duration(rng.IntN(300)) * time.Millisecond},
		{atStep: 7 + rng.IntN(2), inWrite: true},
	}
}

// survivesKills runs command (12 steps, a checkpoint every 3) uninterrupted
// into one directory, then into another killed at each point of a killPlan
// (at least one kill must land) and resumed until it ends, and returns both
// directories; args gives the arguments of a run into a directory, as it
// stands. The metrics of both runs, without their wall-clock fields, must
// be 12 lines long and equal line for line.
func survivesKills(t *testing.T, command string, args func(out string) []string) (ref, out string) {
	t.Helper()
	plan := killPlan(t)
	ref = filepath.Join(t.TempDir(), "ref")
	runKillable(t, command, args(ref), ref, nil)
	out = filepath.Join(t.TempDir(), "killed")
	kills := 0
	for _, k := range plan {
		if runKillable(t, command, args(out), out, &k) {
			kills++
			t.Logf("killed %v: metrics at step %d", k, lastStep(filepath.Join(out, train.MetricsFile)))
		}
	}
	if kills == 0 {
		t.Fatal("no kill landed: the run ended before every kill point")
	}
	runKillable(t, command, args(out), out, nil)
	a := metricsWithoutTimes(t, filepath.Join(ref, train.MetricsFile))
	b := metricsWithoutTimes(t, filepath.Join(out, train.MetricsFile))
	sameLines(t, train.MetricsFile, a, b, 12)
	return ref, out
}

// sameLines checks that the lines of a log are n long and equal, those of
// an uninterrupted run (a) and of a killed and resumed one (b).
func sameLines(t *testing.T, name string, a, b []string, n int) {
	t.Helper()
	if len(a) != n || len(b) != len(a) {
		t.Errorf("%s: %d lines uninterrupted, %d killed and resumed; want %d", name, len(a), len(b), n)
		return
	}
	for i := range a {
		if a[i] != b[i] {
			t.Errorf("%s line %d:\n uninterrupted %s\n resumed       %s", name, i+1, a[i], b[i])
		}
	}
}

// The fault-injection test: a tiny pretrain killed (SIGKILL) at random
// points, during checkpoint writes among them, and resumed each time ends
// with the same model file and the same logs, byte for byte (the metrics
// without their wall-clock fields), as an uninterrupted run.
func TestPretrainSurvivesKills(t *testing.T) {
	if testing.Short() {
		t.Skip("runs pretrain five times in child processes")
	}
	args := func(out string) []string { return append([]string{"--out", out, "--resume"}, faultArgs...) }
	ref, out := survivesKills(t, "pretrain", args)
	for _, f := range []string{filepath.Join(pretrain.ModelDir, "model.safetensors"), filepath.Join(pretrain.ModelDir, "config.json"), "config.json", train.MasksFile} {
		a, errA := os.ReadFile(filepath.Join(ref, f))
		b, errB := os.ReadFile(filepath.Join(out, f))
		if errA != nil || errB != nil {
			t.Fatalf("%s: %v, %v", f, errA, errB)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from the uninterrupted run's", f)
		}
	}
}

// microImageFolder writes an image-folder task small enough to fine-tune in
// seconds: two classes of 40 28×28 PNGs (its test and validation splits
// are carved from them).
func microImageFolder(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for c, class := range []string{"a", "b"} {
		if err := os.MkdirAll(filepath.Join(dir, class), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range 40 {
			writePNG(t, filepath.Join(dir, class), fmt.Sprintf("%02d.png", i), 28, 28, uint64(100*c+i))
		}
	}
	return dir
}

// withoutKeys is a JSON object's lines (one per line of path, or the
// whole file as one) with the given keys removed.
func withoutKeys(t *testing.T, path string, keys ...string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var rec map[string]any
		if err := dec.Decode(&rec); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, k := range keys {
			delete(rec, k)
		}
		line, _ := json.Marshal(rec)
		out = append(out, string(line))
	}
	return out
}

// The fault-injection test of fine-tuning: a tiny finetune killed (SIGKILL)
// at random points, during checkpoint writes among them, and resumed each
// time ends with the same validation history (eval.jsonl), the same
// metrics (metrics.jsonl without its wall-clock fields), the same selected
// model and the same result.json, metric for metric, as an uninterrupted
// run.
func TestFinetuneSurvivesKills(t *testing.T) {
	if testing.Short() {
		t.Skip("runs finetune five times in child processes")
	}
	data := microImageFolder(t)
	args := func(out string) []string {
		a := []string{"--out", out, "--model", "scratch", "--task", "image-folder", "--data", data, "--adapt-images",
			"--steps", "12", "--batch", "4", "--eval-every", "3", "--checkpoint-every", "3", "--eval-batch", "8", "--lr", "1e-3", "--quiet"}
		if _, err := os.Stat(filepath.Join(out, "config.json")); err == nil {
			a = append(a, "--resume")
		}
		return a
	}
	ref, out := survivesKills(t, "finetune", args)
	sameLines(t, "eval.jsonl", withoutKeys(t, filepath.Join(ref, "eval.jsonl")), withoutKeys(t, filepath.Join(out, "eval.jsonl")), 4)
	sameLines(t, "result.json", withoutKeys(t, filepath.Join(ref, "result.json"), "best_dir"),
		withoutKeys(t, filepath.Join(out, "result.json"), "best_dir"), 1)
	a, errA := os.ReadFile(filepath.Join(ref, "best", "model.safetensors"))
	b, errB := os.ReadFile(filepath.Join(out, "best", "model.safetensors"))
	if errA != nil || errB != nil {
		t.Fatalf("best model: %v, %v", errA, errB)
	}
	if !bytes.Equal(a, b) {
		t.Error("best/model.safetensors differs from the uninterrupted run's")
	}
}
