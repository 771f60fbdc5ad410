package finetune

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vitbert/vitbert/data/images"
	"github.com/vitbert/vitbert/data/texts"
	"github.com/vitbert/vitbert/train"
)

// splitRead is one read of a split, with the number of training steps
// logged in metrics.jsonl when it happened.
type splitRead struct {
	split     string
	stepsDone int
}

// readRecorder wraps a task's readers so that every split read is logged.
type readRecorder struct {
	mu    sync.Mutex
	out   string
	reads []splitRead
}

func (r *readRecorder) log(split string) {
	n := 0
	if b, err := os.ReadFile(filepath.Join(r.out, MetricsFile)); err == nil {
		n = strings.Count(string(b), "\n")
	}
	r.mu.Lock()
	r.reads = append(r.reads, splitRead{split, n})
	r.mu.Unlock()
}

func (r *readRecorder) wrap(td *taskData) {
	if open := td.openTexts; open != nil {
		td.openTexts = func(split string) (*textSplit, error) {
			r.log(split)
			return open(split)
		}
	}
	if open := td.openImages; open != nil {
		td.openImages = func(split string, size, channels int) (*images.Dataset, error) {
			r.log(split)
			return open(split, size, channels)
		}
	}
}

// TestTestSplitIsReadOnceAfterTraining instruments the task's readers: the
// test split must be read exactly once, as the last read, after every
// training step; the selection split must be another one. Any code path
// that selected a checkpoint, stopped early or chose a penalty on the test
// split would have to read it before the end.
func TestTestSplitIsReadOnceAfterTraining(t *testing.T) {
	// Labelled text with its own dev split, and a test split whose labels
	// are the opposite of the training rule: selecting on it would prefer
	// the worst checkpoint.
	dir := t.TempDir()
	for split, flip := range map[string]bool{"train": false, "dev": false, "test": true} {
		var b strings.Builder
		b.WriteString("label\ttext\n")
		for i := range 40 {
			label := []string{"neg", "pos"}[(i%2+map[bool]int{false: 0, true: 1}[flip])%2]
			fmt.Fprintf(&b, "%s\t%s %s\n", label, []string{"bad awful", "good great"}[i%2], sentence(i))
		}
		writeFile(t, filepath.Join(dir, split+".tsv"), b.String())
	}
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		val  string
	}{
		{"image task, carved validation", func(c *Config) { c.ModelConfig = tinyModel(true, false) }, ValidationSplit},
		{"text task with its own dev split", func(c *Config) {
			c.ModelConfig, c.Task = tinyModel(false, true), Task{Name: TaskLabelled, Data: dir}
			c.Batch, c.Patience = 8, 1
		}, "dev"},
		{"linear probe", func(c *Config) { c.ModelConfig, c.Probe = tinyModel(true, false), DefaultProbe() }, ValidationSplit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tinyConfig(Task{Name: TaskEmbeddedImages}, 12, 16)
			c.EvalEvery = 3
			tc.edit(&c)
			out := t.TempDir()
			rec := &readRecorder{out: out}
			res, err := Run(context.Background(), backend(t), c, Options{OutDir: out, Quiet: true, wrapTask: rec.wrap})
			if err != nil {
				t.Fatal(err)
			}
			if res.SelectedOn != tc.val || res.Split != "test" {
				t.Errorf("selected on %q, tested on %q; want %q and test", res.SelectedOn, res.Split, tc.val)
			}
			var tests []int
			for i, r := range rec.reads {
				if r.split == res.Split {
					tests = append(tests, i)
				}
			}
			if len(tests) != 1 || tests[0] != len(rec.reads)-1 || rec.reads[tests[0]].stepsDone != res.StepsRun {
				t.Errorf("reads %+v: want the test split read once, last, after all %d steps", rec.reads, res.StepsRun)
			}
			if !slices.ContainsFunc(rec.reads, func(r splitRead) bool { return r.split == tc.val }) {
				t.Errorf("reads %+v: the validation split %q was never read", rec.reads, tc.val)
			}
			if c.Probe == nil {
				checkResultFiles(t, res, out)
			}
		})
	}
}

// countdown is a context that is cancelled after its Done channel has been
// asked for n times: the training loop asks once per step, so it stops the
// run at a chosen step.
type countdown struct {
	context.Context
	mu   sync.Mutex
	n    int
	done chan struct{}
}

func newCountdown(n int) *countdown {
	return &countdown{Context: context.Background(), n: n, done: make(chan struct{})}
}

