package report

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/vitbert/vitbert/finetune"
	"github.com/vitbert/vitbert/pretrain"
)

// microPlan is the demo plan shrunk to seconds: one block of width 32.
func microPlan(t *testing.T) Plan {
	t.Helper()
	p, err := PlanPreset("demo", "")
	if err != nil {
		t.Fatal(err)
	}
	m := &p.Pretrain.Model
	m.Hidden, m.Layers, m.Heads, m.MLP, m.MaxTextLength, m.PatchSize = 32, 1, 2, 64, 32, 7
	p.Pretrain.Steps, p.Pretrain.TextBatch, p.Pretrain.ImageBatch = 12, 4, 4
	p.FinetuneSteps, p.FinetuneBatch, p.EvalEvery, p.Probes = 4, 8, 0, 2
	p.Seeds, p.Protocols = []int{1}, nil // full fine-tuning, one seed
	return p
}

func modTime(t *testing.T, path string) time.Time {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.ModTime()
}

// TestReproduceResumesAfterInterrupt runs a whole (tiny) reproduction, then
// removes one fine-tuning result and one pre-training run's final model,
// as an interruption would leave them, and checks that a rerun redoes
// exactly those cells, skips the others, and writes the same table shape.
func TestReproduceResumesAfterInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("trains six tiny models")
	}
	backend := compute.MustNew()
	out := t.TempDir()
	plan := microPlan(t)
	r := &Runner{Plan: plan, Out: out, Backend: backend}
	r.Finetune = Finetuner(backend, &r.Plan, nil)
	cells, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// 4 joint variants and scratch on both tasks, BERT and ViT on one each.
	if len(cells) != 12 {
		t.Fatalf("%d cells, want 12", len(cells))
	}
	rep, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| joint + KD + GM |", "| from scratch |", "figures/masks_joint-gm.png", "figures/activations_joint-gm.png", "finetune/joint/spamassassin/",
		"### The paper's claims", "| **C1** joint pre-training beats training from scratch", "## Held-out pre-training metrics", "figures/heldout_mlm.png"} {
		if !strings.Contains(string(rep), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	for _, f := range []string{"loss_text.png", "loss_image.png", "sparsity_joint-gm.png", "masks_joint-gm.png", "activations_joint-gm.png"} {
		if st, err := os.Stat(filepath.Join(out, "figures", f)); err != nil || st.Size() < 1000 {
			t.Errorf("figure %s missing or empty: %v", f, err)
		}
	}

	// Probes: the activation map before training and after it.
	for _, f := range []string{pretrain.ActivationsFile(0), pretrain.ActivationsFile(plan.Pretrain.Steps)} {
		if _, err := os.Stat(filepath.Join(out, "pretrain", "joint-gm", pretrain.ProbeDir, f)); err != nil {
			t.Errorf("activation probe missing: %v", err)
		}
	}

	// Simulate an interruption: one fine-tuning cell lost its result, one
	// pre-training run stopped before writing its model (checkpoints remain).
	lostCell := filepath.Join(out, "finetune", "joint-kd", "spamassassin", "seed-1")
	if err := os.Remove(filepath.Join(lostCell, finetune.ResultFile)); err != nil {
		t.Fatal(err)
	}
	lostRun := filepath.Join(out, "pretrain", "joint-gm")
	if err := os.RemoveAll(filepath.Join(lostRun, pretrain.ModelDir)); err != nil {
		t.Fatal(err)
	}
	keptCell := filepath.Join(out, "finetune", "joint", "spamassassin", "seed-1", finetune.ResultFile)
	keptRun := filepath.Join(out, "pretrain", "joint", pretrain.ModelDir, "model.safetensors")
	before := []time.Time{modTime(t, keptCell), modTime(t, keptRun)}

	again, err := r.Run(context.Background())
	if err != nil {
		t.Fatalf("rerun: %v", err)
	}
	if len(again) != len(cells) {
		t.Fatalf("rerun has %d cells, want %d", len(again), len(cells))
	}
	if _, err := os.Stat(filepath.Join(lostCell, finetune.ResultFile)); err != nil {
		t.Errorf("the lost fine-tuning cell was not redone: %v", err)
	}
	if _, err := os.Stat(filepath.Join(lostRun, pretrain.ModelDir, "model.safetensors")); err != nil {
		t.Errorf("the interrupted pre-training run was not finished: %v", err)
	}
	after := []time.Time{modTime(t, keptCell), modTime(t, keptRun)}
	if !after[0].Equal(before[0]) || !after[1].Equal(before[1]) {
		t.Errorf("complete cells were redone: %v → %v", before, after)
	}
	for i := range cells {
		if cells[i].Variant != again[i].Variant || cells[i].Task != again[i].Task {
			t.Fatalf("cell %d: %s/%s then %s/%s", i, cells[i].Variant, cells[i].Task, again[i].Variant, again[i].Task)
		}
		// Cells that were not redone read back the same metrics.
		if cells[i].Dir != lostCell && !strings.HasPrefix(cells[i].Dir, filepath.Join(out, "finetune", "joint-gm")) &&
			cells[i].Metrics[cells[i].Main] != again[i].Metrics[again[i].Main] {
			t.Errorf("%s: %v then %v", cells[i].Dir, cells[i].Metrics, again[i].Metrics)
		}
	}
}
