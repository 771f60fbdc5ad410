// Package finetune adapts a ViT-BERT model to one downstream task: a fresh
// 2-layer GELU head on the [CLS] embedding (docs/method.md, "Fine-tuning"), all
// weights trained with AdamW, warm-up and decay, on the training loop of
// package train (checkpoints, resume, Ctrl-C).
//
// The evaluation protocol: the checkpoint is selected, and early stopping
// decided, on a validation split — the task's own (a dev split beside a test
// split) or one carved deterministically from the training split
// (ValidationSplit). The test split(s) are read and scored once, after
// training, with the selected checkpoint. Nothing is ever selected on a test
// split. LinearProbe fits a linear classifier on frozen features under the
// same protocol (its L2 penalty chosen on validation). Few-shot runs train on
// a subset of the training split drawn by the seed (Config.TrainExamples,
// Config.PerClass).
//
// The starting point is any model directory (a pre-training run's
// OUT/model, an imported Hugging Face BERT or ViT checkpoint) or a fresh
// initialisation (Model "scratch"), the no-pre-training baseline. The
// pre-training heads are dropped.
//
// Output files under Options.OutDir:
//
//	config.json   the run's Config
//	metrics.jsonl the training loop's per-step metrics (train.MetricsFile)
//	checkpoints/  the training loop's checkpoints (for --resume)
//	eval.jsonl    {"step", "split", "metrics": {...}, "best": bool} per
//	              evaluation of the validation split
//	best/         the selected model (checkpoint.SaveDir format, head
//	              "task"), with finetune.json (task, data, evaluation
//	              settings, validation and test scores) and the tokenizer
//	              files of the source model, if any
//	result.json   Result: the test scores of the selected model, and what
//	              selected it
package finetune

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like the equations.
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/vitbert/vitbert/atomicfs"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/data/images"
	"github.com/vitbert/vitbert/data/texts"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/pretrain"
	"github.com/vitbert/vitbert/text"
	"github.com/vitbert/vitbert/train"
)

// Scratch as Config.Model starts from a fresh initialisation.
const Scratch = "scratch"

// Config is a fine-tuning run.
type Config struct {
	// Model is a model directory, or "scratch".
	Model string `json:"model"`
	// Preset names the model configuration of a scratch run (pretrain.Preset:
	// tiny, small, base); ModelConfig, if set, replaces it.
	Preset      string        `json:"preset,omitempty"`
	ModelConfig *model.Config `json:"model_config,omitempty"`
	// Vocab is the tokenizer directory of a scratch run (default: the
	// built-in bert-base-uncased); a model directory brings its own.
	Vocab string `json:"vocab,omitempty"`
	Task
	// Steps of training; Epochs, if positive, replaces it with the steps of
	// that many passes over the training examples (rounded up).
	Steps  int     `json:"steps"`
	Epochs float64 `json:"epochs,omitempty"`
	// TrainExamples, if positive, trains on that many training examples
	// drawn by Seed; PerClass, if positive, on that many of every class
	// (few-shot fine-tuning: each seed draws another subset).
	TrainExamples int `json:"train_examples,omitempty"`
	PerClass      int `json:"per_class,omitempty"`
	Batch         int `json:"batch"`
	EvalBatch     int `json:"eval_batch"`
	// MaxLength pads and truncates texts (0: 128, capped by the model's
	// position table; larger than the table is an error).
	MaxLength int `json:"max_length"`
	// Dropout, if ≥ 0, replaces the model's dropout rate.
	Dropout   float64               `json:"dropout"`
	Optimizer train.OptimizerConfig `json:"optimizer"`
	// WarmupFrac sets Optimizer.WarmupSteps as a share of Steps when that is 0.
	WarmupFrac float64 `json:"warmup_frac"`
	// EvalEvery N steps the validation split is scored (0: only at the end;
	// the last step is always scored).
	EvalEvery int `json:"eval_every"`
	// CheckpointEvery N steps a resumable checkpoint is written (0: at every
	// evaluation; the last step and an interruption always write one).
	CheckpointEvery int `json:"checkpoint_every,omitempty"`
	// Patience, if positive, stops training after that many evaluations
	// without improvement of the main metric on the validation split.
	Patience int `json:"patience"`
	// AdaptImages lets images of another size or channel count than the
	// model's be resized and converted (with a message); without it such
	// data is an error.
	AdaptImages bool `json:"adapt_images,omitempty"`
	// Probe, if set, makes Run a linear probe (see LinearProbe).
	Probe *ProbeConfig `json:"probe,omitempty"`
	Seed  int64        `json:"seed"`
}

