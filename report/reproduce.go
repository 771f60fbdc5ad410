package report

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/vitbert/vitbert/atomicfs"
	"github.com/vitbert/vitbert/finetune"
	"github.com/vitbert/vitbert/pretrain"
	"github.com/vitbert/vitbert/train"
)

// TaskRef is a downstream task of the comparison.
type TaskRef struct {
	Name     string `json:"name"`     // as finetune knows it
	Data     string `json:"data"`     // its data path ("" for built-in data)
	Label    string `json:"label"`    // column title
	Modality string `json:"modality"` // "text" or "image"
	// Steps and Batch replace the plan's fine-tuning steps and batch for
	// this task (0: the plan's): a text step costs far more than an image
	// step of the same batch.
	Steps int `json:"steps,omitempty"`
	Batch int `json:"batch,omitempty"`
	// ProbeExamples, if positive, fits the linear probe on that many
	// training examples (drawn by the seed) instead of all of them: the
	// probe's cost grows with the training split, its accuracy hardly does
	// past a few thousand examples of a 128-wide feature.
	ProbeExamples int `json:"probe_examples,omitempty"`
}

// Variant is one pre-training set-up of the comparison.
type Variant struct {
	Name     string
	Mode     string // pretrain mode, "" for no pre-training
	Distill  bool
	Mask     bool
	Alpha    float64 // distillation ratio (0: the preset's)
	Tau      float64 // temperature (0: the preset's)
	Beta     float64 // final mask sparsity (0: the preset's)
	Ranking  string  // mask ranking ("" : the preset's)
	Ablation string  // "", "distill", "mask" or "combine": which ablation table it belongs to
	// Teacher marks a teacher run: pre-trained TeacherSteps() steps to be
	// distilled from, neither fine-tuned nor in any table.
	Teacher bool
	// Seed is the pre-training seed of one run of the variant (0: the
	// plan's first pre-training seed, or the preset's seed without any).
	Seed int
	// Combine is the combine rule of the shared encoder's gradients when it
	// is neither sum nor mask (train.CombinePCGrad, train.CombineCAGrad...);
	// "": the preset's (sum, or mask with Mask).
	Combine train.CombineRule
}

// scores reports whether the variant is scored on task t: the
// single-modality models have no tokenizer for the other side.
func (v Variant) scores(t TaskRef) bool {
	return !(v.Mode == pretrain.ModeText && t.Modality != "text" || v.Mode == pretrain.ModeImage && t.Modality != "image")
}

// Plan is a whole reproduction.
type Plan struct {
	Name          string          `json:"name"`
	Pretrain      pretrain.Config `json:"pretrain"`
	FinetuneSteps int             `json:"finetune_steps"`
	FinetuneBatch int             `json:"finetune_batch"`
	FinetuneLR    float64         `json:"finetune_lr"`
	EvalEvery     int             `json:"eval_every"`
	Seeds         []int           `json:"seeds"`
	AblationSeeds []int           `json:"ablation_seeds"`
	Tasks         []TaskRef       `json:"tasks"`
	Ablations     bool            `json:"ablations"`
	// AblationRows, if set, keeps only the ablation rows of these names
	// (e.g. "joint + PCGrad"); empty: all of them.
	AblationRows []string `json:"ablation_rows,omitempty"`
	// SeedAblations pre-trains the ablation rows once per pre-training
	// seed, as the main variants, so that their paired differences have
	// intervals; otherwise they run once, with the first seed.
	SeedAblations bool `json:"seed_ablations,omitempty"`
	Probes        int  `json:"probes"`
	// PretrainSeeds pre-trains every main variant (and its teachers) once
	// per seed; the ablations use the first. Empty: one run, the preset's
	// seed.
	PretrainSeeds []int `json:"pretrain_seeds,omitempty"`
	// SharedTeachers trains the separate teachers once, with the first
	// pre-training seed, and every seed's KD variants distil from them, as
	// the paper distils from one fixed BERT and one fixed ViT; otherwise
	// each seed has its own teachers.
	SharedTeachers bool `json:"shared_teachers,omitempty"`
	// Protocols are the ways each pre-trained encoder is scored on each task
	// (empty: full fine-tuning only).
	Protocols []Protocol `json:"protocols,omitempty"`
}

