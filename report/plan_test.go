package report

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/vitbert/vitbert/pretrain"
	"github.com/vitbert/vitbert/train"
)

// plan.json records what runs: the resolved schedule of every pre-training
// run, the teachers trained TeacherStepsFactor times longer than the
// students, and the KD runs pointing at them.
func TestPlanRecordResolved(t *testing.T) {
	p := microPlan(t)
	p.Pretrain.Steps = 40
	tiny, err := PlanPreset("tiny", "data")
	if err != nil {
		t.Fatal(err)
	}
	if f := tiny.Pretrain.TeacherStepsFactor; f <= 1 {
		t.Fatalf("teacher_steps_factor %g in the tiny plan: the teachers must train longer than the students", f)
	}
	p.Pretrain.TeacherStepsFactor = 3
	r := &Runner{Plan: p, Out: t.TempDir()}
	rec := r.Record(MainVariants())
	if o := rec.Pretrain.Optimizer; o.TotalSteps != 40 || o.WarmupSteps != 4 {
		t.Errorf("plan: total steps %d, warm-up %d; want 40 and 4 (the resolved schedule)", o.TotalSteps, o.WarmupSteps)
	}
	runs := map[string]pretrain.Config{}
	var order []string
	for _, run := range rec.Runs {
		runs[run.Variant] = run.Config
		order = append(order, run.Variant)
	}
	if len(order) != 8 || order[0] != "BERT teacher" || order[1] != "ViT teacher" {
		t.Fatalf("pre-training runs %v: want the two teachers first, then the six main variants", order)
	}
	for _, name := range []string{"BERT teacher", "ViT teacher"} {
		c := runs[name]
		if c.Steps != 120 || c.Optimizer.TotalSteps != 120 || c.Optimizer.WarmupSteps != 12 {
			t.Errorf("%s: %d steps, schedule over %d with %d warm-up; want 120, 120, 12", name, c.Steps, c.Optimizer.TotalSteps, c.Optimizer.WarmupSteps)
		}
	}
	if c := runs["BERT (text only)"]; c.Steps != 40 || c.Optimizer.TotalSteps != 40 {
		t.Errorf("the BERT row runs %d steps (schedule %d), want the students' 40", c.Steps, c.Optimizer.TotalSteps)
	}
	kd := runs["joint + KD + GM"]
	if want := filepath.Join(r.pretrainDir(Variant{Name: "BERT teacher"}), pretrain.ModelDir); kd.DistillText.Teacher != want {
		t.Errorf("the KD run distils text from %s, want %s", kd.DistillText.Teacher, want)
	}
	if m := kd.Mask; !m.Enabled || m.Ranking != train.RankGlobal || m.StartStep != 4 || m.EndStep != 28 {
		t.Errorf("mask of joint + KD + GM: %+v; want enabled, global ranking, updates over steps 4..28", m)
	}

	// Teachers as long as the students: the single-modality rows teach.
	r.Plan.Pretrain.TeacherStepsFactor = 1
	rec = r.Record(MainVariants())
	if len(rec.Runs) != 6 {
		t.Errorf("%d runs with teacher_steps_factor 1, want the 6 main variants", len(rec.Runs))
	}
	for _, run := range rec.Runs {
		if run.Variant == "joint + KD" {
			if want := filepath.Join(r.pretrainDir(MainVariants()[0]), pretrain.ModelDir); run.Config.DistillText.Teacher != want {
				t.Errorf("teacher %s, want the BERT row %s", run.Config.DistillText.Teacher, want)
			}
		}
	}
}

// The main runs rank the mask globally; per-tensor and per-block ranking are
// ablations.
func TestMaskRankingAblations(t *testing.T) {
	c, err := pretrain.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	if c.Mask.Ranking != train.RankGlobal {
		t.Errorf("preset ranking %q, want global", c.Mask.Ranking)
	}
	seen := map[string]bool{}
	for _, v := range ablationVariants() {
		if v.Ablation == "mask" && v.Ranking != "" {
			seen[v.Ranking] = true
		}
	}
	if !seen["tensor"] || !seen["block"] || seen["global"] {
		t.Errorf("ranking ablations %v, want tensor and block", seen)
	}
}

