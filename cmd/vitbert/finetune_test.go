package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/finetune"
	"github.com/vitbert/vitbert/model"
)

// tinyModelDir saves a fresh 1-block, D=32 image model with a pre-training head.
func tinyModelDir(t *testing.T) string {
	t.Helper()
	c := &model.Config{Hidden: 32, Layers: 1, Heads: 2, MLP: 64, Norm: model.PreNorm, LayerNormEps: 1e-12,
		Activation: "gelu", ImageSize: 28, Channels: 1, PatchSize: 7}
	c.AddHead(model.PaperHead("image", model.HeadClassify, "image", 10))
	b, err := compute.New()
	if err != nil {
		t.Fatal(err)
	}
	store, err := model.NewStore(b, c, 3)
	if err != nil {
		t.Fatal(err)
	}
	w, err := checkpoint.Weights(store, c)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := checkpoint.SaveDir(dir, c, w); err != nil {
		t.Fatal(err)
	}
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
	if !strings.Contains(stdout, "embedded-images: best accuracy") || !strings.Contains(stdout, filepath.Join(out, "best")) {
		t.Errorf("finetune printed %q", stdout)
	}
	b, err := os.ReadFile(filepath.Join(out, finetune.ResultFile))
	if err != nil {
		t.Fatal(err)
	}
	var res finetune.Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
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
		{[]string{"--model", "scratch", "--out", t.TempDir(), "--warmup-frac", "2"}, "--warmup-frac 2: must be in [0, 1)"},
		{[]string{"--model", "scratch", "--out", t.TempDir(), "--eval-batch", "0"}, "--eval-batch 0: must be >= 1"},
	} {
		if _, err := capture(t, runFinetune, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("finetune %v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
	if _, err := capture(t, runEval); err == nil || !strings.Contains(err.Error(), "--model is required") {
		t.Errorf("eval without --model: err = %v", err)
	}
}
