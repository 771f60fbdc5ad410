package report

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gomlx/compute"
	"github.com/vitbert/vitbert/finetune"
	"github.com/vitbert/vitbert/pretrain"
)

// Finetuner returns the FinetuneFn that runs vitbert's fine-tuning: the
// model selected on the validation split, its metrics those of the test
// split, scored once. A cell whose result.json exists is read back, not run
// again; a cell interrupted before its result resumes from its checkpoint.
func Finetuner(backend compute.Backend, plan *Plan, progress io.Writer) FinetuneFn {
	return cellRunner(backend, plan, progress, nil)
}

// FewShotFinetuner is Finetuner on p.PerClass training examples of every
// class, drawn by the cell's seed (so each seed fine-tunes on another
// subset), evaluated every p.EvalEvery steps where that is set.
func FewShotFinetuner(backend compute.Backend, plan *Plan, progress io.Writer, p Protocol) FinetuneFn {
	return cellRunner(backend, plan, progress, func(fc *finetune.Config) {
		fc.PerClass = p.PerClass
		if p.EvalEvery > 0 {
			fc.EvalEvery = p.EvalEvery
		}
	})
}

// Prober returns the FinetuneFn of a linear probe (finetune.LinearProbe
// with finetune.DefaultProbe): a linear classifier on the frozen encoder's
// features, its L2 penalty chosen on the validation split, its metrics
// those of the test split. The steps argument is not used.
func Prober(backend compute.Backend, plan *Plan, progress io.Writer) FinetuneFn {
	return ProberWith(backend, plan, progress, nil)
}

// ProberWith is Prober with the probe's settings (nil: finetune.DefaultProbe).
func ProberWith(backend compute.Backend, plan *Plan, progress io.Writer, probe *finetune.ProbeConfig) FinetuneFn {
	if probe == nil {
		probe = finetune.DefaultProbe()
	}
	return cellRunner(backend, plan, progress, func(fc *finetune.Config) { c := *probe; fc.Probe = &c })
}

// cellRunner runs one fine-tuning cell; edit, if set, adjusts its
// configuration.
func cellRunner(backend compute.Backend, plan *Plan, progress io.Writer, edit func(*finetune.Config)) FinetuneFn {
	return func(ctx context.Context, modelDir string, cfg *pretrain.Config, task TaskRef, seed, steps int, outDir string) (map[string]float64, string, error) {
		fc := finetune.DefaultConfig()
		fc.Task = finetune.Task{Name: task.Name, Data: task.Data}
		fc.Steps, fc.Seed = steps, int64(seed)
		if _, batch := plan.taskBudget(task); batch > 0 {
			fc.Batch = batch
		}
		if plan.FinetuneLR > 0 {
			fc.Optimizer.LearningRate = plan.FinetuneLR
		}
		fc.EvalEvery = plan.EvalEvery
		fc.MaxLength = cfg.Model.MaxTextLength
		if edit != nil {
			edit(&fc)
		}
		if fc.Probe != nil && task.ProbeExamples > 0 {
			fc.TrainExamples = task.ProbeExamples
		}
		if res, err := finishedCell(outDir, &fc); res != nil || err != nil {
			if err != nil {
				return nil, "", err
			}
			return res.Metrics, res.Metric, nil
		}
		if modelDir == "" {
			fc.Model = finetune.Scratch
			mc := cfg.Model
			mc.TaskHeads = nil
			fc.ModelConfig = &mc
			// The baseline reads text with the pre-trained models' vocabulary.
			if cfg.Data.Vocab != "" {
				fc.Vocab = cfg.Data.Vocab
			} else if cfg.Data.VocabSize > 0 {
				// Called without a pre-trained run's vocabulary (Runner passes
				// one): learn the same one, from the training documents.
				docs, err := pretrain.LoadCorpus(cfg.Data.Corpus)
				if err != nil {
					return nil, "", err
				}
				trainDocs, _ := pretrain.SplitDocuments(docs, cfg.Data.HeldOut)
				tok, err := pretrain.Vocabulary(cfg.Data, trainDocs)
				if err != nil {
					return nil, "", err
				}
				// Beside the cell's run directory, which finetune wants empty.
				fc.Vocab = outDir + ".vocab"
				if err := tok.Save(fc.Vocab); err != nil {
					return nil, "", err
				}
			}
		} else {
			fc.Model = modelDir
		}
		_, err := os.Stat(filepath.Join(outDir, finetune.ConfigFile))
		opt := finetune.Options{OutDir: outDir, Progress: progress, Quiet: progress == nil, Resume: err == nil}
		res, err := finetune.Run(ctx, backend, fc, opt)
		if err != nil {
			return nil, "", err
		}
		return res.Metrics, res.Metric, nil
	}
}