// Protocol is one way of scoring a pre-trained encoder on a downstream task.
// Every one selects on a validation split and scores the test split once.
type Protocol struct {
	// Name is ProtocolFinetune, ProtocolProbe or ProtocolFewShot.
	Name string `json:"name"`
	// PerClass is the few-shot training set: examples of each class, drawn
	// by the fine-tuning seed.
	PerClass int `json:"per_class,omitempty"`
	// Seeds replace the plan's fine-tuning seeds for this protocol. A linear
	// probe is deterministic given the encoder (its fit and its validation
	// split do not depend on a seed), so more than one seed would only
	// repeat it and make paired differences look more certain than they are.
	Seeds []int `json:"seeds,omitempty"`
	// Probe sets the linear probe (nil: finetune.DefaultProbe).
	Probe *finetune.ProbeConfig `json:"probe,omitempty"`
	// Steps, Batch and EvalEvery, if positive, replace the fine-tuning
	// budget of every task under this protocol: a few-shot training set of
	// a hundred examples wants neither the epochs of a full one nor its
	// spacing of evaluations.
	Steps     int `json:"steps,omitempty"`
	Batch     int `json:"batch,omitempty"`
	EvalEvery int `json:"eval_every,omitempty"`
	// Modality, if set ("text" or "image"), limits the protocol to the
	// tasks of that modality.
	Modality string `json:"modality,omitempty"`
}

// validate checks a protocol of a plan with these tasks: a known name, the
// fields its scoring uses and no others, and at least one task to score.
func (p Protocol) validate(tasks []TaskRef) error {
	switch p.Name {
	case ProtocolFinetune, ProtocolProbe, ProtocolFewShot:
	default:
		return fmt.Errorf("protocol %q: want %s, %s or %s", p.Name, ProtocolFinetune, ProtocolProbe, ProtocolFewShot)
	}
	switch {
	case p.Name == ProtocolFewShot && p.PerClass < 1:
		return fmt.Errorf("protocol %s: per_class %d, want at least 1", p.Name, p.PerClass)
	case p.Name != ProtocolFewShot && p.PerClass != 0:
		return fmt.Errorf("protocol %s: per_class applies to %s only", p.Name, ProtocolFewShot)
	case p.Name == ProtocolProbe && (p.Steps != 0 || p.Batch != 0):
		return fmt.Errorf("protocol %s: a linear probe has no steps or batch", p.Name)
	case p.Name != ProtocolFewShot && p.EvalEvery != 0:
		return fmt.Errorf("protocol %s: eval_every applies to %s only (the plan's eval_every sets the others)", p.Name, ProtocolFewShot)
	case p.Steps < 0 || p.Batch < 0 || p.EvalEvery < 0:
		return fmt.Errorf("protocol %s: steps %d, batch %d, eval_every %d: none may be negative", p.Name, p.Steps, p.Batch, p.EvalEvery)
	case p.Modality != "" && p.Modality != "text" && p.Modality != "image":
		return fmt.Errorf("protocol %s: modality %q, want text, image or none", p.Name, p.Modality)
	case len(p.Tasks(tasks)) == 0:
		return fmt.Errorf("protocol %s: no task of the plan has modality %s", p.Name, p.Modality)
	}
	return nil
}

// budget describes where the protocol departs from the plan's fine-tuning.
func (p Protocol) budget() string {
	var parts []string
	if p.Modality != "" {
		parts = append(parts, p.Modality+" tasks only")
	}
	if p.Steps > 0 {
		parts = append(parts, fmt.Sprintf("%d steps", p.Steps))
	}
	if p.Batch > 0 {
		parts = append(parts, fmt.Sprintf("batch %d", p.Batch))
	}
	if p.EvalEvery > 0 {
		parts = append(parts, fmt.Sprintf("the validation split scored every %d steps", p.EvalEvery))
	}
	if p.Name == ProtocolFewShot {
		parts = append(parts, "each fine-tuning seed draws another training subset")
	}
	return strings.Join(parts, ", ")
}

