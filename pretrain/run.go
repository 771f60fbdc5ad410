package pretrain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gomlx/compute"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/data/images"
	"github.com/vitbert/vitbert/infer"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/text"
	"github.com/vitbert/vitbert/train"
)

// ModelDir is where a run writes its final model (vitbert's own format),
// usable as a teacher or for fine-tuning.
const ModelDir = "model"

// Options are the run's non-configuration settings.
type Options struct {
	OutDir   string
	Resume   bool      // continue from the latest checkpoint in OutDir
	Progress io.Writer // progress bar (nil: stderr)
	Quiet    bool
	Signals  bool // save a checkpoint on SIGINT/SIGTERM
	// StopAfter, if positive, ends the run (with a checkpoint) after that
	// many steps, as an interruption would, without changing the schedule.
	StopAfter int
	// ProbeSteps, if set, are the steps at which activation maps are taken
	// (step 0: before training); masks are snapshotted at every mask update.
	ProbeSteps []int
}

// Setup is everything a run needs, built from a Config: exposed so the
// benchmark and tests can drive the same step.
type Setup struct {
	Config  Config
	Backend compute.Backend
	Store   *mlmodel.Store
	Trainer *train.Trainer
	Stream  *Stream
	Classes []string
}

// NewSetup loads data and teachers, builds the model and compiles nothing yet.
func NewSetup(backend compute.Backend, c Config) (*Setup, error) {
	c.Finish()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s := &Setup{Backend: backend, Stream: &Stream{}}
	if c.HasText() {
		tok, err := text.Default()
		if err != nil {
			return nil, err
		}
		if tok.VocabSize() != c.Model.VocabSize {
			return nil, fmt.Errorf("the tokenizer has %d tokens but model.vocab_size is %d", tok.VocabSize(), c.Model.VocabSize)
		}
		docs, err := LoadCorpus(c.Data.Corpus)
		if err != nil {
			return nil, fmt.Errorf("loading the corpus: %w", err)
		}
		if s.Stream.Text, err = NewTextData(&c, tok, docs); err != nil {
			return nil, fmt.Errorf("corpus %s: %w", c.Data.Corpus, err)
		}
		c.Model.AddHead(model.PaperHead(MLMHead, model.HeadMLM, "text", c.Model.VocabSize))
	}
	if c.HasImage() {
		ds, err := LoadImages(c.Data.Images)
		if err != nil {
			return nil, fmt.Errorf("loading the images: %w", err)
		}
		s.Classes = ds.Classes
		s.Stream.Images, err = images.NewLoader(ds, images.LoaderConfig{
			BatchSize: c.ImageBatch, Size: c.Model.ImageSize, Channels: c.Model.Channels, Train: true,
			Augment: images.Augment{Pad: c.Data.CropPad, Flip: c.Data.Flip}, Seed: uint64(c.Seed),
		})
		if err != nil {
			return nil, fmt.Errorf("images %s: %w", c.Data.Images, err)
		}
		h := model.PaperHead(ImageHead, model.HeadClassify, "image", len(ds.Classes))
		h.Labels = ds.Classes
		c.Model.AddHead(h)
	}
	var err error
	if c.DistillText.Teacher != "" {
		if s.Stream.TeacherText, s.Stream.TextHead, err = loadTeacher(backend, c.DistillText.Teacher, model.HeadMLM, c.Model.VocabSize); err != nil {
			return nil, err
		}
	}
	if c.DistillImage.Teacher != "" {
		if s.Stream.TeacherImage, s.Stream.ImageHead, err = loadTeacher(backend, c.DistillImage.Teacher, model.HeadClassify, len(s.Classes)); err != nil {
			return nil, err
		}
	}
	if s.Store, err = model.NewStore(backend, &c.Model, c.Seed); err != nil {
		return nil, err
	}
	prec, err := model.ParsePrecision(c.Precision)
	if err != nil {
		return nil, err
	}
	model.SetPrecision(s.Store, prec)
	s.Trainer, err = train.NewTrainer(backend, s.Store, LossFn(&c), train.Config{
		Optimizer: c.Optimizer, Mask: c.Mask, SharedPrefix: "/" + model.EncoderScope, Seed: c.Seed,
		Devices: c.Devices, Mesh: c.Mesh,
	})
	if err != nil {
		return nil, err
	}
	s.Config = c
	return s, nil
}

