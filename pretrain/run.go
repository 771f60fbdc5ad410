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
	"github.com/vitbert/vitbert/atomicfs"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/data/images"
	"github.com/vitbert/vitbert/data/texts"
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
	Config   Config
	Backend  compute.Backend
	Store    *mlmodel.Store // the student at the root, the teachers under their scopes
	Teachers Teachers
	Trainer  *train.Trainer
	Stream   *Stream
	Classes  []string
	Data     DataRecord // the data split and the corpus's statistics

	heldText   *TextData      // held-out texts (nil: none)
	heldImages *images.Loader // held-out images (nil: none)
	eval       *evaluator     // nil unless Config.EvalEvery > 0
}

// NewSetup loads data and teachers, builds the model and compiles nothing yet.
func NewSetup(backend compute.Backend, c Config) (*Setup, error) {
	c.Finish()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s := &Setup{Backend: backend, Stream: &Stream{}}
	if c.HasText() {
		docs, err := LoadCorpus(c.Data.Corpus)
		if err != nil {
			return nil, fmt.Errorf("loading the corpus: %w", err)
		}
		// Held-out documents stay out of the vocabulary too.
		trainDocs, heldDocs := SplitDocuments(docs, c.Data.HeldOut)
		tok, err := Vocabulary(c.Data, trainDocs)
		if err != nil {
			return nil, err
		}
		c.Model.VocabSize = tok.VocabSize()
		if dir := c.DistillText.Teacher; dir != "" {
			tt, err := text.ForModel(dir, 0)
			if err != nil {
				return nil, fmt.Errorf("text teacher: %w", err)
			}
			if !tt.SameVocabulary(tok) {
				return nil, fmt.Errorf("text teacher %s: its vocabulary (%d tokens) is not the run's (%d tokens); distillation needs the same one", dir, tt.VocabSize(), tok.VocabSize())
			}
		}
		if s.Stream.Text, err = NewTextData(&c, tok, trainDocs); err != nil {
			return nil, fmt.Errorf("corpus %s: %w", c.Data.Corpus, err)
		}
		var held *TextData
		if len(heldDocs) > 0 {
			hc := c
			hc.Seed = heldOutSeed
			if held, err = NewTextData(&hc, tok, heldDocs); err != nil {
				return nil, fmt.Errorf("corpus %s, %d held-out documents: %w (raise data.held_out)", c.Data.Corpus, len(heldDocs), err)
			}
			s.heldText = held
		}
		tr := &textRecord{Documents: len(docs), Sequences: len(s.Stream.Text.Seqs), VocabSize: tok.VocabSize()}
		for _, d := range heldDocs {
			tr.HeldOutDocuments = append(tr.HeldOutDocuments, d.Source)
		}
		var heldSeqs []texts.Sequence
		if held != nil {
			heldSeqs = held.Seqs
			tr.HeldOutSequences = len(heldSeqs)
		}
		tr.Unigram = unigramStats(s.Stream.Text.Seqs, heldSeqs, tok.IsSpecial, tok.VocabSize())
		s.Data.Text = tr
		h := model.PaperHead(MLMHead, model.HeadMLM, "text", c.Model.VocabSize)
		h.Tied = c.TiedMLM
		c.Model.AddHead(h)
	}
	if c.HasImage() {
		ds, err := LoadImages(c.Data.Images)
		if err != nil {
			return nil, fmt.Errorf("loading the images: %w", err)
		}
		s.Classes = ds.Classes
		trainDS, heldDS, err := SplitImages(ds, c.Data.HeldOut)
		if err != nil {
			return nil, err
		}
		s.Data.Image = &imageRecord{Train: trainDS.N}
		if heldDS != nil {
			s.Data.Image.HeldOut = heldDS.N
			if s.heldImages, err = images.NewLoader(heldDS, images.LoaderConfig{
				BatchSize: c.ImageBatch, Size: c.Model.ImageSize, Channels: c.Model.Channels,
			}); err != nil {
				return nil, fmt.Errorf("held-out images: %w", err)
			}
		}
		s.Stream.Images, err = images.NewLoader(trainDS, images.LoaderConfig{
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
	if s.Store, err = model.NewStore(backend, &c.Model, c.Seed); err != nil {
		return nil, err
	}
	if c.DistillText.Teacher != "" {
		if s.Teachers.Text, err = loadTeacher(s.Store, TextTeacherScope, c.DistillText.Teacher, &c.Model, "text", c.Model.VocabSize); err != nil {
			return nil, err
		}
	}
	if c.DistillImage.Teacher != "" {
		if s.Teachers.Image, err = loadTeacher(s.Store, ImageTeacherScope, c.DistillImage.Teacher, &c.Model, "image", len(s.Classes)); err != nil {
			return nil, err
		}
	}
	prec, err := model.ParsePrecision(c.Precision)
	if err != nil {
		return nil, err
	}
	model.SetPrecision(s.Store, prec)
	if s.Trainer, err = NewTrainer(backend, s.Store, &c, s.Teachers); err != nil {
		return nil, err
	}
	if c.EvalEvery > 0 {
		if s.eval, err = newEvaluator(backend, s.Store, &c, s.heldText, s.heldImages); err != nil {
			return nil, err
		}
	}
	s.Config = c
	return s, nil
}

// evaluate is the loop's held-out evaluation: every EvalEvery steps and at
// the last step of the schedule (not where a run is stopped early, so that
// a stopped and resumed run logs what an uninterrupted one does).
func (s *Setup) evaluate(step int) (map[string]float64, error) {
	if s.eval == nil || step%s.Config.EvalEvery != 0 && step != s.Config.Steps {
		return nil, nil
	}
	return s.eval.evaluate(step)
}

// LoadImages opens the training split of an image data set.
func LoadImages(spec string) (*images.Dataset, error) {
	if spec == "" || spec == "embedded" {
		train, _, err := images.Default()
		return train, err
	}
	return images.Open(spec, "train")
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
	if err := atomicfs.WriteBytes(filepath.Join(opt.OutDir, "config.json"), []byte(c.JSON()+"\n")); err != nil {
		return err
	}
	if err := s.Data.write(opt.OutDir); err != nil {
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
		EvalEvery: c.EvalEvery, Evaluate: s.evaluate,
		Progress: opt.Progress, Quiet: opt.Quiet,
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
	dir := filepath.Join(opt.OutDir, ModelDir)
	if err := checkpoint.SaveDir(dir, &c.Model, w); err != nil {
		return err
	}
	if s.Stream.Text != nil { // the model's own vocabulary goes with it
		return s.Stream.Text.Tok.Save(dir)
	}
	return nil
}
