// Package pretrain runs ViT-BERT pre-training: a BERT-style text teacher
// (mode text: masked language modelling), a ViT-style image teacher (mode
// image: classification), or the unified model on both tasks at once (mode
// joint), with knowledge distillation from frozen teachers and gradient
// masking of the shared encoder.
package pretrain

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/train"
)

// Modes.
const (
	ModeText  = "text"
	ModeImage = "image"
	ModeJoint = "joint"
)

// Distill configures knowledge distillation for one task.
type Distill struct {
	// Teacher is a model directory (a vitbert run's OUT/model, or a Hugging
	// Face checkpoint); empty disables distillation for the task.
	Teacher string `json:"teacher"`
	// Alpha weighs the soft term: (1−α)·CE + α·τ²·KL.
	Alpha float64 `json:"alpha"`
	// Tau is the temperature τ.
	Tau float64 `json:"tau"`
}

// Data says where the training data comes from.
type Data struct {
	// Corpus is "embedded" (the built-in public-domain prose) or a list of
	// .txt files or folders, comma-separated.
	Corpus string `json:"corpus"`
	// Images is "embedded" (the built-in Fashion-MNIST slice) or a path that
	// `vitbert data inspect` recognises (IDX, CIFAR, ImageFolder).
	Images string `json:"images"`
	// Vocab is the WordPiece vocabulary of the text side: "" for the
	// built-in bert-base-uncased one, or a tokenizer directory (vocab.txt or
	// tokenizer.json, e.g. written by `vitbert vocab train`).
	Vocab string `json:"vocab"`
	// VocabSize, if positive, trains a vocabulary of that many tokens from
	// the corpus instead (texts.TrainVocab). The model's vocab_size always
	// follows the vocabulary.
	VocabSize int `json:"vocab_size"`
	// MaskProb is BERT's masking rate.
	MaskProb float64 `json:"mask_prob"`
	// HeldOut is the share of the corpus's documents (whole documents) and
	// of the training images kept out of training, for the held-out
	// metrics; the split is fixed, whatever the seed (SplitDocuments,
	// SplitImages). 0 trains on everything.
	HeldOut float64 `json:"held_out"`
	// Augment: random crop with this padding (0: none) and horizontal flips.
	CropPad int  `json:"crop_pad"`
	Flip    bool `json:"flip"`
}

// Config is a whole pre-training run. Every field has a default from the
// preset; a config file and flags override them.
type Config struct {
	Mode       string       `json:"mode"`
	Preset     string       `json:"preset"`
	Model      model.Config `json:"model"`
	Steps      int          `json:"steps"`
	TextBatch  int          `json:"text_batch"`
	ImageBatch int          `json:"image_batch"`
	Seed       int64        `json:"seed"`
	// Precision of the matrix products: "f32" (default) or "bf16" (mixed
	// precision; weights and optimiser state stay float32).
	Precision string `json:"precision"`
	// TiedMLM makes the MLM head's output layer the word-embedding matrix
	// (transposed) plus its own bias, as BERT does (model.HeadConfig.Tied):
	// every vocabulary row then learns from the input side too, which a
	// small run needs, since an untied 30,522-way output layer sees only a
	// few training signals per row.
	TiedMLM bool `json:"tied_mlm"`

	Optimizer train.OptimizerConfig `json:"optimizer"`
	Mask      train.MaskConfig      `json:"gradient_mask"`
	// MaskSpan is the share of training over which the mask updates are
	// spread, starting at MaskStart (both fractions of Steps); it sets
	// Mask.StartStep/EndStep when those are zero.
	MaskStart float64 `json:"mask_start"`
	MaskSpan  float64 `json:"mask_span"`
	// Combine selects how the text and image gradients of the shared
	// encoder are combined (train/combine.go): rule sum, mask (gradient
	// masking, the same as Mask.Enabled), pcgrad, cagrad (with cagrad_c) or
	// weighted (text_weight, image_weight); "" is mask when Mask.Enabled,
	// else sum.
	Combine train.CombineConfig `json:"combine"`
	// Diagnostics K > 0 logs the conflict between the text and image
	// gradients of the shared encoder every K steps into OUT/conflicts.jsonl
	// (joint mode).
	Diagnostics int `json:"diagnostics"`
	// WarmupFrac sets Optimizer.WarmupSteps as a share of Steps when that is 0.
	WarmupFrac float64 `json:"warmup_frac"`

	DistillText  Distill `json:"distill_text"`
	DistillImage Distill `json:"distill_image"`
	// TeacherStepsFactor is how much longer than the students a
	// reproduction trains the single-modality teachers it distils from
	// (TeacherSteps); the paper's teachers are fully trained models. 0 or 1:
	// as long as the students.
	TeacherStepsFactor float64 `json:"teacher_steps_factor"`

	Data Data `json:"data"`

	// EvalEvery K steps (and after the last), the held-out MLM loss and
	// accuracy and image loss and top-1 join the metrics line (0: never).
	// Each evaluation scores up to EvalExamples held-out texts and images.
	EvalEvery    int `json:"eval_every"`
	EvalExamples int `json:"eval_examples"`

	CheckpointEvery int `json:"checkpoint_every"`
	KeepCheckpoints int `json:"keep_checkpoints"`
	LogEvery        int `json:"log_every"`

	// Devices > 1 trains data-parallel over that many devices of the
	// backend, each taking an equal share of the text and image batches
	// (train.Config.Devices); Mesh uses that path even for one device.
	Devices int  `json:"devices"`
	Mesh    bool `json:"mesh"`
}