// taskBudget is the fine-tuning steps and batch of task t: the plan's, or
// the task's own where it sets them (a protocol's are already in t, see
// Protocol.Tasks). A batch of 0 leaves finetune's default.
func (p *Plan) taskBudget(t TaskRef) (steps, batch int) {
	steps, batch = p.FinetuneSteps, p.FinetuneBatch
	if t.Steps > 0 {
		steps = t.Steps
	}
	if t.Batch > 0 {
		batch = t.Batch
	}
	return steps, batch
}

// Tasks is the plan's tasks this protocol scores on, each with the
// protocol's steps and batch where it sets them.
func (p Protocol) Tasks(all []TaskRef) []TaskRef {
	var out []TaskRef
	for _, t := range all {
		if p.Modality != "" && t.Modality != p.Modality {
			continue
		}
		if p.Steps > 0 {
			t.Steps = p.Steps
		}
		if p.Batch > 0 {
			t.Batch = p.Batch
		}
		out = append(out, t)
	}
	return out
}

// The protocols.
const (
	ProtocolFinetune = "finetune" // full fine-tuning of encoder and head
	ProtocolProbe    = "probe"    // a linear classifier on frozen features
	ProtocolFewShot  = "fewshot"  // full fine-tuning on PerClass examples per class
)

// Label names a protocol in tables and folders.
func (p Protocol) Label() string {
	switch p.Name {
	case ProtocolProbe:
		return "linear probe"
	case ProtocolFewShot:
		return fmt.Sprintf("few-shot fine-tuning (%d per class)", p.PerClass)
	}
	return "full fine-tuning"
}

func (p Protocol) dir() string {
	if p.Name == ProtocolFewShot {
		return fmt.Sprintf("fewshot-%d", p.PerClass)
	}
	return p.Name
}

// ProtocolList is the plan's protocols, full fine-tuning when none is given.
func (p *Plan) ProtocolList() []Protocol {
	if len(p.Protocols) == 0 {
		return []Protocol{{Name: ProtocolFinetune}}
	}
	return p.Protocols
}

// Main variants, in the order of the paper's table.
// MainVariants are the rows of the main table.
func MainVariants() []Variant {
	return []Variant{
		{Name: "BERT (text only)", Mode: pretrain.ModeText},
		{Name: "ViT (image only)", Mode: pretrain.ModeImage},
		{Name: "joint", Mode: pretrain.ModeJoint},
		{Name: "joint + KD", Mode: pretrain.ModeJoint, Distill: true},
		{Name: "joint + GM", Mode: pretrain.ModeJoint, Mask: true},
		{Name: "joint + KD + GM", Mode: pretrain.ModeJoint, Distill: true, Mask: true},
		{Name: "from scratch"},
	}
}

// ablationVariants are the plan's ablation rows: all of them, or those
// AblationRows names.
func (p *Plan) ablationVariants() ([]Variant, error) {
	all := ablationVariants()
	if len(p.AblationRows) == 0 {
		return all, nil
	}
	var vs []Variant
	for _, name := range p.AblationRows {
		i := slices.IndexFunc(all, func(v Variant) bool { return v.Name == name })
		if i < 0 {
			var names []string
			for _, v := range all {
				names = append(names, fmt.Sprintf("%q", v.Name))
			}
			return nil, fmt.Errorf("plan: no ablation row %q (have %s)", name, strings.Join(names, ", "))
		}
		vs = append(vs, all[i])
	}
	return vs, nil
}