// AblationRows keeps the ablation rows it names, and names a row it does
// not know; empty keeps all.
func TestAblationRows(t *testing.T) {
	all, err := (&Plan{}).ablationVariants()
	if err != nil || len(all) != len(ablationVariants()) {
		t.Fatalf("no filter: %d rows, %v; want all %d", len(all), err, len(ablationVariants()))
	}
	some, err := (&Plan{AblationRows: []string{"joint + CAGrad", "joint + PCGrad"}}).ablationVariants()
	if err != nil || len(some) != 2 || some[0].Name != "joint + CAGrad" || some[1].Name != "joint + PCGrad" {
		t.Fatalf("rows %v, %v; want joint + CAGrad and joint + PCGrad", some, err)
	}
	if _, err := (&Plan{AblationRows: []string{"joint + PCgrad"}}).ablationVariants(); err == nil || !strings.Contains(err.Error(), `"joint + PCgrad"`) {
		t.Errorf("a misspelt row: %v, want an error naming it", err)
	}
}

// With pre-training seeds, every main variant and its teachers run once per
// seed, in their own folders, with that seed, and a KD run distils from the
// teachers of its own seed; ablations run once, or once per seed with
// SeedAblations.
func TestPretrainSeedsExpandRuns(t *testing.T) {
	p := microPlan(t)
	p.Pretrain.Steps = 40
	p.Pretrain.TeacherStepsFactor = 3
	p.PretrainSeeds = []int{7, 8}
	r := &Runner{Plan: p, Out: t.TempDir()}
	variants := append(MainVariants(), Variant{Name: "GM β=0.25", Mode: pretrain.ModeJoint, Mask: true, Beta: 0.25, Ablation: "mask"})
	runs := r.pretrainRuns(variants)
	// 2 teachers + 6 main variants per seed, and the ablation once.
	if len(runs) != 2*8+1 {
		t.Fatalf("%d pre-training runs, want 17", len(runs))
	}
	dirs := map[string]bool{}
	for _, v := range runs {
		d := r.pretrainDir(v)
		if dirs[d] {
			t.Errorf("two runs share %s", d)
		}
		dirs[d] = true
		c := r.config(v)
		if want := int64(r.seed(v)); c.Seed != want || want == 0 {
			t.Errorf("%s seed %d: config seed %d", v.Name, v.Seed, c.Seed)
		}
		if v.Distill {
			tt, _ := r.teachers(v.Seed)
			if want := filepath.Join(r.pretrainDir(tt), pretrain.ModelDir); c.DistillText.Teacher != want || tt.Seed != v.Seed {
				t.Errorf("%s (seed %d) distils from %s, want %s", v.Name, v.Seed, c.DistillText.Teacher, want)
			}
		}
	}
	// With SeedAblations the ablation runs once per seed too.
	r.Plan.SeedAblations = true
	if runs := r.pretrainRuns(variants); len(runs) != 2*8+2 {
		t.Errorf("seeded ablations: %d pre-training runs, want 18", len(runs))
	}
	// With SharedTeachers the teachers run once, with the first seed, and
	// both seeds' KD runs distil from them.
	r.Plan.SharedTeachers, r.Plan.SeedAblations = true, false
	runs = r.pretrainRuns(variants)
	if len(runs) != 2+2*6+1 {
		t.Fatalf("shared teachers: %d pre-training runs, want 15", len(runs))
	}
	kdSeeds := map[int]bool{}
	for _, v := range runs {
		if v.Teacher && v.Seed != 7 {
			t.Errorf("shared teachers: %s runs with seed %d, want the first seed 7", v.Name, v.Seed)
		}
		if !v.Distill {
			continue
		}
		kdSeeds[v.Seed] = true
		c := r.config(v)
		want := filepath.Join(r.pretrainDir(Variant{Name: "BERT teacher", Mode: pretrain.ModeText, Teacher: true, Seed: 7}), pretrain.ModelDir)
		if c.DistillText.Teacher != want {
			t.Errorf("shared teachers: %s (seed %d) distils from %s, want %s", v.Name, v.Seed, c.DistillText.Teacher, want)
		}
	}
	if !kdSeeds[7] || !kdSeeds[8] {
		t.Errorf("shared teachers: KD runs with seeds %v, want both 7 and 8", kdSeeds)
	}
}