// DefaultConfig is BERT-style fine-tuning: AdamW at 1e-4 with 10% warm-up
// and linear decay, weight decay 0.01, clipping at 1, batches of 32.
func DefaultConfig() Config {
	opt := train.DefaultOptimizerConfig(500)
	opt.Decay = train.DecayLinear
	opt.WarmupSteps = 0
	return Config{
		Model: Scratch, Preset: "tiny", Task: Task{Name: TaskEmbeddedImages},
		Steps: 500, Batch: 32, EvalBatch: 64, Dropout: -1, Optimizer: opt, WarmupFrac: 0.1,
		EvalEvery: 100, Seed: 1,
	}
}

// Options are the run's non-configuration settings.
type Options struct {
	OutDir string
	// Resume continues the run in OutDir from its latest checkpoint (its
	// config.json must agree with the Config); Overwrite replaces a run
	// there. Without either, an OutDir that holds a run is an error.
	Resume, Overwrite bool
	Progress          io.Writer // progress bar and messages (nil: standard error)
	Quiet             bool      // no progress bar

	// wrapTask, if set, sees the task's data before anything is read: tests
	// instrument which split is read when.
	wrapTask func(td *taskData)
}

func (o *Options) logf(format string, args ...any) {
	w := o.Progress
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintf(w, format+"\n", args...)
}

// Result is result.json.
type Result struct {
	Task string `json:"task"`
	Data string `json:"data,omitempty"`
	// Split is the test split (the first of the test splits) and Metrics
	// the test scores of the selected model, each split scored once after
	// training.
	Split   string  `json:"split"`
	Metric  string  `json:"metric"` // the metric that selects on validation
	Metrics Metrics `json:"metrics"`
	// SelectedOn is the split that selected the model (and decided early
	// stopping); ValidationCarved says whether it was carved from train.
	SelectedOn        string  `json:"selected_on"`
	ValidationCarved  bool    `json:"validation_carved"`
	ValidationMetrics Metrics `json:"validation_metrics"`
	// Step is the selected model's step.
	Step int `json:"step"`
	// StepsRun is how many steps were trained; fewer than Steps after early
	// stopping. EpochsRun = StepsRun · Batch / TrainExamples.
	StepsRun     int     `json:"steps_run"`
	Steps        int     `json:"steps"`
	EpochsRun    float64 `json:"epochs_run"`
	EarlyStopped bool    `json:"early_stopped"`
	// TrainExamples and ValidationExamples count the examples used.
	TrainExamples      int    `json:"train_examples"`
	ValidationExamples int    `json:"validation_examples"`
	BestDir            string `json:"best_dir"`
	From               string `json:"from"`
	// Probe, for a linear probe, is the L2 penalty chosen on validation.
	Probe *ProbeFit `json:"probe,omitempty"`
}

// Files under Options.OutDir.
const (
	BestDir     = "best"
	EvalFile    = "eval.jsonl"
	ResultFile  = "result.json"
	MetricsFile = train.MetricsFile
	ConfigFile  = "config.json"
)

// runFiles are the entries of OutDir that a run writes; Overwrite removes them.
var runFiles = []string{BestDir, EvalFile, ResultFile, MetricsFile, ConfigFile, train.CheckpointsDir, train.MasksFile}