func (c *countdown) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n--; c.n < 0 {
		select {
		case <-c.done:
		default:
			close(c.done)
		}
	}
	return c.done
}

func (c *countdown) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n < 0 {
		return context.Canceled
	}
	return nil
}

// lossesByStep reads metrics.jsonl's loss per step.
func lossesByStep(t *testing.T, out string) map[int]float64 {
	t.Helper()
	m := map[int]float64{}
	for _, r := range readJSONL(t, filepath.Join(out, MetricsFile)) {
		step := int(r["step"].(float64))
		if _, dup := m[step]; dup {
			t.Errorf("%s: step %d logged twice", out, step)
		}
		m[step] = r["loss_image"].(float64)
	}
	return m
}

// TestResumeMatchesUninterruptedRun stops a run at step 7, deletes its
// newest checkpoint (as a kill between checkpoints would leave it), resumes
// it from step 4, and compares everything with an uninterrupted run.
func TestResumeMatchesUninterruptedRun(t *testing.T) {
	c := tinyConfig(Task{Name: TaskEmbeddedImages}, 12, 16)
	c.ModelConfig = tinyModel(true, false)
	c.EvalEvery = 4
	whole, wholeOut := runQuiet(t, c)

	out := t.TempDir()
	_, err := Run(newCountdown(7), backend(t), c, Options{OutDir: out, Quiet: true})
	if !errors.Is(err, train.ErrInterrupted) || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("interrupted run: err = %v, want an interruption that says --resume", err)
	}
	steps, err := train.ListCheckpoints(filepath.Join(out, train.CheckpointsDir))
	if err != nil || !slices.Equal(steps, []int{4, 7}) {
		t.Fatalf("checkpoints at %v (%v), want [4 7]", steps, err)
	}
	if err := os.RemoveAll(filepath.Join(out, train.CheckpointsDir, train.CheckpointName(7))); err != nil {
		t.Fatal(err)
	}
	// The interrupted run's logs reach step 7; its eval.jsonl step 4.
	if n := len(readJSONL(t, filepath.Join(out, MetricsFile))); n != 7 {
		t.Fatalf("interrupted run logged %d steps, want 7", n)
	}
	if _, err := Run(context.Background(), backend(t), c, Options{OutDir: out, Quiet: true}); err == nil ||
		!strings.Contains(err.Error(), "--resume") || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("a second run into the same --out: err = %v, want a refusal naming --resume and --overwrite", err)
	}
	resumed, err := Run(context.Background(), backend(t), c, Options{OutDir: out, Quiet: true, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	if !sameMetrics(resumed.Metrics, whole.Metrics) || !sameMetrics(resumed.ValidationMetrics, whole.ValidationMetrics) ||
		resumed.Step != whole.Step || resumed.StepsRun != whole.StepsRun {
		t.Errorf("resumed run %+v\nuninterrupted %+v", resumed, whole)
	}
	if a, b := lossesByStep(t, out), lossesByStep(t, wholeOut); len(a) != 12 || !maps2Equal(a, b) {
		t.Errorf("losses by step: resumed %v, uninterrupted %v", a, b)
	}
	ea, eb := readJSONL(t, filepath.Join(out, EvalFile)), readJSONL(t, filepath.Join(wholeOut, EvalFile))
	if fmt.Sprint(ea) != fmt.Sprint(eb) {
		t.Errorf("eval.jsonl: resumed %v, uninterrupted %v", ea, eb)
	}
	ma := loadModel(t, resumed.BestDir)
	mb := loadModel(t, whole.BestDir)
	for k, v := range mb.Weights {
		if !slices.Equal(ma.Weights[k], v) {
			t.Errorf("best model weight %s differs between the resumed and the uninterrupted run", k)
		}
	}
	// A finished run resumed again reads its result back.
	again, err := Run(context.Background(), backend(t), c, Options{OutDir: out, Quiet: true, Resume: true})
	if err != nil || !sameMetrics(again.Metrics, whole.Metrics) {
		t.Errorf("resuming a finished run: %v, %v", again, err)
	}
	// A resume with another configuration names what differs.
	c.Seed = 99
	if _, err := Run(context.Background(), backend(t), c, Options{OutDir: out, Quiet: true, Resume: true}); err == nil ||
		!strings.Contains(err.Error(), "seed (1 in the run, now 99)") {
		t.Errorf("resume with another seed: err = %v", err)
	}
	// --overwrite replaces the run.
	c.Seed, c.Steps = 1, 4
	res, err := Run(context.Background(), backend(t), c, Options{OutDir: out, Quiet: true, Overwrite: true})
	if err != nil || res.StepsRun != 4 {
		t.Fatalf("overwrite: %+v, %v", res, err)
	}
	if n := len(readJSONL(t, filepath.Join(out, MetricsFile))); n != 4 {
		t.Errorf("after --overwrite metrics.jsonl has %d lines, want 4", n)
	}
}

func maps2Equal(a, b map[int]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestFewShotSubsetsAndEpochs(t *testing.T) {
	labels := make([]int, 100)
	for i := range labels {
		labels[i] = i % 4
	}
	a, err := fewShot(labels, 4, 0, 5, 1)
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int, 4)
	for _, i := range a {
		counts[labels[i]]++
	}
	if !slices.Equal(counts, []int{5, 5, 5, 5}) || !slices.IsSorted(a) {
		t.Errorf("per-class 5: %v (class counts %v)", a, counts)
	}
	b, _ := fewShot(labels, 4, 0, 5, 2)
	a2, _ := fewShot(labels, 4, 0, 5, 1)
	if slices.Equal(a, b) || !slices.Equal(a, a2) {
		t.Errorf("seed 1 drew %v twice as %v; seed 2 drew %v: want the same subset for a seed, another for another seed", a, a2, b)
	}
	n, _ := fewShot(labels, 4, 17, 0, 3)
	if len(n) != 17 {
		t.Errorf("train-examples 17 drew %d", len(n))
	}
	for _, tc := range []struct {
		n, per int
		want   string
	}{{0, 30, "class 0 has only 25"}, {101, 0, "holds only 100"}} {
		if _, err := fewShot(labels, 4, tc.n, tc.per, 1); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("fewShot(n %d, per class %d): err = %v, want %q", tc.n, tc.per, err, tc.want)
		}
	}

	// A run: 3 images per class of the 10 classes, 2 epochs of batches of 10.
	c := tinyConfig(Task{Name: TaskEmbeddedImages}, 0, 10)
	c.ModelConfig = tinyModel(true, false)
	c.PerClass, c.Epochs = 3, 2
	res, _ := runQuiet(t, c)
	if res.TrainExamples != 30 || res.Steps != 6 || res.StepsRun != 6 || res.EpochsRun != 2 {
		t.Errorf("result %+v: want 30 training examples, 6 steps, 2 epochs", res)
	}
}

