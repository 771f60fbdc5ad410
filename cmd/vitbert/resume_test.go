package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vitbert/vitbert/internal/testutil"
	"github.com/vitbert/vitbert/pretrain"
	"github.com/vitbert/vitbert/train"
)

// Item 1: a resumed run keeps the configuration of its run directory; a
// contradicting flag is an error naming the field and the flag; --steps may
// extend the run, not shorten it. Item 15: pretrain says where the model is.
func TestPretrainResumeKeepsTheRunsConfiguration(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	stdout, err := capture(t, runPretrain, "--out", out, "--steps", "10", "--text-batch", "2", "--image-batch", "2",
		"--checkpoint-every", "5", "--gradmask", "--mask-step", "0.25", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	if want := "model: " + filepath.Join(out, pretrain.ModelDir); !strings.Contains(stdout, want) {
		t.Errorf("pretrain printed %q, want %q", stdout, want)
	}
	before, _ := os.ReadFile(filepath.Join(out, "config.json"))

	// Resuming without repeating the flags keeps masking on (the preset has it off).
	if _, err := capture(t, runPretrain, "--out", out, "--resume", "--quiet"); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(out, "config.json")); string(after) != string(before) {
		t.Errorf("config.json changed on resume:\n%s\nwas\n%s", after, before)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--gradmask=false"}, "gradient_mask.enabled is true in the run's"},
		{[]string{"--gradmask=false"}, "but --gradmask asks for false"},
		{[]string{"--lr", "0.01"}, "optimizer.learning_rate is 0.001"},
		{[]string{"--text-batch", "3"}, "text_batch is 2"},
		{[]string{"--preset", "small"}, `made with preset "tiny", not "small"`},
		{[]string{"--steps", "8"}, "extended, not shortened"},
	} {
		_, err := capture(t, runPretrain, append([]string{"--out", out, "--resume", "--quiet"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--resume %v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	if _, err := capture(t, runPretrain, "--out", out, "--resume", "--steps", "12", "--quiet"); err != nil {
		t.Fatal(err)
	}
	c := testutil.ReadJSON[pretrain.Config](t, filepath.Join(out, "config.json"))
	if c.Steps != 12 || !c.Mask.Enabled || c.TextBatch != 2 {
		t.Errorf("after extending: steps %d, masking %v, text batch %d", c.Steps, c.Mask.Enabled, c.TextBatch)
	}
	b, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	if n := strings.Count(string(b), "\n"); n != 12 {
		t.Errorf("%d metrics lines after extending to 12 steps", n)
	}
	// The device layout may change (it does not change the computation).
	if _, err := capture(t, runPretrain, "--out", out, "--resume", "--devices", "1", "--quiet"); err != nil {
		t.Errorf("--resume --devices 1: %v", err)
	}
}

// TestLockChild holds the lock of $VITBERT_LOCK_DIR until its stdin closes.
func TestLockChild(t *testing.T) {
	testutil.HoldLock(t, train.LockDir)
}

// Item 3: pretrain, reproduce, demo and finetune (and the linear probe) refuse an output directory another
// process holds, naming its PID, before writing anything.
func TestRunDirectoryIsLocked(t *testing.T) {
	out := t.TempDir()
	pid, _ := testutil.StartLockHolder(t, "TestLockChild", out)
	want := fmt.Sprintf("in use by process %d", pid)
	for name, run := range map[string]func() error{
		"pretrain":  func() error { return runPretrain([]string{"--out", out, "--steps", "2", "--quiet"}) },
		"reproduce": func() error { return runReproduce([]string{"--out", out, "--quiet"}) },
		"demo":      func() error { return runDemo([]string{"--out", out, "--quiet"}) },
		"finetune": func() error {
			return runFinetune([]string{"--model", "scratch", "--out", out, "--steps", "2", "--quiet"})
		},
		// --overwrite must not clear (or write) the locked directory either.
		"finetune --overwrite": func() error {
			return runFinetune([]string{"--model", "scratch", "--out", out, "--steps", "2", "--overwrite", "--quiet"})
		},
		"probe": func() error {
			return runFinetune([]string{"--freeze-encoder", "--model", "scratch", "--out", out, "--quiet"})
		},
	} {
		if err := run(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s into a locked directory: %v, want %q", name, err, want)
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) != 1 {
		t.Errorf("the refused runs wrote into %s: %d entries", out, len(entries))
	}
}

// A finetune --out that holds only a run directory's lock (left by an
// earlier process) takes a fresh run; one that holds a run is refused
// without counting the lock among the run's files.
func TestFinetuneIgnoresTheLockFile(t *testing.T) {
	out := t.TempDir()
	if err := os.WriteFile(filepath.Join(out, train.LockFile), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--model", "scratch", "--task", "image-folder", "--data", microImageFolder(t), "--adapt-images",
		"--steps", "2", "--batch", "4", "--eval-batch", "8", "--out", out, "--quiet"}
	if _, err := capture(t, runFinetune, args...); err != nil {
		t.Fatalf("finetune into a directory holding only %s: %v", train.LockFile, err)
	}
	if _, err := os.Stat(filepath.Join(out, "result.json")); err != nil {
		t.Fatal(err)
	}
	_, err := capture(t, runFinetune, args...)
	if err == nil || !strings.Contains(err.Error(), "--overwrite") || strings.Contains(err.Error(), train.LockFile) {
		t.Errorf("finetune into a finished run: %v, want a refusal naming the run's files but not %s", err, train.LockFile)
	}
}
