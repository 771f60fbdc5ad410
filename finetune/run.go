// Package finetune adapts a ViT-BERT model to one downstream task: a fresh
// 2-layer GELU head on the [CLS] embedding (docs/method.md, "Fine-tuning"), all
// weights trained with AdamW, warm-up and decay, periodic evaluation on the
// task's evaluation split, the best model kept, and early stopping.
//
// The starting point is any model directory (a pre-training run's
// OUT/model, an imported Hugging Face BERT or ViT checkpoint) or a fresh
// initialisation (Model "scratch"), the no-pre-training baseline. The
// pre-training heads are dropped.
//
// Output files under Options.OutDir:
//
//	config.json   the run's Config
//	metrics.jsonl {"step", "loss", "lr", "grad_norm", "elapsed_s"} per step
//	eval.jsonl    {"step", "metrics": {...}, "best": bool} per evaluation
//	best/         the best model (checkpoint.SaveDir format, head "task"),
//	              with finetune.json (task, data, evaluation settings, scores)
//	              and the tokenizer files of the source model, if any
//	result.json   Result: the task, the best evaluation's metrics and step
package finetune

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like the equations.
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/schollz/progressbar/v3"
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
	Steps     int `json:"steps"`
	Batch     int `json:"batch"`
	EvalBatch int `json:"eval_batch"`
	// MaxLength pads and truncates texts (0: 128, capped by the model's
	// position table; larger than the table is an error).
	MaxLength int `json:"max_length"`
	// Dropout, if ≥ 0, replaces the model's dropout rate.
	Dropout   float64               `json:"dropout"`
	Optimizer train.OptimizerConfig `json:"optimizer"`
	// WarmupFrac sets Optimizer.WarmupSteps as a share of Steps when that is 0.
	WarmupFrac float64 `json:"warmup_frac"`
	// EvalEvery N steps the evaluation split is scored (0: only at the end;
	// the last step is always scored).
	EvalEvery int `json:"eval_every"`
	// Patience, if positive, stops training after that many evaluations
	// without improvement of the main metric.
	Patience int   `json:"patience"`
	Seed     int64 `json:"seed"`
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
	OutDir   string
	Progress io.Writer // progress bar (nil: standard error)
	Quiet    bool
}

// Result is result.json: the best evaluation.
type Result struct {
	Task    string  `json:"task"`
	Data    string  `json:"data,omitempty"`
	Split   string  `json:"split"`  // the evaluation split that picks the best model
	Metric  string  `json:"metric"` // the metric that picks it
	Metrics Metrics `json:"metrics"`
	Step    int     `json:"step"`
	// StepsRun is how many steps were trained; fewer than Config.Steps after
	// early stopping.
	StepsRun     int    `json:"steps_run"`
	EarlyStopped bool   `json:"early_stopped"`
	BestDir      string `json:"best_dir"`
	From         string `json:"from"`
}

// Files under Options.OutDir.
const (
	BestDir     = "best"
	EvalFile    = "eval.jsonl"
	ResultFile  = "result.json"
	MetricsFile = "metrics.jsonl"
)

