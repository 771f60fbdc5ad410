package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"

	"github.com/vitbert/vitbert/pretrain"
	"github.com/vitbert/vitbert/train"
)

func init() {
	register("pretrain", "pre-train a text teacher, an image teacher or the joint model", runPretrain)
	register("config", "print the full default configuration of a preset (vitbert config print --preset tiny)", runConfig)
}

// pretrainFlags declares the flags shared by pretrain and config print. Each
// one overrides a field of the configuration (preset, then --config file,
// then the flags typed); the defaults --help shows are the tiny preset's.
func pretrainFlags(fs *flags) (preset, configFile *string) {
	preset = fs.String("preset", "tiny", "tiny (minutes on 2 CPU cores), small, or base (GPU scale); the defaults below are tiny's")
	configFile = fs.String("config", "", "JSON config file (see 'vitbert config print'); flags override it")
	def, err := pretrain.Preset("tiny")
	if err != nil {
		panic(err)
	}
	def.Finish()
	clearWarmupFrac := func(c reflect.Value) { fieldByPath(c, "warmup_frac").SetFloat(0) }
	for _, b := range []struct {
		flag, field, usage string
		also               func(reflect.Value)
	}{
		{"mode", "mode", "text (BERT teacher), image (ViT teacher) or joint", nil},
		{"steps", "steps", "training steps (> 0)", nil},
		{"text-batch", "text_batch", "texts per step (> 0)", nil},
		{"image-batch", "image_batch", "images per step (> 0)", nil},
		{"seed", "seed", "seed for initialisation, data order, masking and dropout", nil},
		{"lr", "optimizer.learning_rate", "peak learning rate (> 0)", nil},
		{"precision", "precision", "matrix products: f32 or bf16 (mixed precision, for GPUs)", nil},
		{"warmup", "optimizer.warmup_steps", "warm-up steps (>= 0; default: warmup_frac of the steps)", clearWarmupFrac},
		{"decay", "optimizer.decay", "learning-rate decay after warm-up: cosine, linear or constant", nil},
		{"clip", "optimizer.clip_norm", "global gradient-norm clipping (>= 0; 0 disables)", nil},
		{"weight-decay", "optimizer.weight_decay", "AdamW weight decay (>= 0; biases and LayerNorm excluded)", nil},
		{"dropout", "model.dropout", "dropout rate, in [0, 1)", nil},
		{"gradmask", "gradient_mask.enabled", "enable gradient masking of the shared encoder (joint mode); the same as --combine mask", nil},
		{"combine", "combine.rule", "how the text and image gradients of the shared encoder combine (joint mode): sum, mask, pcgrad, cagrad or weighted (default: mask with --gradmask, else sum)", nil},
		{"cagrad-c", "combine.cagrad_c", "CAGrad's c (>= 0; --combine cagrad)", nil},
		{"text-weight", "combine.text_weight", "text loss weight (>= 0; --combine weighted)", nil},
		{"image-weight", "combine.image_weight", "image loss weight (>= 0; --combine weighted)", nil},
		{"diagnostics", "diagnostics", "every K steps, log the conflict between the text and image gradients of the shared encoder into OUT/conflicts.jsonl (>= 0; 0: never)", nil},
		{"mask-ratio", "gradient_mask.final_sparsity", "gradient mask: final sparsity β, in (0, 1] (share handed to images)", nil},
		{"mask-step", "gradient_mask.increment", "gradient mask: sparsity increment δ per update, in (0, β]", nil},
		{"mask-ranking", "gradient_mask.ranking", "gradient mask ranking: tensor, block or global", nil},
		{"text-teacher", "distill_text.teacher", "model directory of the text teacher (enables text distillation)", nil},
		{"image-teacher", "distill_image.teacher", "model directory of the image teacher (enables image distillation)", nil},
		{"alpha-text", "distill_text.alpha", "text distillation ratio α, in [0, 1]", nil},
		{"tau-text", "distill_text.tau", "text distillation temperature τ (> 0)", nil},
		{"alpha-image", "distill_image.alpha", "image distillation ratio α, in [0, 1]", nil},
		{"tau-image", "distill_image.tau", "image distillation temperature τ (> 0)", nil},
		{"corpus", "data.corpus", "MLM corpus: embedded, or comma-separated .txt files/folders", nil},
		{"vocab", "data.vocab", "text vocabulary: a tokenizer directory (vitbert vocab train); default the built-in bert-base-uncased", nil},
		{"vocab-size", "data.vocab_size", "train a WordPiece vocabulary of this many tokens from the corpus's training documents (instead of --vocab; 0: none)", nil},
		{"images", "data.images", "image data: embedded, or a path (IDX, CIFAR, ImageFolder)", nil},
		{"eval-every", "eval_every", "every K steps, log the held-out MLM loss/accuracy and image loss/top-1 into metrics.jsonl (>= 0; 0: never)", nil},
		{"checkpoint-every", "checkpoint_every", "steps between checkpoints (>= 0; 0: only at the end and on interruption)", nil},
		{"keep", "keep_checkpoints", "checkpoints to keep (>= 1)", nil},
		{"devices", "devices", "data-parallel training over this many devices of the backend (XLA, docs/gpu.md); batches are split evenly (>= 0)", nil},
		{"mesh", "mesh", "use the data-parallel (device-mesh) step even for one device", nil},
	} {
		fs.bind(b.flag, b.field, &def, b.usage, b.also)
	}
	return preset, configFile
}

