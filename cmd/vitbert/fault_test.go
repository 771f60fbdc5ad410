package main

import (
	"bufio"
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

	"github.com/vitbert/vitbert/pretrain"
	"github.com/vitbert/vitbert/train"
)

// faultArgs is a tiny pretrain run: 12 joint steps with distillation-free
// masking (two mask updates) and a checkpoint every 3 steps.
var faultArgs = []string{"--steps", "12", "--text-batch", "2", "--image-batch", "2", "--checkpoint-every", "3",
	"--gradmask", "--mask-step", "0.25", "--quiet"}

// TestPretrainChild runs `pretrain` with the arguments in
// $VITBERT_CHILD_ARGS (a JSON list): the process the fault-injection test kills.
func TestPretrainChild(t *testing.T) {
	spec := os.Getenv("VITBERT_CHILD_ARGS")
	if spec == "" {
		t.Skip("child process of TestPretrainSurvivesKills")
	}
	var args []string
	if err := json.Unmarshal([]byte(spec), &args); err != nil {
		t.Fatal(err)
	}
	if _, err := capture(t, runPretrain, args...); err != nil {
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

// runPretrainChild runs pretrain in a child process; with kill set, it SIGKILLs the
// child at that point and reports whether it did (false: the run ended first).
func runPretrainChild(t *testing.T, out string, kill *killPoint) bool {
	t.Helper()
	args := append([]string{"--out", out, "--resume"}, faultArgs...)
	spec, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^TestPretrainChild$")
	cmd.Env = append(os.Environ(), "VITBERT_CHILD_ARGS="+string(spec))
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if kill == nil {
		if err := <-done; err != nil {
			t.Fatalf("pretrain child: %v\n%s", err, output.String())
		}
		return false
	}
	metrics, root := filepath.Join(out, train.MetricsFile), filepath.Join(out, train.CheckpointsDir)
	var reached time.Time
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("pretrain child (to be killed %v): %v\n%s", kill, err, output.String())
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
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"time", "elapsed_s", "steps_per_s", "examples_per_s"} {
			delete(rec, k)
		}
		b, _ := json.Marshal(rec)
		out = append(out, string(b))
	}
	return out
}

// The fault-injection test: a tiny pretrain killed (SIGKILL) at random
// points, during checkpoint writes among them, and resumed each time ends
// with the same model file and the same logs, byte for byte (the metrics
// without their wall-clock fields), as an uninterrupted run.
func TestPretrainSurvivesKills(t *testing.T) {
	if testing.Short() {
		t.Skip("runs pretrain five times in child processes")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	ref := filepath.Join(t.TempDir(), "ref")
	runPretrainChild(t, ref, nil)

	out := filepath.Join(t.TempDir(), "killed")
	plan := []killPoint{
		{atStep: 1 + rng.IntN(2), inWrite: true},                                          // the step-3 checkpoint being written
		{atStep: 3 + rng.IntN(4), delay: time.Duration(rng.IntN(300)) * time.Millisecond}, // between checkpoints
		{atStep: 7 + rng.IntN(2), inWrite: true},                                          // the step-9 checkpoint being written
	}
	kills := 0
	for _, k := range plan {
		if runPretrainChild(t, out, &k) {
			kills++
			t.Logf("killed %v: metrics at step %d", k, lastStep(filepath.Join(out, train.MetricsFile)))
		}
	}
	if kills == 0 {
		t.Fatal("no kill landed: the run ended before every kill point")
	}
	runPretrainChild(t, out, nil)

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
	a := metricsWithoutTimes(t, filepath.Join(ref, train.MetricsFile))
	b := metricsWithoutTimes(t, filepath.Join(out, train.MetricsFile))
	if len(a) != 12 || len(b) != len(a) {
		t.Fatalf("metrics: %d lines uninterrupted, %d killed and resumed; want 12", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Errorf("metrics line %d:\n uninterrupted %s\n resumed       %s", i+1, a[i], b[i])
		}
	}
}
