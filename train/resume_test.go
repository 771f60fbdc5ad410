package train

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/vitbert/vitbert/internal/testutil"
)

// newResumeLoop is a masked toy loop writing into out, checkpointing every 3 steps.
func newResumeLoop(t *testing.T, out string, total int, log *bytes.Buffer) (*Loop, *toyData) {
	t.Helper()
	tr, err := NewTrainer(testBackend(), mlmodel.NewStore(), toyLossFn(toyOpts{text: true, image: true}), resumeConfig())
	if err != nil {
		t.Fatal(err)
	}
	data := &toyData{scaleAt: func(int) float32 { return 1 }}
	cfg := LoopConfig{OutDir: out, TotalSteps: total, CheckpointEvery: 3, KeepCheckpoints: -1, Quiet: true}
	if log != nil {
		cfg.Log = log
	}
	loop, err := NewLoop(tr, data, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return loop, data
}

// finishedResumeLoop is newResumeLoop, run for its total steps.
func finishedResumeLoop(t *testing.T, out string, total int) *Loop {
	t.Helper()
	loop, _ := newResumeLoop(t, out, total, nil)
	if err := loop.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return loop
}

// metricSteps lists the "step" of every line of a JSON-lines file.
func metricSteps(t *testing.T, path string) []int {
	t.Helper()
	var steps []int
	for _, s := range testutil.ReadJSONL[struct{ Step int }](t, path) {
		steps = append(steps, s.Step)
	}
	return steps
}

// Item 4: a run killed before its first checkpoint and started again logs
// every step once (its old lines are cut back to the step it starts from).
func TestRunCutsLogsBackToItsStartStep(t *testing.T) {
	out := t.TempDir()
	// What a run killed at step 4, before its first checkpoint, leaves.
	lines := ""
	for s := 1; s <= 4; s++ {
		lines += fmt.Sprintf(`{"step":%d,"loss_text":1}`+"\n", s)
	}
	if err := os.WriteFile(filepath.Join(out, MetricsFile), []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, MasksFile), []byte(`{"step":4,"update":1}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	loop, _ := newResumeLoop(t, out, 5, nil)
	if ok, err := loop.ResumeLatest(); ok || err != nil {
		t.Fatalf("ResumeLatest = %v, %v; want nothing to resume", ok, err)
	}
	if err := loop.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := metricSteps(t, filepath.Join(out, MetricsFile)); fmt.Sprint(got) != "[1 2 3 4 5]" {
		t.Errorf("metrics steps %v, want [1 2 3 4 5]", got)
	}
	// The schedule (start 1, end 7, 2 updates) updates at step 4 only in 5 steps.
	if got := metricSteps(t, filepath.Join(out, MasksFile)); fmt.Sprint(got) != "[4]" {
		t.Errorf("mask steps %v, want [4]", got)
	}
}

// Item 9: a damaged latest checkpoint is set aside (never deleted), the
// loop says so and resumes from the previous one; leftovers of killed
// checkpoint writes are removed.
func TestResumeFallsBackFromDamagedCheckpoint(t *testing.T) {
	src := t.TempDir()
	finishedResumeLoop(t, src, 6)
	damage := map[string]func(dir string) error{
		"truncated variables": func(dir string) error {
			p := filepath.Join(dir, VariablesFile)
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, fi.Size()/2)
		},
		"bad state.json": func(dir string) error {
			return os.WriteFile(filepath.Join(dir, StateFile), []byte("{not json"), 0o644)
		},
		"missing state.json": func(dir string) error { return os.Remove(filepath.Join(dir, StateFile)) },
		"empty directory": func(dir string) error {
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
			return os.Mkdir(dir, 0o755)
		},
	}
	for name, harm := range damage {
		t.Run(name, func(t *testing.T) {
			out := t.TempDir()
			if err := os.CopyFS(out, os.DirFS(src)); err != nil {
				t.Fatal(err)
			}
			root := filepath.Join(out, CheckpointsDir)
			if err := harm(filepath.Join(root, CheckpointName(6))); err != nil {
				t.Fatal(err)
			}
			stale := filepath.Join(root, checkpointTmpGlob+"killed")
			if err := os.Mkdir(stale, 0o755); err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			loop, data := newResumeLoop(t, out, 8, &log)
			ok, err := loop.ResumeLatest()
			if !ok || err != nil {
				t.Fatalf("ResumeLatest = %v, %v", ok, err)
			}
			if data.pos != 3 {
				t.Errorf("resumed at data position %d, want 3 (the step-3 checkpoint)", data.pos)
			}
			if msg := log.String(); !strings.Contains(msg, "checkpoint step-0000006 is damaged") || !strings.Contains(msg, "falling back to step-0000003") {
				t.Errorf("log %q does not say what happened", msg)
			}
			kept := filepath.Join(root, "damaged-"+CheckpointName(6))
			if _, err := os.Stat(kept); err != nil {
				t.Errorf("the damaged checkpoint was not kept: %v", err)
			}
			if err := loop.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(kept); err != nil {
				t.Errorf("the damaged checkpoint is gone after the run: %v", err)
			}
			if _, err := os.Stat(stale); !os.IsNotExist(err) {
				t.Errorf("leftover %s not removed (%v)", stale, err)
			}
			if steps, _ := ListCheckpoints(root); fmt.Sprint(steps) != "[3 6 8]" {
				t.Errorf("checkpoints %v, want [3 6 8]", steps)
			}
			if got := metricSteps(t, filepath.Join(out, MetricsFile)); fmt.Sprint(got) != "[1 2 3 4 5 6 7 8]" {
				t.Errorf("metrics steps %v", got)
			}
		})
	}
}

// TestLockHelper holds the lock of $VITBERT_LOCK_DIR until its stdin closes
// (run as a child process by TestLoopRefusesALockedRunDirectory).
func TestLockHelper(t *testing.T) {
	testutil.HoldLock(t, LockDir)
}

// Item 3: a second process training into a locked run directory gets an
// error naming the holder's PID, and writes nothing; once the holder is
// gone the directory is free.
func TestLoopRefusesALockedRunDirectory(t *testing.T) {
	out := t.TempDir()
	pid, release := testutil.StartLockHolder(t, "TestLockHelper", out)
	loop, _ := newResumeLoop(t, out, 2, nil)
	err := loop.Run(context.Background())
	if want := fmt.Sprintf("in use by process %d", pid); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Run on a locked directory: %v, want an error containing %q", err, want)
	}
	if _, err := os.Stat(filepath.Join(out, MetricsFile)); !os.IsNotExist(err) {
		t.Errorf("the refused run wrote %s", MetricsFile)
	}
	release()
	if err := loop.Run(context.Background()); err != nil {
		t.Errorf("after the holder exited: %v", err)
	}
}

// A checkpoint that does not fit the model (not damaged) is an error and is
// left where it is.
func TestResumeOfAnotherModelIsNotDamage(t *testing.T) {
	out := t.TempDir()
	loop := finishedResumeLoop(t, out, 3)
	var name string
	for v := range loop.trainer.Store().IterVariables() {
		name = v.Path()
		break
	}
	store := mlmodel.NewStore()
	if _, err := store.CreateVariable(name, tensors.FromValue([]float32{1, 2, 3, 4, 5, 6, 7})); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteCheckpoint(filepath.Join(out, CheckpointsDir), store, &CheckpointState{Step: 5}, 0); err != nil {
		t.Fatal(err)
	}
	loop2, _ := newResumeLoop(t, out, 8, nil)
	if ok, err := loop2.ResumeLatest(); ok || err == nil || !strings.Contains(err.Error(), "has shape") {
		t.Fatalf("ResumeLatest = %v, %v; want a shape error", ok, err)
	}
	if steps, _ := ListCheckpoints(filepath.Join(out, CheckpointsDir)); fmt.Sprint(steps) != "[3 5]" {
		t.Errorf("checkpoints %v, want [3 5] untouched", steps)
	}
}

// Item 13: progress written to something other than a terminal is plain
// lines (the first step, then one per PlainInterval, and the last), never a
// bar's carriage returns.
func TestProgressIsPlainLinesOffATerminal(t *testing.T) {
	tr, err := NewTrainer(testBackend(), mlmodel.NewStore(), toyLossFn(toyOpts{text: true, image: true}), resumeConfig())
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	loop, err := NewLoop(tr, &toyData{scaleAt: func(int) float32 { return 1 }}, LoopConfig{OutDir: t.TempDir(), TotalSteps: 5, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if err := loop.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := progress.String()
	if strings.Contains(out, "\r") {
		t.Errorf("carriage returns in non-terminal progress: %q", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "train: step 1/5 (20%), txt ") || !strings.HasPrefix(lines[1], "train: step 5/5 (100%), txt ") {
		t.Errorf("progress lines %q, want the first and the last step", lines)
	}
}
