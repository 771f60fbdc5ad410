package report

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/vitbert/vitbert/finetune"
	"github.com/vitbert/vitbert/internal/testutil"
)

// TestProberAndFewShotCells runs a linear-probe cell and a few-shot cell
// from scratch and checks what their result.json records: the probe fits on
// the task's ProbeExamples, which do not touch the fine-tuning cells.
func TestProberAndFewShotCells(t *testing.T) {
	backend := compute.MustNew()
	plan := microPlan(t)
	task := TaskRef{Name: finetune.TaskEmbeddedImages, Modality: "image", ProbeExamples: 300}
	probe := filepath.Join(t.TempDir(), "probe")
	m, main, err := Prober(backend, &plan, nil)(context.Background(), "", &plan.Pretrain, task, 1, 0, probe)
	if err != nil || main != "accuracy" || m["accuracy"] <= 0 {
		t.Fatalf("probe cell: %v %q %v", m, main, err)
	}
	res := readCellResult(t, probe)
	if res.Probe == nil || res.SelectedOn != finetune.ValidationSplit || res.Split != "test" {
		t.Errorf("probe cell result %+v", res)
	}
	if res.TrainExamples != 300 {
		t.Errorf("probe cell fitted on %d training examples, want the task's 300", res.TrainExamples)
	}
	few := filepath.Join(t.TempDir(), "few")
	fewShot := FewShotFinetuner(backend, &plan, nil, Protocol{Name: ProtocolFewShot, PerClass: 2, EvalEvery: 2})
	if _, _, err := fewShot(context.Background(), "", &plan.Pretrain, task, 3, 4, few); err != nil {
		t.Fatal(err)
	}
	if res := readCellResult(t, few); res.TrainExamples != 20 || res.StepsRun != 4 {
		t.Errorf("few-shot cell: %d training examples, %d steps; want 20 (2 of each of 10 classes) and 4", res.TrainExamples, res.StepsRun)
	}
	if c := testutil.ReadJSON[finetune.Config](t, filepath.Join(few, finetune.ConfigFile)); c.EvalEvery != 2 {
		t.Errorf("few-shot cell evaluated every %d steps, want the protocol's 2", c.EvalEvery)
	}
	// A finished cell is read back, not run again, only while the plan
	// gives it the budget it was scored with.
	if _, _, err := fewShot(context.Background(), "", &plan.Pretrain, task, 3, 4, few); err != nil {
		t.Errorf("finished cell, same budget: %v", err)
	}
	_, _, err = fewShot(context.Background(), "", &plan.Pretrain, task, 3, 6, few)
	if err == nil || !strings.Contains(err.Error(), "scored with steps 4, the plan now gives 6") {
		t.Errorf("finished cell, other steps: %v, want the change named", err)
	}
	other := FewShotFinetuner(backend, &plan, nil, Protocol{Name: ProtocolFewShot, PerClass: 3, EvalEvery: 2})
	if _, _, err := other(context.Background(), "", &plan.Pretrain, task, 3, 4, few); err == nil || !strings.Contains(err.Error(), "per_class 2, the plan now gives 3") {
		t.Errorf("finished cell, other per_class: %v, want the change named", err)
	}
}

func readCellResult(t *testing.T, dir string) *finetune.Result {
	t.Helper()
	res := testutil.ReadJSON[finetune.Result](t, filepath.Join(dir, finetune.ResultFile))
	return &res
}