// finish checks the configuration and fills the settings that do not
// depend on the data.
func (c *Config) finish() error {
	if c.Steps <= 0 && c.Epochs <= 0 && c.Probe == nil {
		return fmt.Errorf("steps (--steps) must be positive, got %d (or give epochs, --epochs)", c.Steps)
	}
	if c.Epochs < 0 || math.IsNaN(c.Epochs) || math.IsInf(c.Epochs, 0) {
		return fmt.Errorf("epochs (--epochs) must be positive, got %g", c.Epochs)
	}
	if c.TrainExamples < 0 || c.PerClass < 0 {
		return fmt.Errorf("train_examples (--train-examples) and per_class (--per-class) must be ≥ 0, got %d and %d", c.TrainExamples, c.PerClass)
	}
	if c.TrainExamples > 0 && c.PerClass > 0 {
		return fmt.Errorf("give train_examples (--train-examples %d) or per_class (--per-class %d), not both", c.TrainExamples, c.PerClass)
	}
	if c.Batch <= 0 {
		return fmt.Errorf("batch (--batch) must be positive, got %d", c.Batch)
	}
	if c.EvalBatch <= 0 {
		return fmt.Errorf("eval_batch (--eval-batch) must be positive, got %d", c.EvalBatch)
	}
	if c.EvalEvery < 0 || c.Patience < 0 || c.MaxLength < 0 || c.CheckpointEvery < 0 {
		return fmt.Errorf("eval_every (--eval-every), checkpoint_every (--checkpoint-every), patience (--patience) and max_length (--max-length) must be ≥ 0, got %d, %d, %d, %d", c.EvalEvery, c.CheckpointEvery, c.Patience, c.MaxLength)
	}
	if c.Dropout >= 1 {
		return fmt.Errorf("dropout (--dropout) must be below 1, got %g", c.Dropout)
	}
	if c.WarmupFrac < 0 || c.WarmupFrac >= 1 {
		return fmt.Errorf("warmup_frac (--warmup-frac) must be in [0, 1), got %g", c.WarmupFrac)
	}
	if c.Probe != nil {
		return c.Probe.check()
	}
	return nil
}

// setSteps fixes the number of steps (from Epochs, given n training
// examples) and the optimizer schedule.
func (c *Config) setSteps(n int) error {
	if c.Epochs > 0 {
		c.Steps = int(math.Ceil(c.Epochs * float64(n) / float64(c.Batch)))
	}
	if c.Steps <= 0 {
		return fmt.Errorf("steps must be positive, got %d", c.Steps)
	}
	c.Optimizer.TotalSteps = c.Steps
	if c.Optimizer.WarmupSteps == 0 {
		c.Optimizer.WarmupSteps = int(c.WarmupFrac * float64(c.Steps))
	}
	if c.Optimizer.WarmupSteps >= c.Steps {
		c.Optimizer.WarmupSteps = c.Steps - 1
	}
	return c.Optimizer.Validate()
}

// source is the model fine-tuning starts from.
type source struct {
	cfg     model.Config
	weights map[string][]float32 // nil for scratch
	dir     string               // "" for scratch
	vocab   string               // where the tokenizer is: dir, or Config.Vocab for scratch
}

func loadSource(c *Config, def *taskDef) (*source, error) {
	if c.Model == "" {
		return nil, fmt.Errorf("no model: give a model directory or %q", Scratch)
	}
	if c.Model != Scratch {
		m, err := checkpoint.LoadDir(c.Model)
		if err != nil {
			return nil, err
		}
		if err := checkSide(&m.Config, def, c.Model); err != nil {
			return nil, err
		}
		if c.Vocab != "" {
			return nil, fmt.Errorf("vocab %s: the model %s brings its own vocabulary; vocab is for scratch runs", c.Vocab, c.Model)
		}
		return &source{cfg: m.Config, weights: m.Weights, dir: m.Source, vocab: m.Source}, nil
	}
	var mc model.Config
	if c.ModelConfig != nil {
		mc = *c.ModelConfig
	} else {
		p, err := pretrain.Preset(c.Preset)
		if err != nil {
			return nil, err
		}
		mc = p.Model
	}
	// A baseline keeps only the side its task reads.
	if def.Modality == "text" {
		mc.ImageSize = 0
	} else {
		mc.VocabSize = 0
	}
	if err := checkSide(&mc, def, "configuration (scratch)"); err != nil {
		return nil, err
	}
	return &source{cfg: mc, vocab: c.Vocab}, nil
}