// Heads of the pre-training tasks.
const (
	MLMHead   = "mlm"
	ImageHead = "image"
)

// Preset returns the configuration of a named preset: "tiny" trains in
// minutes on two CPU cores (images 28×28 grey in 4×4 patches, texts of 64
// tokens), "small" is four times wider, "base" is BERT-base / ViT-B/16.
// tiny and small tie the MLM output to the word embeddings (TiedMLM; base
// keeps the paper's untied head) and train teachers 3× longer than students.
// Gradient masking ranks globally (see train.RankGlobal).
func Preset(name string) (Config, error) {
	c := Config{
		Mode: ModeJoint, Preset: name, Seed: 1, Precision: string(model.PrecisionF32),
		Mask:      train.MaskConfig{FinalSparsity: 0.5, Increment: 0.1, Ranking: train.RankGlobal},
		MaskStart: 0.1, MaskSpan: 0.6, WarmupFrac: 0.1,
		Combine:      train.CombineConfig{C: 0.4, TextWeight: 1, ImageWeight: 1},
		DistillText:  Distill{Alpha: 0.5, Tau: 2},
		DistillImage: Distill{Alpha: 0.5, Tau: 2},
		Data:         Data{Corpus: "embedded", Images: "embedded", MaskProb: 0.15, HeldOut: 0.05},
		EvalExamples: 512,
		LogEvery:     1, KeepCheckpoints: 2,
	}
	switch name {
	case "tiny", "small":
		// Laptop sizes on 28×28 grey images; small is 4 blocks of D=256.
		c.Model = model.Tiny()
		c.Steps, c.TextBatch, c.ImageBatch, c.CheckpointEvery = 300, 16, 16, 100
		lr := 1e-3
		if name == "small" {
			c.Model.Hidden, c.Model.Layers, c.Model.MLP, c.Model.MaxTextLength = 256, 4, 1024, 128
			c.Steps, c.TextBatch, c.ImageBatch, c.CheckpointEvery = 2000, 32, 32, 250
			lr = 5e-4
		}
		c.Model.ImageSize, c.Model.Channels, c.Model.PatchSize = 28, 1, 4
		c.Model.InitRange = fanInStd(c.Model.Hidden)
		c.Optimizer = train.DefaultOptimizerConfig(c.Steps)
		c.Optimizer.LearningRate = lr
		c.TiedMLM, c.TeacherStepsFactor = true, 3
	case "base":
		c.Model = model.Base()
		c.Steps, c.TextBatch, c.ImageBatch = 100000, 256, 256
		c.Optimizer = train.DefaultOptimizerConfig(c.Steps)
		c.Optimizer.LearningRate = 1e-4
		c.CheckpointEvery = 2000
		c.Data.CropPad, c.Data.Flip = 0, true
	default:
		return c, fmt.Errorf("unknown preset %q (want tiny, small or base)", name)
	}
	c.Optimizer.WarmupSteps = 0 // derived from WarmupFrac by Finish
	return c, nil
}

// fanInStd is the initialisation of the small presets: N(0, 1/√D) instead
// of BERT's 0.02, which was chosen for D=768 (where 1/√D is 0.036) and at
// D=128 leaves attention uniform for hundreds of steps. Measured on held-out
// pre-training data (docs/method.md, "Initialisation").
func fanInStd(d int) float64 { return 1 / math.Sqrt(float64(d)) }