func ablationVariants() []Variant {
	var vs []Variant
	for _, a := range []float64{0.25, 0.5, 0.75} {
		for _, t := range []float64{1, 2, 4} {
			if a == 0.5 && t == 2 {
				continue // the main joint + KD run
			}
			if a != 0.5 && t != 2 {
				continue // one knob at a time
			}
			vs = append(vs, Variant{Name: fmt.Sprintf("KD α=%g τ=%g", a, t), Mode: pretrain.ModeJoint, Distill: true, Alpha: a, Tau: t, Ablation: "distill"})
		}
	}
	for _, b := range []float64{0.25, 0.75} {
		vs = append(vs, Variant{Name: fmt.Sprintf("GM β=%g", b), Mode: pretrain.ModeJoint, Mask: true, Beta: b, Ablation: "mask"})
	}
	// The main runs rank globally (the preset's default); the other scopes
	// make every tensor or every block reach β by construction.
	for _, rk := range []train.RankScope{train.RankPerTensor, train.RankPerBlock} {
		vs = append(vs, Variant{Name: fmt.Sprintf("GM β=0.5, per-%s ranking", rk), Mode: pretrain.ModeJoint, Mask: true, Beta: 0.5, Ranking: string(rk), Ablation: "mask"})
	}
	// Other answers to the conflict between the two gradients, beside the
	// paper's masking (train/combine.go).
	vs = append(vs,
		Variant{Name: "joint + PCGrad", Mode: pretrain.ModeJoint, Combine: train.CombinePCGrad, Ablation: "combine"},
		Variant{Name: "joint + CAGrad", Mode: pretrain.ModeJoint, Combine: train.CombineCAGrad, Ablation: "combine"},
		Variant{Name: "joint + KD + PCGrad", Mode: pretrain.ModeJoint, Distill: true, Combine: train.CombinePCGrad, Ablation: "combine"},
		Variant{Name: "joint + KD + CAGrad", Mode: pretrain.ModeJoint, Distill: true, Combine: train.CombineCAGrad, Ablation: "combine"})
	return vs
}

// slug names a variant's folder.
func slug(s string) string {
	r := strings.NewReplacer(" + ", "-", " ", "-", "(", "", ")", "", "=", "", ",", "", "α", "a", "τ", "t", "β", "b")
	return strings.ToLower(r.Replace(s))
}

// FinetuneFn fine-tunes modelDir ("" = from scratch with cfg's model) on a
// task with a seed into outDir, and returns the task's metrics on the
// evaluation split plus the name of the main metric. It must skip work
// already complete in outDir.
type FinetuneFn func(ctx context.Context, modelDir string, cfg *pretrain.Config, task TaskRef, seed int, steps int, outDir string) (metrics map[string]float64, main string, err error)

// Cell is one fine-tuning result.
type Cell struct {
	Variant, Task string
	// Protocol is how the task was scored ("" for full fine-tuning).
	Protocol string
	// PretrainSeed is the pre-training run's seed (0 without pre-training);
	// Seed is the fine-tuning seed.
	PretrainSeed int
	Seed         int
	Metrics      map[string]float64
	Main         string
	Dir          string
}

// Runner executes a plan into a directory.
type Runner struct {
	Plan     Plan
	Out      string
	Backend  compute.Backend
	Finetune FinetuneFn
	Log      io.Writer
	// Quiet hides the pre-training progress (Log still gets the run's notes).
	Quiet bool
	// PretrainOnly stops after the pre-training runs (e.g. on a GPU
	// machine), leaving the probes and fine-tuning to a later Run.
	PretrainOnly bool
}

func (r *Runner) logf(format string, args ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, "[%s] "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
}

// seed is the pre-training seed of a variant's run (0: the preset's).
func (r *Runner) seed(v Variant) int {
	if v.Seed == 0 && v.Mode != "" && len(r.Plan.PretrainSeeds) > 0 {
		return r.Plan.PretrainSeeds[0]
	}
	return v.Seed
}

// pretrainDir is where a variant's pre-training run lives (one folder per
// seed when the plan has pre-training seeds).
func (r *Runner) pretrainDir(v Variant) string {
	dir := filepath.Join(r.Out, "pretrain", slug(v.Name))
	if s := r.seed(v); s != 0 && len(r.Plan.PretrainSeeds) > 0 {
		dir = filepath.Join(dir, fmt.Sprintf("seed-%d", s))
	}
	return dir
}