func TestImageShapeMismatchIsAnErrorOrAnExplicitAdaptation(t *testing.T) {
	idx := t.TempDir()
	writeIDX(t, idx, 40)
	c := tinyConfig(Task{Name: TaskMNIST, Data: idx}, 2, 8)
	c.ModelConfig = tinyModel(true, false)
	c.ModelConfig.ImageSize = 14
	_, err := Run(context.Background(), backend(t), c, Options{OutDir: t.TempDir(), Quiet: true})
	if err == nil || !strings.Contains(err.Error(), "1×28×28") && !strings.Contains(err.Error(), "28×28×1") ||
		!strings.Contains(err.Error(), "--adapt-images") {
		t.Fatalf("a 14×14 model on 28×28 images: err = %v, want a refusal naming both shapes and --adapt-images", err)
	}
	c.AdaptImages = true
	var msg strings.Builder
	res, err := Run(context.Background(), backend(t), c, Options{OutDir: t.TempDir(), Quiet: true, Progress: &msg})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg.String(), "adapting images") {
		t.Errorf("adaptation said %q, want a message", msg.String())
	}
	// The fine-tuned model scored on another task: shapes and classes are checked.
	if _, err := Evaluate(backend(t), res.BestDir, Task{Name: TaskEmbeddedImages}, EvalOptions{}); err == nil ||
		!strings.Contains(err.Error(), "--adapt-images") {
		t.Errorf("evaluating a 14×14 model on 28×28 images without adaptation: err = %v", err)
	}
	if _, err := Evaluate(backend(t), res.BestDir, Task{Name: TaskEmbeddedImages}, EvalOptions{AdaptImages: true, Log: &msg}); err == nil ||
		!strings.Contains(err.Error(), "classes") {
		t.Errorf("evaluating an MNIST-digit head on Fashion-MNIST classes: err = %v, want a class mismatch", err)
	}
}