// finishedCell reads back a cell whose result.json exists (nil, nil when it
// has none), after checking that the budget it was scored with is the one
// the plan gives now: a cell is not run again, so a changed plan would
// otherwise be reported with the old cell's numbers.
func finishedCell(dir string, want *finetune.Config) (*finetune.Result, error) {
	resultPath := filepath.Join(dir, finetune.ResultFile)
	b, err := os.ReadFile(resultPath)
	if err != nil {
		return nil, nil
	}
	var res finetune.Result
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("%s: %w", resultPath, err)
	}
	cfgPath := filepath.Join(dir, finetune.ConfigFile)
	b, err = os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("%s has a result but no configuration: %w", dir, err)
	}
	var got finetune.Config
	if err := json.Unmarshal(b, &got); err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	type field struct {
		name      string
		run, plan any
	}
	fields := []field{{"seed", got.Seed, want.Seed}, {"per_class", got.PerClass, want.PerClass},
		{"train_examples", got.TrainExamples, want.TrainExamples}, {"probe", got.Probe != nil, want.Probe != nil}}
	if want.Probe == nil { // a probe's fit does not depend on these
		fields = append(fields, field{"steps", got.Steps, want.Steps}, field{"batch", got.Batch, want.Batch},
			field{"eval_every", got.EvalEvery, want.EvalEvery}, field{"learning_rate", got.Optimizer.LearningRate, want.Optimizer.LearningRate})
	}
	for _, f := range fields {
		if f.run != f.plan {
			return nil, fmt.Errorf("%s was scored with %s %v, the plan now gives %v: remove the folder to score it again, or write to another --out", dir, f.name, f.run, f.plan)
		}
	}
	return &res, nil
}

