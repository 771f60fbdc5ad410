package pretrain

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/internal/testutil"
	"github.com/vitbert/vitbert/train"
)

// micro is a configuration small enough for tests: one block, D=32, texts
// of 32 tokens, 28×28 grey images in 7×7 patches.
func micro(t *testing.T, mode string, steps int) Config {
	t.Helper()
	c, err := Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	c.Mode, c.Steps = mode, steps
	c.Model.Hidden, c.Model.Layers, c.Model.Heads, c.Model.MLP = 32, 1, 2, 64
	c.Model.MaxTextLength, c.Model.PatchSize = 32, 7
	c.TextBatch, c.ImageBatch = 4, 4
	c.CheckpointEvery, c.KeepCheckpoints = 0, 2
	c.Optimizer.LearningRate = 3e-3
	// Train on all the data: with batches of 4, whether a 40-step run's
	// image loss falls is decided by few images (TestHeldOutMetrics holds
	// some out itself).
	c.Data.HeldOut = 0
	return c
}

func readMetrics(t *testing.T, dir string) []map[string]float64 {
	t.Helper()
	var rows []map[string]float64
	for _, raw := range testutil.ReadJSONL[map[string]any](t, filepath.Join(dir, train.MetricsFile)) {
		row := map[string]float64{}
		for k, v := range raw {
			if x, ok := v.(float64); ok {
				row[k] = x
			}
		}
		rows = append(rows, row)
	}
	return rows
}

func run(t *testing.T, c Config, out string, opt Options) {
	t.Helper()
	opt.OutDir, opt.Quiet = out, true
	if err := Run(context.Background(), compute.MustNew(), c, opt); err != nil {
		t.Fatalf("%s run: %v", c.Mode, err)
	}
}

func mean(rows []map[string]float64, key string) float64 {
	s := 0.0
	for _, r := range rows {
		s += r[key]
	}
	return s / float64(len(rows))
}