// finish fills the derived settings and checks the configuration.
func (c *Config) finish() error {
	if c.Steps <= 0 {
		return fmt.Errorf("steps must be positive, got %d", c.Steps)
	}
	if c.Batch <= 0 {
		return fmt.Errorf("batch must be positive, got %d", c.Batch)
	}
	if c.EvalBatch <= 0 {
		c.EvalBatch = c.Batch
	}
	if c.EvalEvery < 0 || c.Patience < 0 || c.MaxLength < 0 {
		return fmt.Errorf("eval_every, patience and max_length must be ≥ 0")
	}
	if c.Dropout >= 1 {
		return fmt.Errorf("dropout must be below 1, got %g", c.Dropout)
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

// Run fine-tunes according to c and writes the run under opt.OutDir (see
// the package documentation). It returns the best evaluation. A cancelled
// context stops training after the current step; the best model so far is
// kept and the context's error returned with the result.
func Run(ctx context.Context, backend compute.Backend, c Config, opt Options) (*Result, error) {
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
	mc := src.cfg
	mc.TaskHeads = nil // the pre-training heads are dropped
	if c.Dropout >= 0 {
		mc.Dropout = c.Dropout
	}

	// Data: the training stream and the evaluation splits.
	stream := &Stream{Regression: def.Kind == model.HeadRegress}
	var tok *text.Tokenizer
	L := 0
	if def.Modality == "text" {
		rows := mc.VocabSize
		if src.weights == nil {
			rows = 0 // a scratch model's embedding follows its vocabulary
		}
		if tok, err = text.ForModel(src.vocab, rows); err != nil {
			return nil, err
		}
		mc.VocabSize = tok.VocabSize()
		if L, err = textLength(c.MaxLength, &mc); err != nil {
			return nil, err
		}
		c.MaxLength = L
		s, err := td.loadTexts("train")
		if err != nil {
			return nil, err
		}
		seqs, err := encodeTexts(tok, s, def.Pair, L)
		if err != nil {
			return nil, err
		}
		if len(seqs) < c.Batch {
			return nil, fmt.Errorf("task %s: %d training examples, fewer than one batch of %d", def.Name, len(seqs), c.Batch)
		}
		if stream.Text, err = texts.NewBatcher(seqs, texts.BatchOptions{BatchSize: c.Batch, MaxLength: L, PAD: tok.PAD(), Seed: uint64(c.Seed)}); err != nil {
			return nil, err
		}
	} else {
		ds, err := td.loadImages("train", mc.ImageSize, mc.Channels)
		if err != nil {
			return nil, err
		}
		if stream.Images, err = images.NewLoader(ds, images.LoaderConfig{BatchSize: c.Batch, Size: mc.ImageSize,
			Channels: mc.Channels, Train: true, Seed: uint64(c.Seed)}); err != nil {
			return nil, fmt.Errorf("task %s: %w", def.Name, err)
		}
	}
	head := model.PaperHead(HeadName, def.Kind, def.Modality, td.numOutputs())
	head.Labels = td.classes
	if def.Kind == model.HeadRegress {
		head.Labels = nil
	}
	mc.AddHead(head)
	if err := mc.Validate(); err != nil {
		return nil, err
	}

	// The model: pre-trained weights, a fresh head.
	store := mlmodel.NewStore()
	if err := store.SetRNGStateFromSeed(c.Seed); err != nil {
		return nil, err
	}
	if err := checkpoint.Fill(store, &mc, src.weights); err != nil {
		return nil, err
	}
	if err := store.InitializeVariables(backend, nil); err != nil {
		return nil, fmt.Errorf("initialising the model: %w", err)
	}
	trainer, err := train.NewTrainer(backend, store, lossFn(&mc, def), train.Config{Optimizer: c.Optimizer, Seed: c.Seed})
	if err != nil {
		return nil, err
	}
	defer trainer.Close()
	ev, err := newEvaluator(backend, store, &mc, def)
	if err != nil {
		return nil, err
	}
	if err := prepareEval(ev, td, def.EvalSplits, tok, L, c.EvalBatch); err != nil {
		return nil, err
	}

	if err := os.MkdirAll(opt.OutDir, 0o755); err != nil {
		return nil, err
	}
	cj, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(opt.OutDir, "config.json"), append(cj, '\n'), 0o644); err != nil {
		return nil, err
	}
	r := &run{c: &c, opt: opt, def: def, mc: &mc, store: store, trainer: trainer, ev: ev, stream: stream, src: src,
		classes: td.classes}
	return r.loop(ctx)
}

// run is the state of the training loop.
type run struct {
	c       *Config
	opt     Options
	def     *taskDef
	mc      *model.Config
	store   *mlmodel.Store
	trainer *train.Trainer
	ev      *evaluator
	stream  *Stream
	src     *source
	classes []string

	best    *Result
	sinceUp int // evaluations since the last improvement
}

func (r *run) loop(ctx context.Context) (res *Result, err error) {
	metrics, err := createJSONL(filepath.Join(r.opt.OutDir, MetricsFile))
	if err != nil {
		return nil, err
	}
	defer closeInto(metrics, &err)
	evals, err := createJSONL(filepath.Join(r.opt.OutDir, EvalFile))
	if err != nil {
		return nil, err
	}
	defer closeInto(evals, &err)

	var bar *progressbar.ProgressBar
	if !r.opt.Quiet {
		w := r.opt.Progress
		if w == nil {
			w = os.Stderr
		}
		bar = progressbar.NewOptions(r.c.Steps, progressbar.OptionSetWriter(w), progressbar.OptionShowCount(),
			progressbar.OptionShowIts(), progressbar.OptionSetItsString("steps"), progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionSetWidth(20),
			progressbar.OptionSetDescription("finetune "+r.def.Name))
		defer func() { _ = bar.Exit() }()
	}
	main := r.def.mainMetric()
	start := time.Now()
	step, stopped := 0, false
	var ctxErr error
	for step < r.c.Steps && !stopped {
		if err := ctx.Err(); err != nil {
			ctxErr = err
			break
		}
		batch, err := r.stream.Next()
		if err != nil {
			return nil, fmt.Errorf("reading the batch of step %d: %w", step+1, err)
		}
		sr, err := r.trainer.Step(batch...)
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", step+1, err)
		}
		step = sr.Step
		loss := sr.LossText
		if sr.HasImage {
			loss = sr.LossImage
		}
		if err := metrics.write(map[string]any{"step": step, "loss": loss, "lr": sr.LearningRate,
			"grad_norm": sr.GradNorm, "elapsed_s": time.Since(start).Seconds()}); err != nil {
			return nil, err
		}
		desc := fmt.Sprintf("loss %.4f", loss)
		if r.c.EvalEvery > 0 && step%r.c.EvalEvery == 0 || step == r.c.Steps {
			m, improved, err := r.evaluate(step)
			if err != nil {
				return nil, err
			}
			if err := evals.write(map[string]any{"step": step, "metrics": m, "best": improved}); err != nil {
				return nil, err
			}
			stopped = r.c.Patience > 0 && r.sinceUp >= r.c.Patience && step < r.c.Steps
		}
		if bar != nil {
			if r.best != nil {
				desc += fmt.Sprintf(" | best %s %.4f @%d", main, r.best.Metrics[main], r.best.Step)
			}
			bar.Describe(desc)
			_ = bar.Set(step)
		}
	}
	if r.best == nil {
		if ctxErr != nil {
			return nil, fmt.Errorf("fine-tuning interrupted at step %d before any evaluation: %w", step, ctxErr)
		}
		return nil, fmt.Errorf("no evaluation was run")
	}
	r.best.StepsRun, r.best.EarlyStopped = step, stopped
	b, err := json.MarshalIndent(r.best, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(r.opt.OutDir, ResultFile), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	if ctxErr != nil {
		return r.best, fmt.Errorf("fine-tuning interrupted at step %d (best model so far in %s): %w", step, r.best.BestDir, ctxErr)
	}
	return r.best, nil
}

// evaluate scores the evaluation splits and keeps the model if it is the best.
func (r *run) evaluate(step int) (Metrics, bool, error) {
	m, err := r.ev.run()
	if err != nil {
		return nil, false, fmt.Errorf("step %d: %w", step, err)
	}
	main := r.def.mainMetric()
	if r.best != nil && !better(m[main], r.best.Metrics[main]) {
		r.sinceUp++
		return m, false, nil
	}
	r.sinceUp = 0
	dir := filepath.Join(r.opt.OutDir, BestDir)
	if err := r.saveBest(dir, step, m); err != nil {
		return nil, false, fmt.Errorf("saving the best model at step %d: %w", step, err)
	}
	from := r.src.dir
	if from == "" {
		from = Scratch
	}
	r.best = &Result{Task: r.def.Name, Data: r.c.Data, Split: r.def.EvalSplits[0], Metric: main, Metrics: m,
		Step: step, BestDir: dir, From: from}
	return m, true, nil
}

// saveBest writes the model with its task record and tokenizer.
func (r *run) saveBest(dir string, step int, m Metrics) error {
	w, err := checkpoint.Weights(r.store, r.mc)
	if err != nil {
		return err
	}
	if err := checkpoint.SaveDir(dir, r.mc, w); err != nil {
		return err
	}
	from := r.src.dir
	if from == "" {
		from = Scratch
	}
	meta := Meta{Task: r.c.Task, Classes: r.classes, MaxLength: r.c.MaxLength, EvalBatch: r.c.EvalBatch,
		Step: step, Metric: r.def.mainMetric(), Metrics: m, From: from}
	meta.Name = r.def.Name
	if r.def.Modality != "text" {
		meta.MaxLength = 0
	}
	b, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, MetaFile), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if r.src.vocab != "" && r.def.Modality == "text" {
		for _, f := range tokenizerFiles {
			if b, err := os.ReadFile(filepath.Join(r.src.vocab, f)); err == nil {
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// jsonl appends JSON lines to a fresh file.
type jsonl struct {
	f *os.File
}

func createJSONL(path string) (*jsonl, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &jsonl{f: f}, nil
}

func (j *jsonl) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("writing %s: %w", j.f.Name(), err)
	}
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("writing %s: %w", j.f.Name(), err)
	}
	return nil
}

func closeInto(j *jsonl, err *error) {
	if cerr := j.f.Close(); *err == nil && cerr != nil {
		*err = cerr
	}
}