// PlanPreset returns a named reproduction plan: "demo" runs on the embedded
// data in minutes; "tiny" is the full laptop-scale comparison on the real
// data sets fetched into dataDir (vitbert data fetch all).
func PlanPreset(name, dataDir string) (Plan, error) {
	pc, err := pretrain.Preset("tiny")
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Name: name, FinetuneBatch: 32, FinetuneLR: 5e-4, Seeds: []int{1}, AblationSeeds: []int{1}, Probes: 4}
	switch name {
	case "demo":
		// Sized for about five minutes on 2 CPU cores: 7×7 patches (16 per
		// 28×28 image), a 2,000-token vocabulary learned from the corpus's
		// training documents (tied MLM output), teachers as long as the
		// students (the single-modality rows teach).
		pc.Steps, pc.CheckpointEvery = 200, 0
		pc.TextBatch, pc.ImageBatch = 8, 64
		pc.Model.MaxTextLength = 64
		pc.Model.PatchSize = 7
		pc.Data.VocabSize = 2000
		pc.Optimizer.LearningRate = 2e-3
		pc.EvalEvery = 100
		pc.TeacherStepsFactor = 1
		p.FinetuneSteps, p.EvalEvery, p.FinetuneBatch, p.FinetuneLR = 200, 100, 32, 1e-3
		p.Seeds = []int{1}
		p.Probes = 0
		// A shorter penalty path than the default keeps the probes within the
		// demo's minutes; each fit still runs to its tolerance.
		p.Protocols = []Protocol{{Name: ProtocolProbe, Seeds: []int{1}, Probe: &finetune.ProbeConfig{L2: []float64{1e-1, 1e-2, 1e-3}, MaxIter: 1000, Tol: 1e-3}}, {Name: ProtocolFinetune}}
		p.Tasks = []TaskRef{
			{Name: finetune.TaskEmbeddedImages, Label: "Fashion-MNIST (10k)", Modality: "image", Steps: 300, Batch: 64},
			{Name: finetune.TaskEmbeddedText, Label: "SpamAssassin", Modality: "text", Steps: 100, Batch: 16},
		}
	case "tiny":
		// The laptop-scale comparison on real data, sized (measured) for
		// about 75 minutes on 2 CPU cores: two pre-training seeds of every
		// main variant, one pair of teachers 2× longer than the students
		// (shared by both seeds, as the paper distils from one fixed BERT
		// and ViT), a vocabulary learned from the corpus, and two ways of
		// scoring each encoder (a linear probe, and full fine-tuning: three
		// epochs on MNIST). Few-shot fine-tuning and the ablations
		// (distillation and mask settings, mask ranking, PCGrad and CAGrad)
		// are in the machinery (Protocol, Plan.Ablations, Plan.AblationRows)
		// but do not fit this budget.
		pc.Steps, pc.CheckpointEvery = 1000, 250
		pc.TextBatch, pc.ImageBatch = 16, 32
		pc.Model.PatchSize = 7
		pc.Data.Corpus = filepath.Join(dataDir, "sotu") + "," + filepath.Join(dataDir, "moby-dick")
		pc.Data.Images = filepath.Join(dataDir, "fashion-mnist")
		pc.Data.VocabSize = 8000
		pc.Optimizer.LearningRate = 2e-3
		pc.EvalEvery = 250   // held-out pre-training metrics every 250 steps
		pc.Diagnostics = 100 // gradient conflict of the joint runs (conflicts.jsonl)
		pc.TeacherStepsFactor = 2
		// 844 steps of 64 are one epoch of MNIST's 54,000 training images
		// (the other 6,000 are the validation split); 2,532 are three, where
		// the validation accuracy of a fine-tuned ViT has stopped climbing
		// by more than a few tenths of a point per half epoch.
		p.FinetuneSteps, p.EvalEvery, p.FinetuneBatch, p.FinetuneLR = 3*844, 422, 64, 1e-3
		p.Seeds = []int{1}
		p.PretrainSeeds = []int{1, 2}
		p.SharedTeachers = true
		// Few-shot fine-tuning (10 images of each digit, a new draw per
		// fine-tuning seed) is the regime where pre-training should matter;
		// its 200 steps were set from the validation curves of trial runs
		// (flat after 150-200 steps). The text encoders, still near the
		// unigram plateau, are not scored this way.
		fewShot := Protocol{Name: ProtocolFewShot, PerClass: 10, Seeds: []int{1, 2}, Steps: 200, Batch: 32, EvalEvery: 50, Modality: "image"}
		p.Protocols = []Protocol{{Name: ProtocolProbe, Seeds: []int{1}}, {Name: ProtocolFinetune}, fewShot}
		p.Tasks = []TaskRef{
			{Name: finetune.TaskMNIST, Data: filepath.Join(dataDir, "mnist"), Label: "MNIST", Modality: "image", ProbeExamples: 10000},
			{Name: finetune.TaskLabelled, Data: filepath.Join(dataDir, "spamassassin"), Label: "SpamAssassin", Modality: "text", Steps: 200, Batch: 32},
			{Name: finetune.TaskBrown, Data: filepath.Join(dataDir, "brown-genres"), Label: "Brown genres", Modality: "text", Steps: 200, Batch: 32},
		}
	case "small":
		// The small model (4 blocks, D=256) on the tiny reproduction's data
		// and protocol, pre-trained on one GPU (benchmarks/repro-small-gpu.sh),
		// scored on the CPU.
		small, err := pretrain.Preset("small")
		if err != nil {
			return p, err
		}
		tiny, err := PlanPreset("tiny", dataDir)
		if err != nil {
			return p, err
		}
		p = tiny
		p.Name = name
		small.Data = tiny.Pretrain.Data
		// Sized for about ten minutes of one GPU (not yet measured): two
		// seeds × six variants of 1,000 steps, and two teachers of 2,000
		// shared by both seeds. Its scoring (the tiny plan's protocols) runs
		// on the CPU: about four hours on 2 cores, estimated from step times
		// measured there (MNIST fine-tuning 0.26 s per step of 64, so 12
		// minutes a cell for three epochs, 11 cells; Brown genres 0.77 s per
		// step of 32; an MNIST probe 41 s).
		small.Steps, small.CheckpointEvery, small.EvalEvery = 1000, 250, 250
		small.TeacherStepsFactor = 2
		p.Ablations = false
		small.Model.ImageSize, small.Model.Channels, small.Model.PatchSize = tiny.Pretrain.Model.ImageSize, tiny.Pretrain.Model.Channels, tiny.Pretrain.Model.PatchSize
		small.Model.MaxTextLength = tiny.Pretrain.Model.MaxTextLength
		pc = small
	default:
		return p, fmt.Errorf("unknown reproduction preset %q (want demo, tiny or small)", name)
	}
	p.Pretrain = pc
	return p, nil
}