// TestLinearProbeFitsToConvergence checks the softmax objective's gradient
// against finite differences, that the fit ends with a vanishing gradient,
// and that a probe run keeps the encoder frozen, picks the penalty with the
// best validation score and saves a model that Evaluate scores as reported.
func TestLinearProbeFitsToConvergence(t *testing.T) {
	// Three Gaussian-ish blobs in 4 dimensions, deterministic.
	var x [][]float64
	var y []int
	for i := range 60 {
		c := i % 3
		r := []float64{float64(c), float64(2 - c), math.Sin(float64(i)), math.Cos(float64(3 * i))}
		x, y = append(x, r), append(y, c)
	}
	sm := &softmaxModel{k: 3, d: 4, l2: 0.1}
	theta := make([]float64, 15)
	for i := range theta {
		theta[i] = 0.1 * math.Sin(float64(i+1))
	}
	g := make([]float64, 15)
	sm.loss(theta, g, x, y)
	for i := range theta {
		h := 1e-6
		p, m := slices.Clone(theta), slices.Clone(theta)
		p[i] += h
		m[i] -= h
		num := (sm.loss(p, make([]float64, 15), x, y) - sm.loss(m, make([]float64, 15), x, y)) / (2 * h)
		if math.Abs(num-g[i]) > 1e-7 {
			t.Errorf("gradient[%d] = %g, finite difference %g", i, g[i], num)
		}
	}
	it, conv, _ := sm.fit(make([]float64, 15), x, y, 500, 1e-8)
	sm.loss(sm.theta, g, x, y)
	if !conv || maxAbs(g) > 1e-8 {
		t.Errorf("fit: %d iterations, converged %v, gradient %g", it, conv, maxAbs(g))
	}

	dir, w0 := pretrainedDir(t)
	c := tinyConfig(Task{Name: TaskEmbeddedImages}, 0, 16)
	c.Model, c.ModelConfig = dir, nil
	// The best penalty is neither the first nor the last tried.
	c.Probe = &ProbeConfig{L2: []float64{1e-1, 1e-2, 10}, MaxIter: 300, Tol: 1e-4}
	res, out := runQuiet(t, c)
	if res.Probe == nil || len(res.Probe.Fits) != 3 {
		t.Fatalf("probe result %+v", res.Probe)
	}
	bestL2, bestVal := 0.0, -1.0
	for _, f := range res.Probe.Fits {
		if !f.Converged {
			t.Errorf("λ=%g: not converged in %d iterations", f.L2, f.Iterations)
		}
		if f.Validation > bestVal {
			bestL2, bestVal = f.L2, f.Validation
		}
	}
	if res.Probe.L2 != bestL2 || res.ValidationMetrics["accuracy"] != bestVal {
		t.Errorf("probe chose λ=%g (validation %v), the fits say λ=%g (%g)", res.Probe.L2, res.ValidationMetrics, bestL2, bestVal)
	}
	if acc := res.Metrics["accuracy"]; acc < 0.3 {
		t.Errorf("probe test accuracy %.3f on random features of Fashion-MNIST, want ≥ 0.3 (chance 0.1)", acc)
	}
	t.Logf("probe: %+v, test %v", res.Probe, res.Metrics)
	got, err := Evaluate(backend(t), res.BestDir, Task{}, EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got["accuracy"]-res.Metrics["accuracy"]) > 0 {
		t.Errorf("Evaluate(best) = %v, the probe reported %v", got, res.Metrics)
	}
	// The saved head (standardisation folded in, float32) predicts the
	// validation split as the fit did (float64 on standardised features),
	// up to one example decided by rounding.
	val, err := Evaluate(backend(t), res.BestDir, Task{}, EvalOptions{Split: ValidationSplit})
	if err != nil {
		t.Fatal(err)
	}
	if d := math.Abs(val["accuracy"] - res.ValidationMetrics["accuracy"]); d > 1.0/float64(res.ValidationExamples)+1e-12 {
		t.Errorf("the saved probe scores %v on validation, the fit %v", val, res.ValidationMetrics)
	}
	m := loadModel(t, res.BestDir)
	for k, v := range m.Weights {
		if strings.HasPrefix(k, "/heads/") {
			continue
		}
		if !slices.Equal(v, w0[k]) {
			t.Errorf("the probe changed the encoder weight %s", k)
		}
	}
	if h := m.Config.TaskHeads[0]; h.Hidden {
		t.Errorf("probe head %+v, want a linear head", h)
	}
	if _, err := os.Stat(filepath.Join(out, train.CheckpointsDir)); !os.IsNotExist(err) {
		t.Errorf("a probe wrote training checkpoints (stat err %v)", err)
	}
}

