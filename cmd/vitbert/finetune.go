package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/vitbert/vitbert/finetune"
	"github.com/vitbert/vitbert/train"
)

func init() {
	register("finetune", "fine-tune a pre-trained model (or one from scratch) on a downstream image or text task", runFinetune)
}

func runFinetune(args []string) error {
	fs := newFlags("finetune", "--model DIR|scratch --task NAME [--data PATH] --out DIR [flags]")
	def := finetune.DefaultConfig()
	modelDir := fs.String("model", "", "model directory (vitbert pretrain's OUT/model, or a Hugging Face BERT/ViT checkpoint), or \"scratch\" (required)")
	from := fs.String("from", "", "same as --model")
	task := fs.String("task", finetune.TaskEmbeddedImages, "task: "+strings.Join(finetune.TaskNames(), ", "))
	data := fs.String("data", "", "the task's data: GLUE folder, image data set, labelled TSV or folder (not needed for the embedded tasks)")
	out := fs.String("out", "", "run directory: best/, eval.jsonl, result.json, metrics.jsonl (required)")
	preset := fs.String("preset", def.Preset, "model size of a scratch run: tiny, small or base")
	steps := fs.IntIn("steps", def.Steps, train.AtLeast(1), "training steps")
	batch := fs.IntIn("batch", def.Batch, train.AtLeast(1), "examples per step")
	evalBatch := fs.IntIn("eval-batch", def.EvalBatch, train.AtLeast(1), "examples per evaluation batch")
	lr := fs.FloatIn("lr", def.Optimizer.LearningRate, train.Above(0), "peak learning rate (AdamW)")
	warmup := fs.FloatIn("warmup-frac", def.WarmupFrac, train.Range{Lo: 0, Hi: 1, HiOpen: true}, "share of the steps spent warming up; linear decay follows")
	wd := fs.FloatIn("weight-decay", def.Optimizer.WeightDecay, train.AtLeast(0), "AdamW weight decay (biases and LayerNorm excluded)")
	dropout := fs.FloatIn("dropout", 0, train.Range{Lo: 0, Hi: 1, HiOpen: true}, "dropout rate (default: the model's)")
	evalEvery := fs.IntIn("eval-every", def.EvalEvery, train.AtLeast(0).With("0: only at the end"), "evaluate every N steps")
	patience := fs.IntIn("patience", 0, train.AtLeast(0).With("0: never"), "stop after N evaluations without improvement")
	seed := fs.Int64("seed", def.Seed, "seed for the head's initialisation, data order and dropout")
	maxLen := fs.IntIn("max-length", 0, train.AtLeast(0).With("0: 128, at most the model's position table"), "text length in tokens")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *modelDir != "" && *from != "" && *modelDir != *from {
		return fmt.Errorf("--model %q and --from %q disagree", *modelDir, *from)
	}
	if *modelDir == "" {
		*modelDir = *from
	}
	if *modelDir == "" {
		return fmt.Errorf("--model is required (a model directory, or %q for the no-pre-training baseline)", finetune.Scratch)
	}
	if *out == "" {
		return fmt.Errorf("--out is required")
	}
	c := def
	c.Model, c.Preset = *modelDir, *preset
	c.Task = finetune.Task{Name: *task, Data: *data}
	c.Steps, c.Batch, c.EvalBatch, c.MaxLength = *steps, *batch, *evalBatch, *maxLen
	c.Optimizer.LearningRate, c.Optimizer.WeightDecay, c.WarmupFrac = *lr, *wd, *warmup
	c.EvalEvery, c.Patience, c.Seed = *evalEvery, *patience, *seed
	if fs.Given("dropout") {
		c.Dropout = *dropout
	}
	if err := startHook(); err != nil {
		return err
	}
	backend, err := newBackend()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := finetune.Run(ctx, backend, c, finetune.Options{OutDir: *out, Quiet: *quiet})
	if res != nil {
		fmt.Printf("%s: best %s %.4f at step %d of %d on the %s split", res.Task, res.Metric, res.Metrics[res.Metric], res.Step, res.StepsRun, res.Split)
		if res.EarlyStopped {
			fmt.Printf(" (stopped early)")
		}
		fmt.Println()
		for _, k := range res.Metrics.SortedKeys() {
			fmt.Printf("  %-24s %.4f\n", k, res.Metrics[k])
		}
		fmt.Printf("model: %s\n", res.BestDir)
	}
	return err
}
