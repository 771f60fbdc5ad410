package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/vitbert/vitbert/pretrain"
	"github.com/vitbert/vitbert/train"
)

func init() {
	register("pretrain", "pre-train a text teacher, an image teacher or the joint model", runPretrain)
	register("config", "print the full default configuration of a preset (vitbert config print --preset tiny)", runConfig)
}

// pretrainFlags declares the overrides shared by pretrain and config print,
// and returns a function that applies those that were set.
func pretrainFlags(fs *flag.FlagSet) (preset, configFile *string, apply func(c *pretrain.Config)) {
	preset = fs.String("preset", "tiny", "tiny (minutes on 2 CPU cores), small, or base (GPU scale)")
	configFile = fs.String("config", "", "JSON config file (see 'vitbert config print'); flags override it")
	mode := fs.String("mode", "", "text (BERT teacher), image (ViT teacher) or joint")
	steps := fs.Int("steps", 0, "training steps")
	textBatch := fs.Int("text-batch", 0, "texts per step")
	imageBatch := fs.Int("image-batch", 0, "images per step")
	seed := fs.Int64("seed", 0, "seed for initialisation, data order, masking and dropout")
	lr := fs.Float64("lr", 0, "peak learning rate")
	precision := fs.String("precision", "", "matrix products: f32 (default) or bf16 (mixed precision, for GPUs)")
	warmup := fs.Int("warmup", -1, "warm-up steps")
	decay := fs.String("decay", "", "learning-rate decay after warm-up: cosine or linear")
	clip := fs.Float64("clip", -1, "global gradient-norm clipping (0 disables)")
	wd := fs.Float64("weight-decay", -1, "AdamW weight decay (biases and LayerNorm excluded)")
	dropout := fs.Float64("dropout", -1, "dropout rate")
	gradmask := fs.Bool("gradmask", false, "enable gradient masking of the shared encoder (joint mode); the same as --combine mask")
	combine := fs.String("combine", "", "how the text and image gradients of the shared encoder combine (joint mode): sum, mask, pcgrad, cagrad or weighted")
	cagradC := fs.Float64("cagrad-c", -1, "CAGrad's c (--combine cagrad)")
	textWeight := fs.Float64("text-weight", -1, "text loss weight (--combine weighted)")
	imageWeight := fs.Float64("image-weight", -1, "image loss weight (--combine weighted)")
	diagnostics := fs.Int("diagnostics", 0, "every K steps, log the conflict between the text and image gradients of the shared encoder into OUT/conflicts.jsonl (0: never)")
	beta := fs.Float64("mask-ratio", 0, "gradient mask: final sparsity β (share handed to images)")
	delta := fs.Float64("mask-step", 0, "gradient mask: sparsity increment δ per update")
	ranking := fs.String("mask-ranking", "", "gradient mask ranking: tensor, block or global")
	textTeacher := fs.String("text-teacher", "", "model directory of the text teacher (enables text distillation)")
	imageTeacher := fs.String("image-teacher", "", "model directory of the image teacher (enables image distillation)")
	alphaText := fs.Float64("alpha-text", -1, "text distillation ratio α")
	tauText := fs.Float64("tau-text", 0, "text distillation temperature τ")
	alphaImage := fs.Float64("alpha-image", -1, "image distillation ratio α")
	tauImage := fs.Float64("tau-image", 0, "image distillation temperature τ")
	corpus := fs.String("corpus", "", "MLM corpus: embedded, or comma-separated .txt files/folders")
	imgs := fs.String("images", "", "image data: embedded, or a path (IDX, CIFAR, ImageFolder)")
	evalEvery := fs.Int("eval-every", 0, "every K steps, log the held-out MLM loss/accuracy and image loss/top-1 into metrics.jsonl (0: never)")
	ckEvery := fs.Int("checkpoint-every", 0, "steps between checkpoints")
	keep := fs.Int("keep", 0, "checkpoints to keep")
	devices := fs.Int("devices", 0, "data-parallel training over this many devices of the backend (XLA, docs/gpu.md); batches are split evenly")
	mesh := fs.Bool("mesh", false, "use the data-parallel (device-mesh) step even for one device")
	apply = func(c *pretrain.Config) {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if *mode != "" {
			c.Mode = *mode
		}
		if *steps > 0 {
			c.Steps = *steps
		}
		if *textBatch > 0 {
			c.TextBatch = *textBatch
		}
		if *imageBatch > 0 {
			c.ImageBatch = *imageBatch
		}
		if set["seed"] {
			c.Seed = *seed
		}
		if *lr > 0 {
			c.Optimizer.LearningRate = *lr
		}
		if *precision != "" {
			c.Precision = *precision
		}
		if *warmup >= 0 {
			c.Optimizer.WarmupSteps = *warmup
		}
		if *decay != "" {
			c.Optimizer.Decay = train.DecaySchedule(*decay)
		}
		if *clip >= 0 {
			c.Optimizer.ClipNorm = *clip
		}
		if *wd >= 0 {
			c.Optimizer.WeightDecay = *wd
		}
		if *dropout >= 0 {
			c.Model.Dropout = *dropout
		}
		if set["gradmask"] {
			c.Mask.Enabled = *gradmask
		}
		if *combine != "" {
			c.Combine.Rule = train.CombineRule(*combine)
		}
		if *cagradC >= 0 {
			c.Combine.C = *cagradC
		}
		if *textWeight >= 0 {
			c.Combine.TextWeight = *textWeight
		}
		if *imageWeight >= 0 {
			c.Combine.ImageWeight = *imageWeight
		}
		if set["diagnostics"] {
			c.Diagnostics = *diagnostics
		}
		if *beta > 0 {
			c.Mask.FinalSparsity = *beta
		}
		if *delta > 0 {
			c.Mask.Increment = *delta
		}
		if *ranking != "" {
			c.Mask.Ranking = train.RankScope(*ranking)
		}
		if *textTeacher != "" {
			c.DistillText.Teacher = *textTeacher
		}
		if *imageTeacher != "" {
			c.DistillImage.Teacher = *imageTeacher
		}
		if *alphaText >= 0 {
			c.DistillText.Alpha = *alphaText
		}
		if *tauText > 0 {
			c.DistillText.Tau = *tauText
		}
		if *alphaImage >= 0 {
			c.DistillImage.Alpha = *alphaImage
		}
		if *tauImage > 0 {
			c.DistillImage.Tau = *tauImage
		}
		if *corpus != "" {
			c.Data.Corpus = *corpus
		}
		if *imgs != "" {
			c.Data.Images = *imgs
		}
		if set["eval-every"] {
			c.EvalEvery = *evalEvery
		}
		if *ckEvery > 0 {
			c.CheckpointEvery = *ckEvery
		}
		if *keep > 0 {
			c.KeepCheckpoints = *keep
		}
		if set["devices"] {
			c.Devices = *devices
		}
		if set["mesh"] {
			c.Mesh = *mesh
		}
	}
	return
}