// TeacherSteps is the length of a teacher run: TeacherStepsFactor × Steps,
// rounded, and never fewer than Steps.
func (c *Config) TeacherSteps() int {
	return max(c.Steps, int(c.TeacherStepsFactor*float64(c.Steps)+0.5))
}

// MaxPredictions is the fixed number of MLM positions per text: round(0.15·L).
func (c *Config) MaxPredictions() int {
	p := int(c.Data.MaskProb*float64(c.Model.MaxTextLength) + 0.5)
	return max(p, 1)
}

// HasText and HasImage tell which tasks the mode trains.
func (c *Config) HasText() bool  { return c.Mode == ModeText || c.Mode == ModeJoint }
func (c *Config) HasImage() bool { return c.Mode == ModeImage || c.Mode == ModeJoint }

// Finish derives the dependent settings (schedule horizon, mask span).
func (c *Config) Finish() {
	c.Optimizer.TotalSteps = c.Steps
	if c.Optimizer.WarmupSteps == 0 {
		c.Optimizer.WarmupSteps = int(c.WarmupFrac * float64(c.Steps))
	}
	if c.Combine.Rule == train.CombineMask {
		c.Mask.Enabled = true
	}
	if c.Mask.Enabled && c.Mask.StartStep == 0 && c.Mask.EndStep == 0 {
		c.Mask.StartStep = int(c.MaskStart * float64(c.Steps))
		c.Mask.EndStep = c.Mask.StartStep + int(c.MaskSpan*float64(c.Steps))
	}
	if !c.HasText() {
		c.Model.VocabSize = 0
	}
	if !c.HasImage() {
		c.Model.ImageSize = 0
	}
}