// seeded lists the pre-training runs of variants: every main variant once
// per pre-training seed, ablations and the scratch baseline once.
func (r *Runner) seeded(variants []Variant) []Variant {
	var out []Variant
	for _, v := range variants {
		if v.Mode == "" || (v.Ablation != "" && !r.Plan.SeedAblations) || len(r.Plan.PretrainSeeds) == 0 {
			out = append(out, v)
			continue
		}
		for _, s := range r.Plan.PretrainSeeds {
			w := v
			w.Seed = s
			out = append(out, w)
		}
	}
	return out
}

// teachers are the runs the KD variants distil from: the single-modality
// rows of the main table when teachers train as long as the students, else
// separate, longer runs (Config.TeacherStepsFactor), so that the table's
// BERT and ViT rows keep the students' budget; those are the first seed's
// with Plan.SharedTeachers.
func (r *Runner) teachers(seed int) (text, image Variant) {
	if c := r.Plan.Pretrain; c.TeacherSteps() <= c.Steps {
		text, image = MainVariants()[0], MainVariants()[1]
		text.Seed, image.Seed = seed, seed
		return text, image
	}
	if r.Plan.SharedTeachers && len(r.Plan.PretrainSeeds) > 0 {
		seed = r.Plan.PretrainSeeds[0]
	}
	return Variant{Name: "BERT teacher", Mode: pretrain.ModeText, Teacher: true, Seed: seed},
		Variant{Name: "ViT teacher", Mode: pretrain.ModeImage, Teacher: true, Seed: seed}
}

// config is the pre-training configuration of a variant, as given (Finish
// resolves the settings derived from the number of steps).
func (r *Runner) config(v Variant) pretrain.Config {
	c := r.Plan.Pretrain
	c.Mode = v.Mode
	if s := r.seed(v); s != 0 {
		c.Seed = int64(s)
	}
	if v.Teacher {
		c.Steps = c.TeacherSteps()
	}
	if c.Mode != pretrain.ModeJoint {
		c.Diagnostics = 0 // the conflict between two gradients needs both
	}
	if v.Distill {
		tt, it := r.teachers(v.Seed)
		c.DistillText.Teacher = filepath.Join(r.pretrainDir(tt), pretrain.ModelDir)
		c.DistillImage.Teacher = filepath.Join(r.pretrainDir(it), pretrain.ModelDir)
		if v.Alpha > 0 {
			c.DistillText.Alpha, c.DistillImage.Alpha = v.Alpha, v.Alpha
		}
		if v.Tau > 0 {
			c.DistillText.Tau, c.DistillImage.Tau = v.Tau, v.Tau
		}
	}
	if v.Mask {
		c.Mask.Enabled = true
		if v.Beta > 0 {
			c.Mask.FinalSparsity = v.Beta
			c.Mask.Increment = min(c.Mask.Increment, v.Beta)
		}
		if v.Ranking != "" {
			c.Mask.Ranking = train.RankScope(v.Ranking)
		}
	}
	if v.Combine != "" {
		c.Combine.Rule = v.Combine
	}
	return c
}

// pretrainVariant runs (or resumes, or skips) a variant's pre-training.
func (r *Runner) pretrainVariant(ctx context.Context, v Variant) error {
	dir := r.pretrainDir(v)
	if _, err := os.Stat(filepath.Join(dir, pretrain.ModelDir, "config.json")); err == nil {
		r.logf("pre-training %-28s done already (%s)", v.Name, dir)
		return nil
	}
	r.logf("pre-training %-28s → %s", v.Name, dir)
	opt := pretrain.Options{OutDir: dir, Resume: true, Progress: r.Log, Quiet: r.Log == nil || r.Quiet}
	c := r.config(v)
	if r.Plan.Probes > 1 && v.Mode == pretrain.ModeJoint {
		c.Finish()
		opt.ProbeSteps = pretrain.ProbeSteps(c.Steps, r.Plan.Probes)
	}
	return pretrain.Run(ctx, r.Backend, c, opt)
}

// PlanRecord is plan.json: the plan, with its pre-training settings
// resolved, and the resolved configuration of every pre-training run (its
// steps, learning-rate schedule, warm-up, mask schedule, teachers), as
// pretrain.Run will run it.
type PlanRecord struct {
	Plan
	Runs []RunRecord `json:"pretraining_runs"`
}