// lossFn is the task loss: cross-entropy over the classes, or the mean
// squared error of the single output (STS-B). Inputs as Stream.Next.
func lossFn(c *model.Config, def *taskDef) train.LossFn {
	h, _ := c.Head(HeadName)
	return func(scope *mlmodel.Scope, g *Graph, in []*Node) train.Losses {
		var l train.Losses
		if def.Modality == "text" {
			ids, seg, mask, target := in[0], in[1], in[2], in[3]
			logits := c.HeadLogits(scope, h, model.CLS(c.EncodeText(scope, ids, seg, mask)))
			if def.Kind == model.HeadRegress {
				l.Text = train.MeanSquaredError(Reshape(logits, target.Shape().Dim(0)), target, nil)
			} else {
				l.Text = train.SoftmaxCrossEntropy(logits, target, nil)
			}
			return l
		}
		pixels, labels := in[0], in[1]
		logits := c.HeadLogits(scope, h, model.CLS(c.EncodeImage(scope, pixels)))
		l.Image = train.SoftmaxCrossEntropy(logits, labels, nil)
		return l
	}
}

// prepareOut checks OutDir against opt: a fresh run needs it empty (or
// Overwrite, which removes the files of an earlier run); a resumed run needs
// its config.json, equal to cfg (the finished Config, as JSON).
func prepareOut(opt *Options, cfg []byte) error {
	ents, err := os.ReadDir(opt.OutDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if opt.Resume {
		old, err := os.ReadFile(filepath.Join(opt.OutDir, ConfigFile))
		if err != nil {
			return fmt.Errorf("nothing to resume in %s: %w", opt.OutDir, err)
		}
		return sameConfig(old, cfg, opt.OutDir)
	}
	// The run directory's lock (held by this process) is not a run, nor is
	// what an interrupted atomic write left behind.
	ents = slices.DeleteFunc(ents, func(e os.DirEntry) bool {
		return e.Name() == train.LockFile || strings.HasPrefix(e.Name(), atomicfs.TempPrefix)
	})
	if len(ents) == 0 {
		return os.MkdirAll(opt.OutDir, 0o755)
	}
	if !opt.Overwrite {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return fmt.Errorf("%s already holds %s: give --resume to continue that run or --overwrite to replace it", opt.OutDir, strings.Join(names, ", "))
	}
	for _, name := range runFiles {
		if err := os.RemoveAll(filepath.Join(opt.OutDir, name)); err != nil {
			return err
		}
	}
	return nil
}

// sameConfig reports, by field name, how a resumed run's configuration
// differs from the one its directory was started with.
func sameConfig(old, cur []byte, dir string) error {
	var a, b map[string]json.RawMessage
	if err := json.Unmarshal(old, &a); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, ConfigFile), err)
	}
	if err := json.Unmarshal(cur, &b); err != nil {
		return err
	}
	var diff []string
	for k := range a {
		if string(a[k]) != string(b[k]) {
			diff = append(diff, fmt.Sprintf("%s (%s in the run, now %s)", k, a[k], b[k]))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			diff = append(diff, fmt.Sprintf("%s (unset in the run, now %s)", k, b[k]))
		}
	}
	if len(diff) == 0 {
		return nil
	}
	sort.Strings(diff)
	return fmt.Errorf("--resume: the configuration differs from the run in %s: %s", dir, strings.Join(diff, "; "))
}

// prepared is a run's data and model, before training.
type prepared struct {
	c       Config
	td      *taskData
	def     *taskDef
	src     *source
	mc      model.Config // with the task head
	tok     *text.Tokenizer
	L       int
	nTrain  int
	trainTS *textSplit      // text tasks
	trainDS *images.Dataset // image tasks
	out     string          // Options.OutDir
}