func buildConfig(preset, configFile string, apply func(*pretrain.Config)) (pretrain.Config, error) {
	c, err := pretrain.Preset(preset)
	if err != nil {
		return c, err
	}
	if configFile != "" {
		if err := c.LoadFile(configFile); err != nil {
			return c, err
		}
	}
	apply(&c)
	return c, nil
}

func runPretrain(args []string) error {
	fs := newFlags("pretrain", "--out DIR [--preset tiny] [--mode joint] [--gradmask] [--text-teacher DIR] [--image-teacher DIR] [flags]")
	preset, configFile, apply := pretrainFlags(fs)
	out := fs.String("out", "", "run directory: metrics.jsonl, masks.jsonl, conflicts.jsonl, checkpoints/, model/ (required)")
	resume := fs.Bool("resume", false, "continue from the latest checkpoint in --out")
	quiet := fs.Bool("quiet", false, "no progress bar")
	probes := fs.Int("probes", 0, "take activation maps at this many evenly spaced steps (and snapshot gradient masks), under OUT/probes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return fmt.Errorf("--out is required")
	}
	c, err := buildConfig(*preset, *configFile, apply)
	if err != nil {
		return err
	}
	backend, err := newBackend()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opt := pretrain.Options{OutDir: *out, Resume: *resume, Quiet: *quiet}
	if *probes > 1 {
		c.Finish()
		opt.ProbeSteps = pretrain.ProbeSteps(c.Steps, *probes)
	}
	return pretrain.Run(ctx, backend, c, opt)
}

func runConfig(args []string) error {
	if len(args) == 0 || args[0] != "print" {
		return fmt.Errorf("usage: vitbert config print [--preset tiny] [pretrain flags]")
	}
	fs := newFlags("config print", "[--preset tiny] [--config FILE] [pretrain flags]")
	preset, configFile, apply := pretrainFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	c, err := buildConfig(*preset, *configFile, apply)
	if err != nil {
		return err
	}
	c.Finish()
	if err := c.Validate(); err != nil {
		return err
	}
	fmt.Println(c.JSON())
	return nil
}