// RunRecord is one pre-training run of a plan.
type RunRecord struct {
	Variant string          `json:"variant"`
	Dir     string          `json:"dir"` // relative to the reproduction's folder
	Config  pretrain.Config `json:"config"`
}

// pretrainRuns lists the pre-training runs of variants, per seed, each
// seed's teachers first.
func (r *Runner) pretrainRuns(variants []Variant) []Variant {
	var runs []Variant
	seeded := r.seeded(variants)
	for _, v := range seeded {
		if tt, it := r.teachers(v.Seed); v.Distill && tt.Teacher && !slices.Contains(runs, tt) {
			runs = append(runs, tt, it)
		}
	}
	for _, v := range seeded {
		if v.Mode != "" && !slices.Contains(runs, v) {
			runs = append(runs, v)
		}
	}
	return runs
}

// Record resolves the plan into what will run.
func (r *Runner) Record(variants []Variant) PlanRecord {
	rec := PlanRecord{Plan: r.Plan}
	rec.Pretrain.Finish()
	for _, v := range r.pretrainRuns(variants) {
		c := r.config(v)
		c.Finish()
		rel, _ := filepath.Rel(r.Out, r.pretrainDir(v))
		rec.Runs = append(rec.Runs, RunRecord{Variant: v.Name, Dir: filepath.ToSlash(rel), Config: c})
	}
	return rec
}

// protocolFn is the function that scores one cell under a protocol:
// Finetune for full fine-tuning when set (tests), else vitbert's own.
func (r *Runner) protocolFn(p Protocol) FinetuneFn {
	var progress io.Writer
	if !r.Quiet {
		progress = r.Log
	}
	switch p.Name {
	case ProtocolProbe:
		return ProberWith(r.Backend, &r.Plan, progress, p.Probe)
	case ProtocolFewShot:
		return FewShotFinetuner(r.Backend, &r.Plan, progress, p)
	}
	if r.Finetune != nil {
		return r.Finetune
	}
	return Finetuner(r.Backend, &r.Plan, progress)
}