// prepare reads the task's training and validation data and the source model.
func prepare(c Config, opt *Options) (*prepared, error) {
	if opt.OutDir == "" {
		return nil, fmt.Errorf("no output directory")
	}
	if err := c.finish(); err != nil {
		return nil, err
	}
	td, err := openTask(c.Task)
	if err != nil {
		return nil, err
	}
	if opt.wrapTask != nil {
		opt.wrapTask(td)
	}
	def := td.def
	// Record absolute paths, so that OUT/best/finetune.json and result.json
	// work from any directory.
	for _, p := range []*string{&c.Task.Data, &c.Model} {
		if *p != "" && *p != Scratch {
			if abs, err := filepath.Abs(*p); err == nil {
				*p = abs
			}
		}
	}
	if c.Model != Scratch {
		c.Preset, c.ModelConfig = "", nil
	}
	src, err := loadSource(&c, def)
	if err != nil {
		return nil, err
	}
	p := &prepared{td: td, def: def, src: src, mc: src.cfg}
	p.mc.TaskHeads = nil // the pre-training heads are dropped
	if c.Dropout >= 0 {
		p.mc.Dropout = c.Dropout
	}
	if def.Modality == "text" {
		rows := p.mc.VocabSize
		if src.weights == nil {
			rows = 0 // a scratch model's embedding follows its vocabulary
		}
		if p.tok, err = text.ForModel(src.vocab, rows); err != nil {
			return nil, err
		}
		p.mc.VocabSize = p.tok.VocabSize()
		if p.L, err = textLength(c.MaxLength, &p.mc); err != nil {
			return nil, err
		}
		c.MaxLength = p.L
		s, err := td.loadTexts("train")
		if err != nil {
			return nil, err
		}
		idx, err := fewShot(s.Labels, classesOf(td), c.TrainExamples, c.PerClass, c.Seed)
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", def.Name, err)
		}
		if c.TrainExamples > 0 || c.PerClass > 0 {
			s = s.subset(idx)
		}
		p.trainTS, p.nTrain = s, s.Len()
	} else {
		ds, err := td.loadImages("train", p.mc.ImageSize, p.mc.Channels)
		if err != nil {
			return nil, err
		}
		if err := checkImageShape(ds, &p.mc, c.AdaptImages, opt); err != nil {
			return nil, err
		}
		labels := make([]int, ds.N)
		for i, l := range ds.Labels {
			labels[i] = int(l)
		}
		if c.TrainExamples > 0 || c.PerClass > 0 {
			idx, err := fewShot(labels, len(td.classes), c.TrainExamples, c.PerClass, c.Seed)
			if err != nil {
				return nil, fmt.Errorf("task %s: %w", def.Name, err)
			}
			if ds, err = ds.Subset(idx); err != nil {
				return nil, err
			}
		}
		p.trainDS, p.nTrain = ds, ds.N
	}
	if p.nTrain < c.Batch {
		return nil, fmt.Errorf("task %s: %d training examples, fewer than one batch of %d", def.Name, p.nTrain, c.Batch)
	}
	if c.Probe == nil {
		if err := c.setSteps(p.nTrain); err != nil {
			return nil, err
		}
	}
	head := model.PaperHead(HeadName, def.Kind, def.Modality, td.numOutputs())
	if c.Probe != nil {
		head.Hidden, head.Activation = false, ""
	}
	head.Labels = td.classes
	if def.Kind == model.HeadRegress {
		head.Labels = nil
	}
	p.mc.AddHead(head)
	if err := p.mc.Validate(); err != nil {
		return nil, err
	}
	p.c, p.out = c, opt.OutDir
	return p, nil
}

// classesOf is the number of classes of a classification task (0 for regression).
func classesOf(td *taskData) int {
	if td.def.Kind == model.HeadRegress {
		return 0
	}
	return len(td.classes)
}

// checkImageShape refuses images of another size or channel count than the
// model's, or, with adapt, says that they will be converted.
func checkImageShape(ds *images.Dataset, mc *model.Config, adapt bool, opt *Options) error {
	if ds.H == mc.ImageSize && ds.W == mc.ImageSize && ds.C == mc.Channels {
		return nil
	}
	what := fmt.Sprintf("the %s images are %d×%d×%d, the model takes %d×%d×%d", ds.Split, ds.H, ds.W, ds.C,
		mc.ImageSize, mc.ImageSize, mc.Channels)
	if !adapt {
		return fmt.Errorf("%s: give --adapt-images to resize and convert them", what)
	}
	opt.logf("adapting images: %s; resizing and converting them", what)
	return nil
}