// buildConfig is the preset, overridden by the config file, overridden by
// the typed flags, finished and validated (the one validation of config
// files and flags alike; an error names the flag when a flag set the value).
func buildConfig(fs *flags, preset, configFile string) (pretrain.Config, error) {
	c, err := pretrain.Preset(preset)
	if err != nil {
		return c, err
	}
	if configFile != "" {
		if err := c.LoadFile(configFile); err != nil {
			return c, err
		}
	}
	fs.apply(&c)
	c.Finish()
	if err := c.Validate(); err != nil {
		if configFile != "" && fs.fieldError(err) == err {
			return c, fmt.Errorf("%s: %w", configFile, err)
		}
		return c, fs.fieldError(err)
	}
	return c, nil
}

// resumeConfig is the configuration of the run in dir (its config.json),
// with the typed flags and config file applied: a value that contradicts
// the run's is an error naming the field; only --steps may change, to
// extend the run. ok is false when dir has no config.json.
func resumeConfig(fs *flags, dir, configFile string) (c pretrain.Config, ok bool, err error) {
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, false, nil
	}
	if err != nil {
		return c, false, err
	}
	var run pretrain.Config
	if err := json.Unmarshal(b, &run); err != nil {
		return c, false, fmt.Errorf("reading %s: %w", path, err)
	}
	c = run
	if configFile != "" {
		if err := c.LoadFile(configFile); err != nil {
			return c, false, err
		}
	}
	fs.apply(&c)
	if fs.Given("preset") && fs.Lookup("preset").Value.String() != run.Preset {
		return c, false, fmt.Errorf("--resume: the run in %s was made with preset %q, not %q: a resumed run keeps its configuration (%s)",
			dir, run.Preset, fs.Lookup("preset").Value, path)
	}
	if c.Steps < run.Steps {
		return c, false, fmt.Errorf("--resume: --steps %d is below the run's %d steps (%s): a run can be extended, not shortened", c.Steps, run.Steps, path)
	}
	extended := c.Steps > run.Steps
	if extended {
		run.Steps, run.Optimizer.TotalSteps = c.Steps, c.Steps
	}
	// The device layout does not change the computation (docs/gpu.md):
	// checkpoints hold one replicated value, so it may change on resume.
	run.Devices, run.Mesh = c.Devices, c.Mesh
	c.Finish()
	if field, was, now := firstDifference(run, c); field != "" {
		how := "this field"
		if name := fs.boundFlag(field); name != "" && fs.Given(name) {
			how = "--" + name
		} else if configFile != "" {
			how = configFile
		}
		return c, false, fmt.Errorf("--resume: %s is %s in the run's %s, but %s asks for %s: a resumed run keeps its configuration (only --steps may extend it, and --devices/--mesh change); start a new run in another --out to change it",
			field, was, path, how, now)
	}
	if err := c.Validate(); err != nil {
		return c, false, fs.fieldError(err)
	}
	if extended {
		fmt.Fprintf(os.Stderr, "extending the run in %s to %d steps: the learning-rate schedule now ends at step %d\n", dir, c.Steps, c.Steps)
	}
	return c, true, nil
}