// LoadImages opens the training split of an image data set.
func LoadImages(spec string) (*images.Dataset, error) {
	if spec == "" || spec == "embedded" {
		train, _, err := images.Default()
		return train, err
	}
	return images.Open(spec, "train")
}

// loadTeacher loads a frozen teacher and finds its head of the given kind.
func loadTeacher(backend compute.Backend, dir, kind string, outputs int) (*infer.Predictor, string, error) {
	m, err := checkpoint.LoadDir(dir)
	if err != nil {
		return nil, "", fmt.Errorf("teacher: %w", err)
	}
	for _, h := range m.Config.TaskHeads {
		if h.Kind == kind {
			if h.Outputs != outputs {
				return nil, "", fmt.Errorf("teacher %s: head %q has %d outputs, the student's task has %d", dir, h.Name, h.Outputs, outputs)
			}
			p, err := infer.New(backend, m)
			if err != nil {
				return nil, "", fmt.Errorf("teacher %s: %w", dir, err)
			}
			return p, h.Name, nil
		}
	}
	return nil, "", fmt.Errorf("teacher %s has no %s head", dir, kind)
}

// Run trains according to c, writing metrics, checkpoints and the final
// model under opt.OutDir.
func Run(ctx context.Context, backend compute.Backend, c Config, opt Options) error {
	// The training loop locks the run directory too; taking the lock here
	// already keeps a second process from rewriting config.json.
	release, err := train.LockDir(opt.OutDir)
	if err != nil {
		return err
	}
	defer release()
	s, err := NewSetup(backend, c)
	if err != nil {
		return err
	}
	c = s.Config
	if err := os.WriteFile(filepath.Join(opt.OutDir, "config.json"), []byte(c.JSON()+"\n"), 0o644); err != nil {
		return err
	}
	batch := 0
	if c.HasText() {
		batch += c.TextBatch
	}
	if c.HasImage() {
		batch += c.ImageBatch
	}
	total := c.Steps
	if opt.StopAfter > 0 && opt.StopAfter < total {
		total = opt.StopAfter
	}
	var onStep func(*train.StepResult) error
	var prober *prober
	if len(opt.ProbeSteps) > 0 {
		if prober, err = newProber(s, opt.OutDir, opt.ProbeSteps); err != nil {
			return err
		}
		onStep = prober.onStep
	}
	loop, err := train.NewLoop(s.Trainer, s.Stream, train.LoopConfig{
		OnStep: onStep,
		OutDir: opt.OutDir, TotalSteps: total, CheckpointEvery: c.CheckpointEvery,
		KeepCheckpoints: c.KeepCheckpoints, LogEvery: c.LogEvery, BatchSize: batch, RunConfig: c,
		Progress: opt.Progress, Quiet: opt.Quiet, CatchSignals: opt.Signals,
	})
	if err != nil {
		return err
	}
	if opt.Resume {
		ok, err := loop.ResumeLatest()
		if err != nil {
			return err
		}
		if !ok && !opt.Quiet {
			fmt.Fprintf(os.Stderr, "no checkpoint in %s: starting from scratch\n", opt.OutDir)
		}
	} else if cps, _ := train.ListCheckpoints(loop.CheckpointRoot()); len(cps) > 0 {
		return fmt.Errorf("%s already holds checkpoints: pass --resume to continue, or choose another --out", opt.OutDir)
	}
	// The step-0 probe sees the initial weights: only a run that starts
	// fresh (nothing to resume) takes it.
	if cur, err := s.Trainer.CurrentStep(); err == nil && cur == 0 && prober != nil && prober.steps[0] {
		if err := prober.activations(0); err != nil {
			return err
		}
	}
	if err := loop.Run(ctx); err != nil {
		if errors.Is(err, train.ErrInterrupted) {
			return fmt.Errorf("%w; continue with --resume", err)
		}
		return err
	}
	if total < c.Steps {
		return nil
	}
	w, err := checkpoint.Weights(s.Store, &c.Model)
	if err != nil {
		return err
	}
	return checkpoint.SaveDir(filepath.Join(opt.OutDir, ModelDir), &c.Model, w)
}