// Every named plan is a valid pre-training configuration with a protocol
// that scores on a test split once (the protocols exist) and real data paths.
func TestPlanPresetsAreValid(t *testing.T) {
	for _, name := range []string{"demo", "tiny", "small"} {
		p, err := PlanPreset(name, "data")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c := p.Pretrain
		c.Finish()
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		for _, pr := range p.ProtocolList() {
			if err := pr.validate(p.Tasks); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	if _, err := PlanPreset("huge", "data"); err == nil {
		t.Error("an unknown plan was accepted")
	}
}

// A protocol's own budget replaces the tasks' and the plan's, and its
// modality keeps only the tasks of that modality.
func TestProtocolTasks(t *testing.T) {
	tasks := []TaskRef{
		{Name: "mnist", Label: "MNIST", Modality: "image"},
		{Name: "labelled", Label: "Spam", Modality: "text", Steps: 100, Batch: 16},
	}
	few := Protocol{Name: ProtocolFewShot, PerClass: 10, Steps: 200, Batch: 32, EvalEvery: 50, Modality: "image"}
	got := few.Tasks(tasks)
	if len(got) != 1 || got[0].Label != "MNIST" || got[0].Steps != 200 || got[0].Batch != 32 {
		t.Errorf("few-shot on images: %+v, want MNIST alone with 200 steps of 32", got)
	}
	if tasks[0].Steps != 0 {
		t.Error("Tasks changed the plan's task")
	}
	all := Protocol{Name: ProtocolFinetune}.Tasks(tasks)
	if len(all) != 2 || all[0] != tasks[0] || all[1] != tasks[1] {
		t.Errorf("full fine-tuning: %+v, want the plan's tasks unchanged", all)
	}
	if b := few.budget(); b != "image tasks only, 200 steps, batch 32, the validation split scored every 50 steps, each fine-tuning seed draws another training subset" {
		t.Errorf("budget %q", b)
	}
}

// A protocol that sets what its scoring would not use, or selects no task,
// is refused with a message naming the field.
func TestProtocolValidate(t *testing.T) {
	tasks := []TaskRef{{Name: "mnist", Label: "MNIST", Modality: "image"}}
	bad := []struct {
		p    Protocol
		want string
	}{
		{Protocol{Name: "fewshots", PerClass: 10}, "want finetune, probe or fewshot"},
		{Protocol{Name: ProtocolFewShot}, "per_class 0"},
		{Protocol{Name: ProtocolFinetune, PerClass: 10}, "per_class applies to fewshot only"},
		{Protocol{Name: ProtocolProbe, Steps: 100}, "no steps or batch"},
		{Protocol{Name: ProtocolFinetune, EvalEvery: 50}, "eval_every applies to fewshot only"},
		{Protocol{Name: ProtocolFewShot, PerClass: 10, Steps: -1}, "none may be negative"},
		{Protocol{Name: ProtocolFewShot, PerClass: 10, Modality: "images"}, `modality "images"`},
		{Protocol{Name: ProtocolFewShot, PerClass: 10, Modality: "text"}, "no task of the plan has modality text"},
	}
	for _, c := range bad {
		if err := c.p.validate(tasks); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error with %q", c.p, err, c.want)
		}
	}
	ok := Protocol{Name: ProtocolFewShot, PerClass: 10, Steps: 200, Batch: 32, EvalEvery: 50, Modality: "image"}
	if err := ok.validate(tasks); err != nil {
		t.Errorf("%+v: %v", ok, err)
	}
}

// A table leaves out the single-modality model that has no task among its
// columns (the BERT row of an image-only protocol), and keeps it otherwise.
func TestTableRowsFollowTheTasks(t *testing.T) {
	r := &Runner{}
	image := []TaskRef{{Name: "mnist", Label: "MNIST", Modality: "image"}}
	both := append(image, TaskRef{Name: "labelled", Label: "Spam", Modality: "text"})
	if tb := r.Table(nil, MainVariants(), image); strings.Contains(tb, "BERT (text only)") || !strings.Contains(tb, "ViT (image only)") || !strings.Contains(tb, "joint + KD") {
		t.Errorf("image tasks only:\n%s", tb)
	}
	if tb := r.Table(nil, MainVariants(), both); !strings.Contains(tb, "BERT (text only)") || !strings.Contains(tb, "ViT (image only)") {
		t.Errorf("both modalities:\n%s", tb)
	}
}