// Run fine-tunes according to c and writes the run under opt.OutDir (see
// the package documentation); with c.Probe set it runs LinearProbe. It
// returns the test scores of the model selected on the validation split. A
// cancelled context stops training after the current step with a
// checkpoint; the run continues with Options.Resume.
func Run(ctx context.Context, backend compute.Backend, c Config, opt Options) (*Result, error) {
	p, err := prepare(c, &opt)
	if err != nil {
		return nil, err
	}
	cj, err := json.MarshalIndent(p.c, "", "  ")
	if err != nil {
		return nil, err
	}
	cj = append(cj, '\n')
	// The training loop locks the run directory too; taking the lock here
	// already keeps a second process from replacing or rewriting the run
	// (and covers the linear probe and the final test scoring).
	release, err := train.LockDir(opt.OutDir)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := prepareOut(&opt, cj); err != nil {
		return nil, err
	}
	if opt.Resume {
		if res, err := readResult(opt.OutDir); err == nil {
			opt.logf("%s is complete: %s", opt.OutDir, ResultFile)
			return res, nil
		}
	}
	if err := atomicfs.WriteBytes(filepath.Join(opt.OutDir, ConfigFile), cj); err != nil {
		return nil, err
	}
	if p.c.Probe != nil {
		return runProbe(ctx, backend, p, &opt)
	}
	return runFinetune(ctx, backend, p, &opt)
}