// TestJointDistillMaskResume trains a text and an image teacher, then the
// joint student with distillation from both and gradient masking; it checks
// that the losses fall, the mask reaches β, and that a run stopped at a
// checkpoint and resumed ends with the same losses as an uninterrupted one.
func TestJointDistillMaskResume(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three small models")
	}
	dir := t.TempDir()
	run(t, micro(t, ModeText, 8), filepath.Join(dir, "bert"), Options{})
	run(t, micro(t, ModeImage, 8), filepath.Join(dir, "vit"), Options{})

	c := micro(t, ModeJoint, 40)
	c.DistillText.Teacher = filepath.Join(dir, "bert", ModelDir)
	c.DistillImage.Teacher = filepath.Join(dir, "vit", ModelDir)
	c.Mask.Enabled, c.Mask.FinalSparsity, c.Mask.Increment = true, 0.5, 0.25

	full := filepath.Join(dir, "full")
	run(t, c, full, Options{ProbeSteps: ProbeSteps(40, 3)})
	for _, f := range []string{ActivationsFile(0), ActivationsFile(20), ActivationsFile(40), MasksFile(1), MasksFile(2)} {
		if _, err := os.Stat(filepath.Join(full, ProbeDir, f)); err != nil {
			t.Errorf("probe missing: %v", err)
		}
	}
	var acts Activations
	b, _ := os.ReadFile(filepath.Join(full, ProbeDir, ActivationsFile(20)))
	if err := json.Unmarshal(b, &acts); err != nil || len(acts.Text) != 1 || len(acts.Image) != 1 || len(acts.Text[0]) != 64 {
		t.Errorf("activation map at step 20: %v, %d text and %d image layers", err, len(acts.Text), len(acts.Image))
	}
	rows := readMetrics(t, full)
	if len(rows) != 40 {
		t.Fatalf("%d metrics lines, want 40", len(rows))
	}
	for _, key := range []string{"loss_text", "loss_image"} {
		first, last := mean(rows[:8], key), mean(rows[32:], key)
		if !(last < first) {
			t.Errorf("%s did not fall: first 8 steps %.4f, last 8 %.4f", key, first, last)
		}
	}
	if s := rows[len(rows)-1]["mask_sparsity"]; math.Abs(s-0.5) > 1e-3 {
		t.Errorf("final mask sparsity %.4f, want β = 0.5", s)
	}

	resumed := filepath.Join(dir, "resumed")
	run(t, c, resumed, Options{StopAfter: 17})
	if _, err := os.Stat(filepath.Join(resumed, ModelDir)); err == nil {
		t.Errorf("a stopped run wrote its final model")
	}
	run(t, c, resumed, Options{Resume: true})
	again := readMetrics(t, resumed)
	if len(again) != 40 {
		t.Fatalf("resumed run has %d metrics lines, want 40", len(again))
	}
	for _, key := range []string{"loss_text", "loss_image", "mask_sparsity"} {
		a, b := rows[39][key], again[39][key]
		if rel := math.Abs(a-b) / math.Max(math.Abs(a), 1e-12); rel > 1e-5 {
			t.Errorf("final %s: uninterrupted %.8g, resumed %.8g (relative difference %.2g)", key, a, b, rel)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	c := micro(t, ModeText, 10)
	c.Mask.Enabled = true
	c.Finish()
	if err := c.Validate(); err == nil {
		t.Error("gradient masking in text mode was accepted")
	}
	c = micro(t, "both", 10)
	if err := c.Validate(); err == nil {
		t.Error("unknown mode accepted")
	}
	// The control: a valid joint configuration is accepted and trains, one
	// metrics line per step with both losses finite, then saves the model
	// it was configured with.
	c = micro(t, ModeJoint, 10)
	if err := c.Validate(); err != nil {
		t.Fatalf("a valid joint configuration refused: %v", err)
	}
	out := t.TempDir()
	run(t, c, out, Options{})
	rows := readMetrics(t, out)
	if len(rows) != 10 {
		t.Fatalf("%d metrics lines, want 10", len(rows))
	}
	for i, r := range rows {
		lt, okText := r["loss_text"]
		li, okImage := r["loss_image"]
		if r["step"] != float64(i+1) || !okText || !okImage || math.IsNaN(lt+li) || math.IsInf(lt+li, 0) || lt <= 0 || li <= 0 {
			t.Errorf("metrics line %d: step %v, loss_text %v (%v), loss_image %v (%v); want step %d and two positive finite losses",
				i+1, r["step"], lt, okText, li, okImage, i+1)
		}
	}
	m, err := checkpoint.LoadDir(filepath.Join(out, ModelDir))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Config; got.Hidden != 32 || got.Layers != 1 || got.MLP != 64 || got.PatchSize != 7 || len(m.Weights) == 0 {
		t.Errorf("saved model: hidden %d, layers %d, MLP %d, patch %d, %d tensors; want 32, 1, 64, 7 and weights",
			got.Hidden, got.Layers, got.MLP, got.PatchSize, len(m.Weights))
	}
}

// The device count must split both batches evenly; on the pure-Go backend,
// which has one device and no distributed execution, a data-parallel run is
// refused before its first step.
func TestConfigDevices(t *testing.T) {
	c := micro(t, ModeJoint, 10)
	c.TextBatch, c.ImageBatch = 4, 6
	for _, tc := range []struct {
		devices int
		want    string
	}{
		{-1, "devices must be >= 0"},
		{4, "the batches (text 4, image 6)"},
		{3, "the batches (text 4, image 6)"},
	} {
		c.Devices = tc.devices
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("devices %d: error %v, want %q", tc.devices, err, tc.want)
		}
	}
	for _, d := range []int{0, 1, 2} {
		c.Devices = d
		if err := c.Validate(); err != nil {
			t.Errorf("devices %d: %v", d, err)
		}
	}
	c.Mode, c.Devices = ModeText, 4 // only the text batch counts
	if err := c.Validate(); err != nil {
		t.Errorf("text mode, text batch 4 on 4 devices: %v", err)
	}
	c = micro(t, ModeJoint, 10)
	c.Devices = 2
	_, err := NewSetup(compute.MustNew(), c)
	if err == nil || !strings.Contains(err.Error(), "has 1 device(s)") {
		t.Errorf("2 devices on the go backend: error %v", err)
	}
}

// The MLM reads its context: on a corpus whose every passage repeats one
// word, a masked word is given by the other words of its text, while a
// context-free predictor can do no better than the unigram entropy (ln 20).
// The loss must fall far below it; it does not when the text cannot attend
// to its other tokens.
func TestMLMUsesContext(t *testing.T) {
	dir := t.TempDir()
	var sb strings.Builder
	// Passages of 290 words: texts are packed from the running tokens, so
	// only about one text in ten straddles two passages.
	for i := range 100 {
		w := fmt.Sprintf("w%c ", 'a'+i%20)
		sb.WriteString(strings.Repeat(w, 290) + "\n\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "repeat.txt"), []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	c := micro(t, ModeText, 300)
	c.Data.Corpus, c.Data.VocabSize, c.TextBatch = dir, 80, 8
	out := t.TempDir()
	run(t, c, out, Options{})
	rows := readMetrics(t, out)
	last := mean(rows[len(rows)-20:], "loss_text")
	if uni := math.Log(20); last > 0.3*uni {
		t.Errorf("MLM loss over the last 20 steps %.3f, want below %.3f (0.3 × the unigram entropy %.3f)", last, 0.3*uni, uni)
	}
}
