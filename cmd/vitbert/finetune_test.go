package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vitbert/vitbert/finetune"
	"github.com/vitbert/vitbert/internal/testmodel"
	"github.com/vitbert/vitbert/internal/testutil"
	"github.com/vitbert/vitbert/model"
)

// tinyModelDir saves a fresh 1-block, D=32 image model with a pre-training head.
func tinyModelDir(t *testing.T) string {
	t.Helper()
	c := &model.Config{Hidden: 32, Layers: 1, Heads: 2, MLP: 64, Norm: model.PreNorm, LayerNormEps: 1e-12,
		Activation: "gelu", ImageSize: 28, Channels: 1, PatchSize: 7}
	c.AddHead(model.PaperHead("image", model.HeadClassify, "image", 10))
	dir, _ := testmodel.SaveFresh(t, c, 3)
	return dir
}

func TestFinetuneThenEvalReportsTheSameScores(t *testing.T) {
	dir := tinyModelDir(t)
	out := filepath.Join(t.TempDir(), "run")
	stdout, err := capture(t, runFinetune, "--model", dir, "--task", "embedded-images", "--out", out,
		"--steps", "12", "--batch", "16", "--eval-every", "6", "--lr", "2e-3", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "embedded-images: selected on the validation split") || !strings.Contains(stdout, filepath.Join(out, "best")) {
		t.Errorf("finetune printed %q", stdout)
	}
	res := testutil.ReadJSON[finetune.Result](t, filepath.Join(out, finetune.ResultFile))
	js, err := capture(t, runEval, "--model", filepath.Join(out, "best"), "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]float64
	if err := json.Unmarshal([]byte(js), &got); err != nil {
		t.Fatalf("eval --json printed %q: %v", js, err)
	}
	if len(got) != 1 || got["accuracy"] != res.Metrics["accuracy"] {
		t.Errorf("vitbert eval = %v, result.json = %v", got, res.Metrics)
	}
	text, err := capture(t, runEval, "--model", filepath.Join(out, "best"), "--split", "train")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text, "accuracy ") {
		t.Errorf("vitbert eval --split train printed %q", text)
	}
}

func TestFinetuneFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--task", "embedded-images", "--out", "x"}, "--model is required"},
		{[]string{"--model", "scratch", "--task", "embedded-images"}, "--out is required"},
		{[]string{"--model", "a", "--from", "b", "--out", "x"}, "disagree"},
		{[]string{"--model", "scratch", "--out", t.TempDir(), "--task", "nope"}, "unknown task"},
		{[]string{"--model", "scratch", "--out", "x", "--steps", "5", "--epochs", "1"}, "--steps or --epochs"},
		{[]string{"--model", "scratch", "--out", "x", "--l2", "0.1"}, "--freeze-encoder"},
		{[]string{"--model", "scratch", "--out", "x", "--resume", "--overwrite"}, "exclude each other"},
		{[]string{"--out", t.TempDir(), "--resume"}, "nothing to resume"},
		{[]string{"--model", "scratch", "--out", "x", "--warmup-frac", "2"}, "--warmup-frac 2: must be in [0, 1)"},
		{[]string{"--model", "scratch", "--out", "x", "--eval-batch", "0"}, "--eval-batch 0: must be >= 1"},
	} {
		if _, err := capture(t, runFinetune, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("finetune %v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
	if _, err := capture(t, runEval); err == nil || !strings.Contains(err.Error(), "--model is required") {
		t.Errorf("eval without --model: err = %v", err)
	}
}

// TestFinetuneConfigFileAndResume runs from a --config file, refuses a
// second run into the same --out, and resumes from the run's own config.json.
func TestFinetuneConfigFileAndResume(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	cfg := filepath.Join(t.TempDir(), "ft.json")
	if err := os.WriteFile(cfg, []byte(`{"model": "scratch", "task": "embedded-images", "steps": 4, "batch": 8, "eval_every": 2,
		"model_config": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "mlp_size": 64, "norm": "pre", "layer_norm_eps": 1e-12,
		"activation": "gelu", "image_size": 28, "channels": 1, "patch_size": 7}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := capture(t, runFinetune, "--config", cfg, "--out", out, "--quiet"); err != nil {
		t.Fatal(err)
	}
	c, err := finetune.LoadConfig(filepath.Join(out, finetune.ConfigFile))
	if err != nil || c.Steps != 4 || c.Batch != 8 || c.ModelConfig == nil || c.ModelConfig.Hidden != 32 {
		t.Fatalf("the run's config.json: %+v, %v", c, err)
	}
	if _, err := capture(t, runFinetune, "--config", cfg, "--out", out, "--quiet"); err == nil || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("a second run into --out: err = %v", err)
	}
	if _, err := capture(t, runFinetune, "--out", out, "--resume", "--seed", "5", "--quiet"); err == nil || !strings.Contains(err.Error(), "seed") {
		t.Errorf("resume with another seed: err = %v", err)
	}
	stdout, err := capture(t, runFinetune, "--out", out, "--resume", "--quiet")
	if err != nil || !strings.Contains(stdout, "scored once") {
		t.Errorf("resume of a finished run: %q, %v", stdout, err)
	}
	if err := os.WriteFile(cfg, []byte(`{"model": "scratch", "stepz": 4}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := capture(t, runFinetune, "--config", cfg, "--out", t.TempDir(), "--quiet"); err == nil || !strings.Contains(err.Error(), "stepz") {
		t.Errorf("a config with an unknown field: err = %v", err)
	}
}