// firstDifference returns the JSON path and the two values of the first
// field where a and b differ ("" if none).
func firstDifference(a, b pretrain.Config) (field, va, vb string) {
	var ma, mb map[string]any
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	_ = json.Unmarshal(ja, &ma)
	_ = json.Unmarshal(jb, &mb)
	return diffJSON("", ma, mb)
}

func diffJSON(prefix string, a, b map[string]any) (string, string, string) {
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		sa, oka := a[k].(map[string]any)
		sb, okb := b[k].(map[string]any)
		if oka && okb {
			if f, x, y := diffJSON(path, sa, sb); f != "" {
				return f, x, y
			}
			continue
		}
		ja, _ := json.Marshal(a[k])
		jb, _ := json.Marshal(b[k])
		if string(ja) != string(jb) {
			return path, string(ja), string(jb)
		}
	}
	return "", "", ""
}

func runPretrain(args []string) error {
	fs := newFlags("pretrain", "--out DIR [--preset tiny] [--mode joint] [--gradmask] [--text-teacher DIR] [--image-teacher DIR] [flags]")
	preset, configFile := pretrainFlags(fs)
	out := fs.String("out", "", "run directory: metrics.jsonl, masks.jsonl, conflicts.jsonl, checkpoints/, model/ (required)")
	resume := fs.Bool("resume", false, "continue the run in --out from its latest intact checkpoint, with the run's own configuration (OUT/config.json); --steps may extend it, --devices and --mesh may change")
	quiet := fs.Bool("quiet", false, "no progress bar")
	probes := fs.IntIn("probes", 0, train.AtLeast(0).With("0: none"), "take activation maps at this many evenly spaced steps (and snapshot gradient masks), under OUT/probes")
	if err := fs.ParseNoArgs(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("--out is required")
	}
	var c pretrain.Config
	ok, err := false, error(nil)
	if *resume {
		c, ok, err = resumeConfig(fs, *out, *configFile)
		if err != nil {
			return err
		}
	}
	if !ok {
		if c, err = buildConfig(fs, *preset, *configFile); err != nil {
			return err
		}
	}
	ctx, stop, backend, err := startRun()
	if err != nil {
		return err
	}
	defer stop()
	opt := pretrain.Options{OutDir: *out, Resume: *resume, Quiet: *quiet}
	if *probes > 1 {
		opt.ProbeSteps = pretrain.ProbeSteps(c.Steps, *probes)
	}
	if err := pretrain.Run(ctx, backend, c, opt); err != nil {
		return err
	}
	fmt.Printf("model: %s\n", filepath.Join(*out, pretrain.ModelDir))
	return nil
}

func runConfig(args []string) error {
	const usage = "usage: vitbert config print [--preset tiny] [--config FILE] [pretrain flags]"
	if isHelp(args) {
		fmt.Fprintln(os.Stderr, usage+"\n\nPrints the full configuration of a preset, with a config file and flags applied (see 'vitbert pretrain --help').")
		return flag.ErrHelp
	}
	if len(args) == 0 || args[0] != "print" {
		return errors.New(usage)
	}
	fs := newFlags("config print", "[--preset tiny] [--config FILE] [pretrain flags]")
	preset, configFile := pretrainFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c, err := buildConfig(fs, *preset, *configFile)
	if err != nil {
		return err
	}
	fmt.Println(c.JSON())
	return nil
}