// TestBrownGenresSplitByDocument writes a small Brown-like corpus: pieces
// of one document never reach two splits, and the main metric is macro-F1.
func TestBrownGenresSplitByDocument(t *testing.T) {
	root := filepath.Join(t.TempDir(), "brown-genres")
	genres := []string{"news", "fiction", "religion"}
	for split, docs := range map[string]int{"train": 12, "test": 3} {
		for g, genre := range genres {
			for d := range docs {
				var b strings.Builder
				for i := range 30 { // 30 lines of 5-9 words: several pieces
					fmt.Fprintf(&b, "%s %s\n", genre, sentence(i+7*d+g))
				}
				writeFile(t, filepath.Join(root, split, genre, fmt.Sprintf("c%s%02d.txt", genre[:1], d)), b.String())
			}
		}
	}
	td, err := openTask(Task{Name: "brown", Data: root})
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]string{} // document → split
	for _, split := range []string{"train", ValidationSplit, "test"} {
		s, err := td.loadTexts(split)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(slices.Compact(slices.Clone(s.Doc))); s.Len() < 2*n {
			t.Errorf("split %s: %d pieces of %d documents, want several per document", split, s.Len(), n)
		}
		for i, d := range s.Doc {
			if other, ok := docs[d]; ok && other != split {
				t.Errorf("document %s is in %s and %s", d, other, split)
			}
			docs[d] = split
			if n := len(strings.Fields(s.A[i])); n > BrownChunkWords {
				t.Errorf("piece %s has %d words", s.Src[i], n)
			}
		}
	}
	if td.def.mainMetric() != "macro_f1" {
		t.Errorf("main metric %q, want macro_f1", td.def.mainMetric())
	}
	c := tinyConfig(Task{Name: TaskBrown, Data: root}, 4, 8)
	c.ModelConfig = tinyModel(false, true)
	res, out := runQuiet(t, c)
	if res.Metric != "macro_f1" || res.SelectedOn != ValidationSplit || len(res.Metrics) != 2 {
		t.Errorf("result %+v", res)
	}
	checkResultFiles(t, res, out)
}

// TestRegisteredTaskIsFoundEverywhere registers a task the way a task file
// does and finds it by name and alias, in TaskNames and through openTask
// (with a carved validation split); a name taken twice panics.
func TestRegisteredTaskIsFoundEverywhere(t *testing.T) {
	const name = "test-registry-task"
	if _, taken := taskIndex[name]; !taken {
		registerTask(&taskEntry{def: taskDef{Name: name, Modality: "text", Kind: "classify",
			Metrics: []string{"accuracy"}, TestSplits: []string{"test"}}, aliases: []string{"trt"},
			open: func(def *taskDef, _ string) (*taskData, error) {
				l := &texts.Labelled{Classes: []string{"a", "b"}}
				for i := range 20 {
					l.Texts, l.Labels, l.Sources = append(l.Texts, sentence(i)), append(l.Labels, i%2), append(l.Sources, fmt.Sprint(i))
				}
				return labelledData(def, l.Classes, map[string]*texts.Labelled{"train": l, "test": l}), nil
			}})
	}
	if !slices.Contains(TaskNames(), name) {
		t.Errorf("TaskNames() lacks %q", name)
	}
	td, err := openTask(Task{Name: "TRT"})
	if err != nil {
		t.Fatal(err)
	}
	if td.def.Name != name || td.def.ValSplit != ValidationSplit {
		t.Errorf("task %+v", td.def)
	}
	if s, err := td.loadTexts(ValidationSplit); err != nil || s.Len() != 2 {
		t.Errorf("validation split: %v examples, %v; want 2 (every tenth of 20)", s, err)
	}
	defer func() {
		if recover() == nil {
			t.Errorf("registering %q twice did not panic", name)
		}
	}()
	registerTask(&taskEntry{def: taskDef{Name: "another"}, aliases: []string{name}})
}

// What an interrupted atomic write leaves in a cell's folder does not make
// the folder a run: a fresh run starts there; anything else still refuses.
func TestPrepareOutIgnoresAtomicLeftovers(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".tmp-config.json-123"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := prepareOut(&Options{OutDir: dir}, []byte("{}")); err != nil {
		t.Errorf("folder with a temporary file only: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "metrics.jsonl"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := prepareOut(&Options{OutDir: dir}, []byte("{}")); err == nil || !strings.Contains(err.Error(), "metrics.jsonl") {
		t.Errorf("folder with a run's file: %v, want a refusal naming it", err)
	}
}