// Validate checks the whole configuration.
func (c *Config) Validate() error {
	if _, err := model.ParsePrecision(c.Precision); err != nil {
		return fmt.Errorf("precision: %w", err)
	}
	switch c.Mode {
	case ModeText, ModeImage, ModeJoint:
	default:
		return fmt.Errorf("mode must be text, image or joint, got %q", c.Mode)
	}
	pos, nonNeg := train.AtLeast(1), train.AtLeast(0)
	unit := train.Between(0, 1)
	for _, f := range []struct {
		field string
		v     float64
		r     train.Range
		check bool
	}{
		{"steps", float64(c.Steps), pos, true},
		{"text_batch", float64(c.TextBatch), pos, c.HasText()},
		{"image_batch", float64(c.ImageBatch), pos, c.HasImage()},
		{"model.dropout", c.Model.Dropout, train.Range{Lo: 0, Hi: 1, HiOpen: true}, true},
		{"distill_text.alpha", c.DistillText.Alpha, unit, true},
		{"distill_text.tau", c.DistillText.Tau, train.Above(0), true},
		{"distill_image.alpha", c.DistillImage.Alpha, unit, true},
		{"distill_image.tau", c.DistillImage.Tau, train.Above(0), true},
		{"warmup_frac", c.WarmupFrac, train.Range{Lo: 0, Hi: 1, HiOpen: true}, true},
		{"mask_start", c.MaskStart, unit, true},
		{"mask_span", c.MaskSpan, train.Range{Lo: 0, Hi: 1 - c.MaskStart, LoOpen: true, Note: "at most 1 - mask_start"}, true},
		{"checkpoint_every", float64(c.CheckpointEvery), nonNeg.With("0: only at the end and on interruption"), true},
		{"keep_checkpoints", float64(c.KeepCheckpoints), pos, true},
		{"log_every", float64(c.LogEvery), pos, true},
		{"devices", float64(c.Devices), nonNeg.With("0: the backend's default device"), true},
		{"data.vocab_size", float64(c.Data.VocabSize), nonNeg.With("0: no trained vocabulary"), true},
		{"data.held_out", c.Data.HeldOut, train.Range{Lo: 0, Hi: 1, HiOpen: true}, true},
		{"data.mask_prob", c.Data.MaskProb, train.Range{Lo: 0, Hi: 1, LoOpen: true, HiOpen: true}, true},
		{"eval_every", float64(c.EvalEvery), nonNeg.With("0: never"), true},
		{"eval_examples", float64(c.EvalExamples), pos, c.EvalEvery > 0},
		{"teacher_steps_factor", c.TeacherStepsFactor, nonNeg, true},
		{"combine.cagrad_c", c.Combine.C, nonNeg, true},
		{"combine.text_weight", c.Combine.TextWeight, nonNeg, true},
		{"combine.image_weight", c.Combine.ImageWeight, nonNeg, true},
		{"diagnostics", float64(c.Diagnostics), nonNeg.With("0: never"), true},
	} {
		if !f.check {
			continue
		}
		if err := f.r.Check(f.field, f.v); err != nil {
			return err
		}
	}
	if n := c.Devices; n > 1 {
		if c.HasText() && c.TextBatch%n != 0 || c.HasImage() && c.ImageBatch%n != 0 {
			return &train.FieldError{Field: "devices", Value: fmt.Sprint(n),
				Want: fmt.Sprintf("a divisor of the batches (text %d, image %d): every device takes an equal share", c.TextBatch, c.ImageBatch)}
		}
	}
	if c.Mask.Enabled && c.Mode != ModeJoint {
		return fmt.Errorf("gradient masking splits the encoder between text and image: it needs mode joint, not %s", c.Mode)
	}
	if r := c.Combine.Rule; r != "" && r != train.CombineSum && c.Mode != ModeJoint {
		return fmt.Errorf("combine rule %s combines the text and image gradients: it needs mode joint, not %s", r, c.Mode)
	}
	if c.Diagnostics != 0 && c.Mode != ModeJoint {
		return fmt.Errorf("diagnostics compare the text and image gradients: they need mode joint, not %s", c.Mode)
	}
	tc := train.Config{Mask: c.Mask, Combine: c.Combine, DiagnosticsEvery: c.Diagnostics}
	if err := tc.ValidateCombine(); err != nil {
		return err
	}
	if c.DistillText.Teacher != "" && !c.HasText() || c.DistillImage.Teacher != "" && !c.HasImage() {
		return fmt.Errorf("a teacher is set for a task that mode %s does not train", c.Mode)
	}
	if c.Data.Vocab != "" && c.Data.VocabSize != 0 {
		return fmt.Errorf("data: give either vocab (a tokenizer directory) or vocab_size (train one), not both (%q and %d)", c.Data.Vocab, c.Data.VocabSize)
	}
	if c.EvalEvery > 0 {
		if c.Data.HeldOut == 0 {
			return &train.FieldError{Field: "eval_every", Value: fmt.Sprint(c.EvalEvery), Want: "0 when data.held_out is 0 (there is no held-out data to score)"}
		}
		if c.Devices > 1 || c.Mesh {
			return fmt.Errorf("held-out evaluation (eval_every) runs on one device; it is not supported with devices %d / mesh", c.Devices)
		}
	}
	if err := c.Optimizer.Validate(); err != nil {
		return err
	}
	if err := c.Mask.ValidateRanges(); err != nil {
		return err
	}
	if c.Mask.Enabled {
		if need := c.Mask.NumUpdates(); c.Mask.EndStep-c.Mask.StartStep < need {
			what := fmt.Sprintf("train for at least %d steps (--steps), or raise the increment (--mask-step) or mask_span", c.minMaskSteps())
			if start := int(c.MaskStart * float64(c.Steps)); c.Mask.StartStep != start || c.Mask.EndStep != start+int(c.MaskSpan*float64(c.Steps)) {
				what = "widen gradient_mask.start_step/end_step, or raise the increment (--mask-step)"
			}
			return fmt.Errorf("gradient masking makes %d mask updates (final_sparsity %g in increments of %g), at most one per step, within the steps [%d, %d] (mask_start %g and mask_span %g of %d steps): %s",
				need, c.Mask.FinalSparsity, c.Mask.Increment, c.Mask.StartStep, c.Mask.EndStep, c.MaskStart, c.MaskSpan, c.Steps, what)
		}
	}
	m := c.Model
	m.TaskHeads = nil
	if m.VocabSize == 0 && m.ImageSize == 0 {
		return nil
	}
	return m.Validate()
}

// minMaskSteps is the smallest number of steps whose derived mask span
// (mask_start, mask_span) holds every mask update.
func (c *Config) minMaskSteps() int {
	need := c.Mask.NumUpdates()
	if c.MaskSpan <= 0 {
		return need
	}
	n := int(float64(need) / c.MaskSpan)
	for ; n < 1<<40; n++ {
		start := int(c.MaskStart * float64(n))
		if start+int(c.MaskSpan*float64(n))-start >= need {
			return n
		}
	}
	return n
}

// LoadFile overrides c with the fields present in a JSON config file.
func (c *Config) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// JSON returns the configuration as indented JSON.
func (c *Config) JSON() string {
	b, _ := json.MarshalIndent(c, "", "  ")
	return string(b)
}