func readResult(dir string) (*Result, error) {
	var res Result
	if err := readJSON(filepath.Join(dir, ResultFile), &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// runFinetune trains on the training loop, selecting on validation, and
// scores the selected model on the test split(s).
func runFinetune(ctx context.Context, backend compute.Backend, p *prepared, opt *Options) (*Result, error) {
	c, def := &p.c, p.def
	stream := &Stream{Regression: def.Kind == model.HeadRegress}
	var err error
	if p.trainTS != nil {
		seqs, err := encodeTexts(p.tok, p.trainTS, def.Pair, p.L)
		if err != nil {
			return nil, err
		}
		if stream.Text, err = texts.NewBatcher(seqs, texts.BatchOptions{BatchSize: c.Batch, MaxLength: p.L, PAD: p.tok.PAD(), Seed: uint64(c.Seed)}); err != nil {
			return nil, err
		}
	} else {
		if stream.Images, err = images.NewLoader(p.trainDS, images.LoaderConfig{BatchSize: c.Batch, Size: p.mc.ImageSize,
			Channels: p.mc.Channels, Train: true, Seed: uint64(c.Seed)}); err != nil {
			return nil, fmt.Errorf("task %s: %w", def.Name, err)
		}
	}

	store, err := p.newStore(backend)
	if err != nil {
		return nil, err
	}
	trainer, err := train.NewTrainer(backend, store, lossFn(&p.mc, def), train.Config{Optimizer: c.Optimizer, Seed: c.Seed})
	if err != nil {
		return nil, err
	}
	defer trainer.Close()
	ev, err := newEvaluator(backend, store, &p.mc, def)
	if err != nil {
		return nil, err
	}
	nVal, err := prepareEval(ev, p.td, []string{def.ValSplit}, p.tok, p.L, c.EvalBatch, c.AdaptImages, opt)
	if err != nil {
		return nil, err
	}

	r := &run{p: p, opt: opt, store: store, ev: ev, nVal: nVal, sel: &selection{path: filepath.Join(opt.OutDir, EvalFile)}}
	ckEvery := c.CheckpointEvery
	if ckEvery == 0 {
		ckEvery = c.EvalEvery
	}
	loop, err := train.NewLoop(trainer, stream, train.LoopConfig{
		OutDir: opt.OutDir, TotalSteps: c.Steps, CheckpointEvery: ckEvery, KeepCheckpoints: 2,
		BatchSize: c.Batch, RunConfig: c, HostState: map[string]train.Stateful{"selection": r.sel},
		Progress: opt.Progress, Quiet: opt.Quiet, OnStep: r.onStep,
	})
	if err != nil {
		return nil, err
	}
	resumed := false
	if opt.Resume {
		if resumed, err = loop.ResumeLatest(); err != nil {
			return nil, err
		}
		if !resumed {
			opt.logf("no checkpoint in %s: starting from the first step", loop.CheckpointRoot())
		}
	}
	if !resumed {
		for _, f := range []string{MetricsFile, EvalFile} {
			if err := os.Remove(filepath.Join(opt.OutDir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
		}
	}
	err = loop.Run(ctx)
	stopped := errors.Is(err, errEarlyStop)
	if err != nil && !stopped {
		if errors.Is(err, train.ErrInterrupted) {
			return nil, fmt.Errorf("fine-tuning %w; continue it with --resume --out %s", err, opt.OutDir)
		}
		return nil, err
	}
	stepsRun, err := trainer.CurrentStep()
	if err != nil {
		return nil, err
	}
	if r.sel.Best == nil {
		return nil, fmt.Errorf("no evaluation was run")
	}
	return r.finish(backend, stepsRun, stopped)
}

// newStore holds the model: the source's weights, a fresh head (and, for a
// scratch run, fresh weights) drawn from the seed.
func (p *prepared) newStore(backend compute.Backend) (*mlmodel.Store, error) {
	store := mlmodel.NewStore()
	if err := store.SetRNGStateFromSeed(p.c.Seed); err != nil {
		return nil, err
	}
	if err := checkpoint.Fill(store, &p.mc, p.src.weights); err != nil {
		return nil, err
	}
	if err := store.InitializeVariables(backend, nil); err != nil {
		return nil, fmt.Errorf("initialising the model: %w", err)
	}
	return store, nil
}

// errEarlyStop ends the training loop when the validation score stopped improving.
var errEarlyStop = errors.New("early stopping")

// run is the state of a fine-tuning run's evaluations.
type run struct {
	p     *prepared
	opt   *Options
	store *mlmodel.Store
	ev    *evaluator // of the validation split
	nVal  int
	sel   *selection
}

// selection is the model selection so far; it is saved with every
// checkpoint (train.Stateful), and restoring it rewrites eval.jsonl.
type selection struct {
	Best    *evalRecord  `json:"best"`
	SinceUp int          `json:"since_up"` // evaluations since the last improvement
	Evals   []evalRecord `json:"evals"`
	path    string
}

// evalRecord is one line of eval.jsonl.
type evalRecord struct {
	Step    int     `json:"step"`
	Split   string  `json:"split"`
	Metrics Metrics `json:"metrics"`
	Best    bool    `json:"best"`
}

// State implements train.Stateful.
func (s *selection) State() (json.RawMessage, error) { return json.Marshal(s) }

// Restore implements train.Stateful.
func (s *selection) Restore(state json.RawMessage) error {
	if err := json.Unmarshal(state, s); err != nil {
		return fmt.Errorf("model selection state: %w", err)
	}
	var b []byte
	for _, e := range s.Evals {
		line, err := json.Marshal(e)
		if err != nil {
			return err
		}
		b = append(append(b, line...), '\n')
	}
	return atomicfs.WriteBytes(s.path, b)
}

func (s *selection) add(e evalRecord) error {
	s.Evals = append(s.Evals, e)
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(s.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(line, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// onStep is the training loop's evaluation hook: on schedule it scores the
// validation split, keeps the model if it is the best so far, and stops
// training when Patience evaluations in a row did not improve.
func (r *run) onStep(res *train.StepResult) error {
	c := &r.p.c
	step := res.Step
	if !(c.EvalEvery > 0 && step%c.EvalEvery == 0 || step == c.Steps) {
		return nil
	}
	m, err := r.ev.run()
	if err != nil {
		return fmt.Errorf("step %d: %w", step, err)
	}
	main := r.p.def.mainMetric()
	improved := r.sel.Best == nil || better(m[main], r.sel.Best.Metrics[main])
	e := evalRecord{Step: step, Split: r.p.def.ValSplit, Metrics: m, Best: improved}
	if improved {
		r.sel.SinceUp = 0
		r.sel.Best = &e
		if err := r.saveBest(step, m); err != nil {
			return fmt.Errorf("saving the best model at step %d: %w", step, err)
		}
	} else {
		r.sel.SinceUp++
	}
	if err := r.sel.add(e); err != nil {
		return fmt.Errorf("writing %s: %w", EvalFile, err)
	}
	if c.Patience > 0 && r.sel.SinceUp >= c.Patience && step < c.Steps {
		return errEarlyStop
	}
	return nil
}

// saveBest writes the model with its task record and tokenizer.
func (r *run) saveBest(step int, m Metrics) error {
	w, err := checkpoint.Weights(r.store, &r.p.mc)
	if err != nil {
		return err
	}
	return r.p.saveModel(w, step, m)
}

// from names the model a run started from.
func (p *prepared) from() string {
	if p.src.dir == "" {
		return Scratch
	}
	return p.src.dir
}

// saveModel writes OUT/best: the weights, finetune.json (without test
// scores: finish adds them) and the source's tokenizer files.
func (p *prepared) saveModel(w map[string][]float32, step int, val Metrics) error {
	dir := filepath.Join(p.out, BestDir)
	if err := checkpoint.SaveDir(dir, &p.mc, w); err != nil {
		return err
	}
	meta := Meta{Task: p.c.Task, Classes: p.td.classes, MaxLength: p.c.MaxLength, EvalBatch: p.c.EvalBatch,
		Step: step, Metric: p.def.mainMetric(), SelectedOn: p.def.ValSplit, ValidationMetrics: val, From: p.from(),
		AdaptImages: p.c.AdaptImages}
	meta.Name = p.def.Name
	if p.def.Modality != "text" {
		meta.MaxLength = 0
	}
	if err := writeJSON(filepath.Join(dir, MetaFile), meta); err != nil {
		return err
	}
	if p.src.vocab != "" && p.def.Modality == "text" {
		for _, f := range tokenizerFiles {
			if b, err := os.ReadFile(filepath.Join(p.src.vocab, f)); err == nil {
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// writeJSON writes v atomically: a reproduction reads result.json as "this
// cell is done", so a half-written one must never exist.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfs.WriteBytes(path, append(b, '\n'))
}

// finish scores the selected model once on the test split(s) and writes
// result.json and the test scores into best/finetune.json.
func (r *run) finish(backend compute.Backend, stepsRun int, stopped bool) (*Result, error) {
	p := r.p
	res := p.result(r.sel.Best.Step, r.sel.Best.Metrics, r.nVal)
	res.StepsRun, res.EarlyStopped = stepsRun, stopped
	res.EpochsRun = float64(stepsRun) * float64(p.c.Batch) / float64(p.nTrain)
	return res, p.scoreTest(backend, res, r.opt)
}

// result is the Result of a run before its test scores.
func (p *prepared) result(step int, val Metrics, nVal int) *Result {
	carved := p.td.carvedVal
	steps := p.c.Steps
	if p.c.Probe != nil {
		steps = 0 // a probe takes no training steps
	}
	return &Result{Task: p.def.Name, Data: p.c.Data, Split: p.def.TestSplits[0], Metric: p.def.mainMetric(),
		SelectedOn: p.def.ValSplit, ValidationCarved: carved, ValidationMetrics: val, Step: step, Steps: steps,
		TrainExamples: p.nTrain, ValidationExamples: nVal, BestDir: filepath.Join(p.out, BestDir), From: p.from()}
}

// scoreTest reads the test split(s), scores OUT/best on them, and writes
// the scores into res, best/finetune.json and result.json.
func (p *prepared) scoreTest(backend compute.Backend, res *Result, opt *Options) error {
	m, err := evaluateDir(backend, res.BestDir, p.td, p.def.TestSplits, p.tok, p.L, p.c.EvalBatch, p.c.AdaptImages, opt)
	if err != nil {
		return fmt.Errorf("scoring the selected model on the test split: %w", err)
	}
	res.Metrics = m
	meta, err := ReadMeta(res.BestDir)
	if err != nil {
		return err
	}
	meta.TestSplit, meta.Metrics = res.Split, m
	if err := writeJSON(filepath.Join(res.BestDir, MetaFile), meta); err != nil {
		return err
	}
	return writeJSON(filepath.Join(p.out, ResultFile), res)
}

// LoadConfig reads a Config from a JSON file (a run's config.json), on top
// of DefaultConfig; an unknown field is an error.
func LoadConfig(path string) (Config, error) {
	c := DefaultConfig()
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