// Run executes every cell of the plan not yet complete, then writes the report.
func (r *Runner) Run(ctx context.Context) ([]Cell, error) {
	for _, p := range r.Plan.ProtocolList() {
		if err := p.validate(r.Plan.Tasks); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(r.Out, 0o755); err != nil {
		return nil, err
	}
	variants := MainVariants()
	if r.Plan.Ablations {
		abl, err := r.Plan.ablationVariants()
		if err != nil {
			return nil, err
		}
		variants = append(variants, abl...)
	}
	b, _ := json.MarshalIndent(r.Record(variants), "", "  ")
	if err := atomicfs.WriteBytes(filepath.Join(r.Out, "plan.json"), append(b, '\n')); err != nil {
		return nil, err
	}
	for _, v := range r.pretrainRuns(variants) {
		if err := r.pretrainVariant(ctx, v); err != nil {
			return nil, fmt.Errorf("pre-training %s: %w", v.Name, err)
		}
	}
	if r.PretrainOnly {
		r.logf("pre-training done; rerun without the pre-training stage to score the models")
		return nil, nil
	}
	var cells []Cell
	for _, p := range r.Plan.ProtocolList() {
		fn := r.protocolFn(p)
		for _, v := range r.seeded(variants) {
			seeds := r.Plan.Seeds
			if v.Ablation != "" {
				seeds = r.Plan.AblationSeeds
			}
			if len(p.Seeds) > 0 {
				seeds = p.Seeds
			}
			for _, t := range p.Tasks(r.Plan.Tasks) {
				if !v.scores(t) {
					continue
				}
				for _, seed := range seeds {
					modelDir := ""
					if v.Mode != "" {
						modelDir = filepath.Join(r.pretrainDir(v), pretrain.ModelDir)
					}
					dir := filepath.Join(r.Out, "finetune", slug(v.Name), slug(t.Label), fmt.Sprintf("seed-%d", seed))
					if len(r.Plan.Protocols) > 0 {
						dir = filepath.Join(r.Out, p.dir(), slug(v.Name), slug(t.Label), fmt.Sprintf("seed-%d", seed))
					}
					ps := 0
					if v.Mode != "" && len(r.Plan.PretrainSeeds) > 0 {
						ps = r.seed(v)
						dir = filepath.Join(filepath.Dir(dir), fmt.Sprintf("pretrain-%d-seed-%d", ps, seed))
					}
					r.logf("%-12s %-28s on %-14s seed %d/%d", p.dir(), v.Name, t.Label, ps, seed)
					c := r.config(v)
					if v.Mode == "" && c.Data.Vocab == "" && c.Data.VocabSize > 0 {
						// The baseline reads text with the vocabulary the
						// pre-trained runs learned (the same one for all: the
						// same training documents), not a copy trained per cell.
						c.Data.Vocab = filepath.Join(r.pretrainDir(MainVariants()[0]), pretrain.ModelDir)
						c.Data.VocabSize = 0
					}
					steps, _ := r.Plan.taskBudget(t)
					m, main, err := fn(ctx, modelDir, &c, t, seed, steps, dir)
					if err != nil {
						return nil, fmt.Errorf("%s of %s on %s (seed %d/%d): %w", p.Label(), v.Name, t.Label, ps, seed, err)
					}
					cells = append(cells, Cell{Variant: v.Name, Task: t.Label, Protocol: p.Name, PretrainSeed: ps, Seed: seed, Metrics: m, Main: main, Dir: dir})
				}
			}
		}
	}
	if err := r.WriteReport(cells, variants); err != nil {
		return cells, err
	}
	return cells, nil
}

// stat is mean ± sample standard deviation.
func stat(xs []float64) (mean, std float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) > 1 {
		for _, x := range xs {
			std += (x - mean) * (x - mean)
		}
		std = math.Sqrt(std / float64(len(xs)-1))
	}
	return
}

// Table renders rows × tasks of the main metric, mean ± std over seeds, each
// linking to its fine-tuning folder (relative to the report).
func (r *Runner) Table(cells []Cell, variants []Variant, tasks []TaskRef) string {
	var sb strings.Builder
	sb.WriteString("| variant |")
	for _, t := range tasks {
		sb.WriteString(" " + t.Label + " |")
	}
	sb.WriteString("\n|---|")
	for range tasks {
		sb.WriteString("---|")
	}
	sb.WriteString("\n")
	for _, v := range variants {
		if !slices.ContainsFunc(tasks, v.scores) {
			continue // a single-modality model, and only the other modality's tasks
		}
		sb.WriteString("| " + v.Name + " |")
		for _, t := range tasks {
			var xs []float64
			var dir string
			for _, c := range cells {
				if c.Variant == v.Name && c.Task == t.Label {
					xs = append(xs, c.Metrics[c.Main])
					dir = filepath.Dir(c.Dir)
				}
			}
			if len(xs) == 0 {
				sb.WriteString(" — |")
				continue
			}
			m, s := stat(xs)
			rel, _ := filepath.Rel(r.Out, dir)
			cell := fmt.Sprintf("%.2f", 100*m)
			if len(xs) > 1 {
				cell += fmt.Sprintf(" ± %.2f", 100*s)
			}
			fmt.Fprintf(&sb, " [%s](%s/) |", cell, filepath.ToSlash(rel))
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// Means returns variant → task → mean main metric.
func Means(cells []Cell) map[string]map[string]float64 {
	acc := map[string]map[string][]float64{}
	for _, c := range cells {
		if acc[c.Variant] == nil {
			acc[c.Variant] = map[string][]float64{}
		}
		acc[c.Variant][c.Task] = append(acc[c.Variant][c.Task], c.Metrics[c.Main])
	}
	out := map[string]map[string]float64{}
	for v, ts := range acc {
		out[v] = map[string]float64{}
		for t, xs := range ts {
			out[v][t], _ = stat(xs)
		}
	}
	return out
}
