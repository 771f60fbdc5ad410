package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vitbert/vitbert/finetune"
	"github.com/vitbert/vitbert/train"
)

func init() {
	register("finetune", "fine-tune a pre-trained model (or one from scratch) on a downstream image or text task", runFinetune)
	register("probe", "fit a linear classifier on a model's frozen features (finetune --freeze-encoder)", func(args []string) error {
		return runFinetune(append([]string{"--freeze-encoder"}, args...))
	})
}

func runFinetune(args []string) error {
	fs := newFlags("finetune", "--model DIR|scratch --task NAME [--data PATH] --out DIR [flags]")
	def := finetune.DefaultConfig()
	configFile := fs.String("config", "", "JSON config file (a run's config.json); flags override it")
	modelDir := fs.String("model", "", "model directory (vitbert pretrain's OUT/model, or a Hugging Face BERT/ViT checkpoint), or \"scratch\" (required)")
	from := fs.String("from", "", "same as --model")
	task := fs.String("task", def.Name, "task: "+strings.Join(finetune.TaskNames(), ", "))
	data := fs.String("data", "", "the task's data: GLUE folder, image data set, labelled TSV or folder, DATA/brown-genres (not needed for the embedded tasks)")
	out := fs.String("out", "", "run directory: best/, eval.jsonl, result.json, metrics.jsonl, checkpoints/ (required)")
	resume := fs.Bool("resume", false, "continue the run in --out from its latest checkpoint (its config.json is the configuration; flags must agree with it)")
	overwrite := fs.Bool("overwrite", false, "replace a run already in --out")
	preset := fs.String("preset", def.Preset, "model size of a scratch run: tiny, small or base")
	steps := fs.IntIn("steps", def.Steps, train.AtLeast(1), "training steps")
	epochs := fs.FloatIn("epochs", 0, train.Above(0), "passes over the training examples (replaces --steps)")
	trainN := fs.IntIn("train-examples", 0, train.AtLeast(0).With("0: all"), "few-shot: train on N examples drawn by --seed")
	perClass := fs.IntIn("per-class", 0, train.AtLeast(0).With("0: all"), "few-shot: train on N examples of each class drawn by --seed")
	batch := fs.IntIn("batch", def.Batch, train.AtLeast(1), "examples per step")
	evalBatch := fs.IntIn("eval-batch", def.EvalBatch, train.AtLeast(1), "examples per evaluation batch")
	lr := fs.FloatIn("lr", def.Optimizer.LearningRate, train.Above(0), "peak learning rate (AdamW)")
	warmup := fs.FloatIn("warmup-frac", def.WarmupFrac, train.Range{Lo: 0, Hi: 1, HiOpen: true}, "share of the steps spent warming up; linear decay follows")
	wd := fs.FloatIn("weight-decay", def.Optimizer.WeightDecay, train.AtLeast(0), "AdamW weight decay (biases and LayerNorm excluded)")
	dropout := fs.FloatIn("dropout", 0, train.Range{Lo: 0, Hi: 1, HiOpen: true}, "dropout rate (default: the model's)")
	evalEvery := fs.IntIn("eval-every", def.EvalEvery, train.AtLeast(0).With("0: only at the end"), "score the validation split every N steps")
	ckEvery := fs.IntIn("checkpoint-every", 0, train.AtLeast(0).With("0: at every evaluation"), "write a resumable checkpoint every N steps")
	patience := fs.IntIn("patience", 0, train.AtLeast(0).With("0: never"), "stop after N evaluations without improvement on the validation split")
	seed := fs.Int64("seed", def.Seed, "seed for the head's initialisation, data order, dropout and the few-shot subset")
	maxLen := fs.IntIn("max-length", 0, train.AtLeast(0).With("0: 128, at most the model's position table"), "text length in tokens")
	adapt := fs.Bool("adapt-images", false, "resize and convert images whose size or channels differ from the model's (otherwise an error)")
	freeze := fs.Bool("freeze-encoder", false, "linear probe: fit a linear classifier on the frozen encoder's features")
	l2 := fs.String("l2", "", "linear probe: comma-separated L2 penalties to choose from on validation (default 1,0.1,…,1e-5)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := fs.ParseNoArgs(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *modelDir != "" && *from != "" && *modelDir != *from {
		return fmt.Errorf("--model %q and --from %q disagree", *modelDir, *from)
	}
	if *modelDir == "" {
		*modelDir, set["model"] = *from, set["from"]
	}
	if !set["model"] && *configFile == "" && !*resume {
		return fmt.Errorf("--model is required (a model directory, or %q for the no-pre-training baseline)", finetune.Scratch)
	}
	if *out == "" {
		return fmt.Errorf("--out is required")
	}
	if *resume && *overwrite {
		return fmt.Errorf("--resume and --overwrite exclude each other")
	}
	if set["steps"] && set["epochs"] {
		return fmt.Errorf("give --steps or --epochs, not both")
	}
	if set["l2"] && !*freeze {
		return fmt.Errorf("--l2 applies to a linear probe: add --freeze-encoder")
	}

	// The base configuration: the run's own on --resume, else --config,
	// else the defaults; the flags given on the command line override it.
	c := def
	base := *configFile
	if *resume && base == "" {
		base = filepath.Join(*out, finetune.ConfigFile)
		if _, err := os.Stat(base); err != nil {
			return fmt.Errorf("nothing to resume in %s: %w", *out, err)
		}
	}
	if base != "" {
		var err error
		if c, err = finetune.LoadConfig(base); err != nil {
			return err
		}
	}
	if set["model"] {
		c.Model = *modelDir
	}
	if set["preset"] {
		c.Preset = *preset
	}
	if set["task"] {
		c.Task.Name = *task
	}
	if set["data"] {
		c.Task.Data = *data
	}
	if set["epochs"] {
		c.Epochs = *epochs
	}
	if set["steps"] {
		c.Steps, c.Epochs = *steps, 0
	}
	for name, apply := range map[string]func(){
		"train-examples": func() { c.TrainExamples = *trainN }, "per-class": func() { c.PerClass = *perClass },
		"batch": func() { c.Batch = *batch }, "eval-batch": func() { c.EvalBatch = *evalBatch },
		"lr": func() { c.Optimizer.LearningRate = *lr }, "warmup-frac": func() { c.WarmupFrac = *warmup; c.Optimizer.WarmupSteps = 0 },
		"weight-decay": func() { c.Optimizer.WeightDecay = *wd }, "dropout": func() { c.Dropout = *dropout },
		"eval-every": func() { c.EvalEvery = *evalEvery }, "checkpoint-every": func() { c.CheckpointEvery = *ckEvery },
		"patience": func() { c.Patience = *patience }, "seed": func() { c.Seed = *seed },
		"max-length": func() { c.MaxLength = *maxLen }, "adapt-images": func() { c.AdaptImages = *adapt },
	} {
		if set[name] {
			apply()
		}
	}
	if *freeze && c.Probe == nil {
		c.Probe = finetune.DefaultProbe()
	}
	if set["l2"] {
		c.Probe.L2 = nil
		for _, f := range strings.Split(*l2, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil {
				return fmt.Errorf("--l2: %q is not a number", f)
			}
			c.Probe.L2 = append(c.Probe.L2, v)
		}
	}
	ctx, stop, backend, err := startRun()
	if err != nil {
		return err
	}
	defer stop()
	res, err := finetune.Run(ctx, backend, c, finetune.Options{OutDir: *out, Quiet: *quiet, Resume: *resume, Overwrite: *overwrite})
	if err != nil {
		return err
	}
	what := fmt.Sprintf("step %d of %d", res.Step, res.StepsRun)
	if res.Probe != nil {
		what = fmt.Sprintf("linear probe, L2 %g", res.Probe.L2)
	}
	fmt.Printf("%s: selected on the %s split (%s %.4f, %s", res.Task, res.SelectedOn, res.Metric,
		res.ValidationMetrics[res.Metric], what)
	if res.EarlyStopped {
		fmt.Printf(", stopped early")
	}
	fmt.Printf("); %d training examples\n", res.TrainExamples)
	fmt.Printf("test split %s, scored once:\n", res.Split)
	for _, k := range res.Metrics.SortedKeys() {
		fmt.Printf("  %-24s %.4f\n", k, res.Metrics[k])
	}
	fmt.Printf("model: %s\n", res.BestDir)
	return nil
}
