package finetune

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/data/images"
	"github.com/vitbert/vitbert/data/texts"
	"github.com/vitbert/vitbert/internal/testmodel"
	"github.com/vitbert/vitbert/internal/testutil"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/pretrain"
)

const fixtures = "../testdata/hf/"

func backend(t *testing.T) compute.Backend {
	t.Helper()
	b, err := compute.New()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tinyModel is a 1-block, D=32 model: 28×28 grey images in 7×7 patches
// and/or texts of up to 64 tokens.
func tinyModel(image, text bool) *model.Config {
	c := &model.Config{Hidden: 32, Layers: 1, Heads: 2, MLP: 64, Norm: model.PreNorm, LayerNormEps: 1e-12, Activation: "gelu"}
	if image {
		c.ImageSize, c.Channels, c.PatchSize = 28, 1, 7
	}
	if text {
		c.VocabSize, c.MaxTextLength, c.SegmentVocab = 30522, 64, 2
	}
	return c
}

// tinyConfig fine-tunes a scratch tiny model on task.
func tinyConfig(task Task, steps, batch int) Config {
	c := DefaultConfig()
	c.ModelConfig = tinyModel(true, true)
	c.Task = task
	c.Steps, c.Batch, c.EvalBatch, c.EvalEvery, c.MaxLength = steps, batch, 64, 0, 32
	c.Optimizer.LearningRate = 2e-3
	return c
}

func runQuiet(t *testing.T, c Config) (*Result, string) {
	t.Helper()
	out := t.TempDir()
	res, err := Run(context.Background(), backend(t), c, Options{OutDir: out, Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	return res, out
}

func readJSONL(t *testing.T, path string) []map[string]any {
	t.Helper()
	return testutil.ReadJSONL[map[string]any](t, path)
}

// loadModel loads the checkpoint directory dir.
func loadModel(t testing.TB, dir string) *checkpoint.Model {
	t.Helper()
	m, err := checkpoint.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkResultFiles checks result.json against the returned result; that
// the selected step is the first best validation score in eval.jsonl, which
// holds validation scores only; and that Evaluate on OUT/best reproduces the
// reported test scores exactly.
func checkResultFiles(t *testing.T, res *Result, out string) {
	t.Helper()
	onDisk := testutil.ReadJSON[Result](t, filepath.Join(out, ResultFile))
	if !sameMetrics(onDisk.Metrics, res.Metrics) || onDisk.Step != res.Step || onDisk.Metric != res.Metric {
		t.Errorf("result.json %+v differs from the returned %+v", onDisk, res)
	}
	evals := readJSONL(t, filepath.Join(out, EvalFile))
	bestStep, bestVal := -1, math.Inf(-1)
	for _, e := range evals {
		if e["split"] != res.SelectedOn || res.SelectedOn == res.Split {
			t.Errorf("eval.jsonl scores split %v; the selection split is %q, the test split %q", e["split"], res.SelectedOn, res.Split)
		}
		v, _ := e["metrics"].(map[string]any)[res.Metric].(float64)
		if v > bestVal {
			bestStep, bestVal = int(e["step"].(float64)), v
		}
	}
	if bestStep != res.Step || bestVal != res.ValidationMetrics[res.Metric] {
		t.Errorf("eval.jsonl's best is %g at step %d, result.json says %g at step %d", bestVal, bestStep, res.ValidationMetrics[res.Metric], res.Step)
	}
	got, err := Evaluate(backend(t), res.BestDir, Task{}, EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !sameMetrics(got, res.Metrics) {
		t.Errorf("Evaluate(best) = %v, fine-tuning reported %v", got, res.Metrics)
	}
	m := loadModel(t, res.BestDir)
	if len(m.Config.TaskHeads) != 1 || m.Config.TaskHeads[0].Name != HeadName {
		t.Errorf("best model heads = %+v, want only %q", m.Config.TaskHeads, HeadName)
	}
}

// sameMetrics compares exactly, NaN equal to NaN.
func sameMetrics(a, b Metrics) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !(v == w || math.IsNaN(v) && math.IsNaN(w)) {
			return false
		}
	}
	return true
}

func TestFinetuneEmbeddedImagesBeatsChance(t *testing.T) {
	c := tinyConfig(Task{Name: TaskEmbeddedImages}, 80, 64)
	c.EvalEvery = 40
	res, out := runQuiet(t, c)
	if res.Task != TaskEmbeddedImages || res.Metric != "accuracy" || res.Split != "test" || res.StepsRun != 80 {
		t.Errorf("result = %+v", res)
	}
	// Ten balanced classes: chance is 0.1.
	if acc := res.Metrics["accuracy"]; acc < 0.2 {
		t.Errorf("accuracy %.3f after 80 steps, want ≥ 0.2 (chance 0.1)", acc)
	}
	t.Logf("embedded images: %v at step %d", res.Metrics, res.Step)
	if n := len(readJSONL(t, filepath.Join(out, MetricsFile))); n != 80 {
		t.Errorf("metrics.jsonl has %d lines, want 80", n)
	}
	evals := readJSONL(t, filepath.Join(out, EvalFile))
	var steps []int
	for _, e := range evals {
		steps = append(steps, int(e["step"].(float64)))
	}
	if !slices.Equal(steps, []int{40, 80}) {
		t.Errorf("evaluations at steps %v, want [40 80]", steps)
	}
	checkResultFiles(t, res, out)
	m := loadModel(t, res.BestDir)
	h := m.Config.TaskHeads[0]
	if h.Modality != "image" || h.Kind != model.HeadClassify || h.Outputs != 10 || !h.Hidden || h.Activation != "gelu" ||
		!slices.Equal(h.Labels, images.FashionMNISTClasses) {
		t.Errorf("head = %+v, want the paper's image head over the 10 Fashion-MNIST classes", h)
	}
	if m.Config.HasText() {
		t.Errorf("a scratch image baseline kept a text side")
	}
}

// pretrainedDir saves a fresh unified model with pre-training heads, as
// vitbert pretrain's OUT/model would hold.
func pretrainedDir(t *testing.T) (string, map[string][]float32) {
	t.Helper()
	c := tinyModel(true, true)
	c.AddHead(model.PaperHead(pretrain.MLMHead, model.HeadMLM, "text", c.VocabSize))
	c.AddHead(model.PaperHead(pretrain.ImageHead, model.HeadClassify, "image", 10))
	return testmodel.SaveFresh(t, c, 7)
}

func changed(a, b []float32) bool { return !slices.Equal(a, b) }

func TestFinetuneEmbeddedTextFromPretrainedModel(t *testing.T) {
	dir, before := pretrainedDir(t)
	c := tinyConfig(Task{Name: TaskEmbeddedText}, 40, 32)
	c.Model, c.ModelConfig, c.EvalEvery = dir, nil, 20
	res, out := runQuiet(t, c)
	if res.From != dir || res.Metric != "accuracy" {
		t.Errorf("result = %+v", res)
	}
	if _, ok := res.Metrics["f1"]; !ok || len(res.Metrics) != 2 {
		t.Errorf("metrics %v, want accuracy and f1", res.Metrics)
	}
	_, test, err := texts.DefaultLabelled()
	if err != nil {
		t.Fatal(err)
	}
	counts := test.Counts()
	majority := float64(max(counts[0], counts[1])) / float64(test.Len())
	t.Logf("embedded text: %v at step %d (majority class %.3f)", res.Metrics, res.Step, majority)
	if acc := res.Metrics["accuracy"]; acc <= majority+0.05 {
		t.Errorf("accuracy %.3f, want above the majority rate %.3f by 0.05", acc, majority)
	}
	checkResultFiles(t, res, out)

	m := loadModel(t, res.BestDir)
	h := m.Config.TaskHeads[0]
	if h.Modality != "text" || h.Outputs != 2 || !slices.Equal(h.Labels, []string{"ham", "spam"}) {
		t.Errorf("head = %+v, want text ham/spam", h)
	}
	// Full fine-tuning: the encoder and the text embeddings move; the image
	// side, which a text task never reads, is kept as it was.
	for _, p := range []string{"/encoder/layer_0/mlp_in/dense/weights", "/text/embeddings/position/embeddings"} {
		if !changed(before[p], m.Weights[p]) {
			t.Errorf("%s was not trained", p)
		}
	}
	for _, p := range []string{"/image/embeddings/patch/dense/weights", "/image/embeddings/class_token"} {
		if changed(before[p], m.Weights[p]) {
			t.Errorf("%s changed by a text task", p)
		}
	}
	if !m.Config.HasImage() {
		t.Errorf("fine-tuning dropped the pre-trained model's image side")
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

var words = strings.Fields("the cat sat on a mat while dogs ran in parks and birds sang over green hills near blue lakes")

// sentence i is a deterministic short sentence.
func sentence(i int) string {
	n := 3 + i%5
	var w []string
	for j := range n {
		w = append(w, words[(i*7+j*3)%len(words)])
	}
	return strings.Join(w, " ")
}

// writeGLUE writes a small GLUE folder for one task under root/<Task.Name>.
func writeGLUE(t *testing.T, root, task string, rows int) {
	t.Helper()
	var header string
	row := func(i int) string { return "" }
	splits := []string{"train", "dev"}
	switch task {
	case "STS-B":
		header = "index\tsentence1\tsentence2\tscore"
		row = func(i int) string {
			return fmt.Sprintf("%d\t%s\t%s\t%.1f", i, sentence(i), sentence(i+i%3), float64(i%6))
		}
	case "MRPC":
		header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"
		row = func(i int) string {
			return fmt.Sprintf("%d\t%d\t%d\t%s\t%s", i%2, i, i+1000, sentence(i), sentence(i+i%2))
		}
	case "MNLI":
		header = "index\tsentence1\tsentence2\tgold_label"
		labels := []string{"contradiction", "entailment", "neutral"}
		row = func(i int) string { return fmt.Sprintf("%d\t%s\t%s\t%s", i, sentence(i), sentence(i+1), labels[i%3]) }
		splits = []string{"train", "dev_matched", "dev_mismatched"}
	case "CoLA":
		row = func(i int) string { return fmt.Sprintf("src\t%d\t\t%s", i%2, sentence(i)) }
	}
	for k, split := range splits {
		var b strings.Builder
		if header != "" {
			b.WriteString(header + "\n")
		}
		for i := range rows {
			b.WriteString(row(i+k*rows) + "\n")
		}
		writeFile(t, filepath.Join(root, task, split+".tsv"), b.String())
	}
}

func TestGLUETaskWiring(t *testing.T) {
	for _, tc := range []struct {
		task    string
		kind    string
		outputs int
		metrics []string
	}{
		{"STS-B", model.HeadRegress, 1, []string{"pearson", "spearman"}},
		{"MRPC", model.HeadClassify, 2, []string{"accuracy", "f1"}},
		{"MNLI", model.HeadClassify, 3, []string{"accuracy", "accuracy_dev_mismatched"}},
		{"CoLA", model.HeadClassify, 2, []string{"mcc"}},
	} {
		t.Run(tc.task, func(t *testing.T) {
			root := t.TempDir()
			writeGLUE(t, root, tc.task, 24)
			c := tinyConfig(Task{Name: strings.ToLower(tc.task), Data: root}, 6, 8)
			c.ModelConfig = tinyModel(false, true)
			res, out := runQuiet(t, c)
			if got := res.Metrics.SortedKeys(); !slices.Equal(got, tc.metrics) {
				t.Errorf("metrics %v, want %v", got, tc.metrics)
			}
			for k, v := range res.Metrics {
				if !math.IsNaN(v) && (v < -1 || v > 1) {
					t.Errorf("%s = %g outside [-1, 1]", k, v)
				}
			}
			checkResultFiles(t, res, out)
			m := loadModel(t, res.BestDir)
			h := m.Config.TaskHeads[0]
			if h.Kind != tc.kind || h.Outputs != tc.outputs {
				t.Errorf("head %+v, want %s with %d outputs", h, tc.kind, tc.outputs)
			}
			// One split by name: its metrics without suffix.
			split := "dev"
			if tc.task == "MNLI" {
				split = "dev_mismatched"
			}
			one, err := Evaluate(backend(t), res.BestDir, Task{}, EvalOptions{Split: split})
			if err != nil {
				t.Fatal(err)
			}
			if tc.task == "MNLI" {
				if one["accuracy"] != res.Metrics["accuracy_dev_mismatched"] || len(one) != 1 {
					t.Errorf("Evaluate(dev_mismatched) = %v, fine-tuning reported %v", one, res.Metrics)
				}
			} else if !sameMetrics(one, res.Metrics) {
				t.Errorf("Evaluate(dev) = %v, fine-tuning reported %v", one, res.Metrics)
			}
		})
	}
}

func TestGLUEUnlabelledSplitIsAnError(t *testing.T) {
	root := t.TempDir()
	writeGLUE(t, root, "MRPC", 16)
	writeFile(t, filepath.Join(root, "MRPC", "test.tsv"), "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n0\t1\t2\ta b\tc d\n")
	c := tinyConfig(Task{Name: "mrpc", Data: root}, 2, 8)
	c.ModelConfig = tinyModel(false, true)
	res, _ := runQuiet(t, c)
	_, err := Evaluate(backend(t), res.BestDir, Task{}, EvalOptions{Split: "test"})
	if err == nil || !strings.Contains(err.Error(), "no labels") {
		t.Errorf("Evaluate on the unlabelled test split: err = %v, want a 'no labels' error", err)
	}
}

func TestLabelledTextHeldOutAndMetrics(t *testing.T) {
	for _, tc := range []struct {
		name    string
		classes []string
		metrics []string
	}{
		{"binary", []string{"neg", "pos"}, []string{"accuracy", "f1"}},
		{"three", []string{"a", "b", "c"}, []string{"accuracy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			b.WriteString("label\ttext\n")
			for i := range 40 {
				fmt.Fprintf(&b, "%s\t%s\n", tc.classes[i%len(tc.classes)], sentence(i))
			}
			path := filepath.Join(t.TempDir(), "set.tsv")
			writeFile(t, path, b.String())
			c := tinyConfig(Task{Name: TaskLabelled, Data: path}, 3, 8)
			c.ModelConfig = tinyModel(false, true)
			res, out := runQuiet(t, c)
			if res.Split != "test" || res.SelectedOn != ValidationSplit || !res.ValidationCarved {
				t.Errorf("test split %q selected on %q (carved %v), want the held-out test and the carved validation split", res.Split, res.SelectedOn, res.ValidationCarved)
			}
			if got := res.Metrics.SortedKeys(); !slices.Equal(got, tc.metrics) {
				t.Errorf("metrics %v, want %v", got, tc.metrics)
			}
			checkResultFiles(t, res, out)
		})
	}
}

func TestHoldOutTextEveryTenth(t *testing.T) {
	l := &texts.Labelled{Classes: []string{"x"}}
	for i := range 25 {
		l.Texts = append(l.Texts, fmt.Sprint(i))
		l.Labels = append(l.Labels, 0)
		l.Sources = append(l.Sources, fmt.Sprint(i))
	}
	tr, held := holdOutText(l)
	if !slices.Equal(held.Texts, []string{"0", "10", "20"}) || tr.Len() != 22 {
		t.Errorf("held out %v (train %d), want [0 10 20] and 22", held.Texts, tr.Len())
	}
}

func TestEarlyStopping(t *testing.T) {
	c := tinyConfig(Task{Name: TaskEmbeddedImages}, 40, 16)
	c.ModelConfig = tinyModel(true, false)
	// A learning rate this small leaves the predictions as they are, so the
	// second evaluation cannot improve on the first.
	c.Optimizer.LearningRate = 1e-12
	c.EvalEvery, c.Patience = 2, 1
	res, out := runQuiet(t, c)
	if !res.EarlyStopped || res.StepsRun != 4 || res.Step != 2 {
		t.Errorf("result %+v, want stopped after step 4 with the best at step 2", res)
	}
	if n := len(readJSONL(t, filepath.Join(out, EvalFile))); n != 2 {
		t.Errorf("eval.jsonl has %d lines, want 2", n)
	}
}

func TestBadInput(t *testing.T) {
	textOnly := fixtures + "bert-tiny/cls"
	imageOnly := fixtures + "vit-tiny/cls"
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"unknown task", func(c *Config) { c.Task = Task{Name: "imagenet-22k"} }, "unknown task"},
		{"no data path", func(c *Config) { c.Task = Task{Name: TaskMNIST} }, "needs --data"},
		{"missing data path", func(c *Config) { c.Task = Task{Name: "sst2", Data: "/nonexistent/glue"} }, "/nonexistent/glue"},
		{"not an image data set", func(c *Config) { c.Task = Task{Name: TaskCIFAR10, Data: fixtures + "tokenizer"} }, "not an image data set"},
		{"missing GLUE file", func(c *Config) { c.Task = Task{Name: "rte", Data: t.TempDir()} }, "train.tsv"},
		{"image task on a text-only model", func(c *Config) { c.Model = textOnly }, "no image side"},
		{"text task on an image-only model", func(c *Config) {
			c.Model, c.Task = imageOnly, Task{Name: TaskEmbeddedText}
		}, "no text side"},
		{"text task on a scratch image-only config", func(c *Config) {
			c.ModelConfig, c.Task = tinyModel(true, false), Task{Name: TaskEmbeddedText}
		}, "no text side"},
		{"max length beyond the position table", func(c *Config) {
			c.Task, c.MaxLength = Task{Name: TaskEmbeddedText}, 65
		}, "exceeds the model's position table (64)"},
		{"no model", func(c *Config) { c.Model = "" }, "no model"},
		{"missing model dir", func(c *Config) { c.Model = "/nonexistent/model" }, "/nonexistent/model"},
		{"zero steps", func(c *Config) { c.Steps = 0 }, "steps (--steps) must be positive"},
		{"unknown preset", func(c *Config) { c.ModelConfig, c.Preset = nil, "huge" }, "unknown preset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tinyConfig(Task{Name: TaskEmbeddedImages}, 5, 8)
			tc.edit(&c)
			_, err := Run(context.Background(), backend(t), c, Options{OutDir: t.TempDir(), Quiet: true})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
			if testing.Verbose() {
				t.Log(err)
			}
		})
	}
}

func TestEvaluateBadInput(t *testing.T) {
	b := backend(t)
	for _, tc := range []struct {
		name, dir string
		task      Task
		want      string
	}{
		{"no task and no record", fixtures + "bert-tiny/cls", Task{}, "name the task"},
		{"no fine-tuned head", fixtures + "bert-tiny/cls", Task{Name: TaskEmbeddedText}, "no fine-tuned"},
		{"image task on a text model", fixtures + "bert-tiny/cls", Task{Name: TaskEmbeddedImages}, "no image side"},
		{"unknown task", fixtures + "bert-tiny/cls", Task{Name: "nope"}, "unknown task"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Evaluate(b, tc.dir, tc.task, EvalOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
			if testing.Verbose() {
				t.Log(err)
			}
		})
	}
}

func TestFirstWords(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"a b c d", 2, "a b"},
		{"  a\tb\n\nc", 2, "  a\tb"},
		{"a b", 5, "a b"},
		{"one", 1, "one"},
		{"héllo wörld again", 2, "héllo wörld"},
	} {
		if got := firstWords(tc.s, tc.n); got != tc.want {
			t.Errorf("firstWords(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}

func TestMetricsJSONNaNIsNull(t *testing.T) {
	m := Metrics{"pearson": math.NaN(), "spearman": 0.5}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"pearson":null,"spearman":0.5}` {
		t.Errorf("JSON %s", b)
	}
	var back Metrics
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(back["pearson"]) || back["spearman"] != 0.5 {
		t.Errorf("round trip %v", back)
	}
	if !better(0.1, math.NaN()) || better(math.NaN(), 0.1) || better(0.5, 0.5) {
		t.Errorf("better: NaN must lose, ties must not win")
	}
}

func TestTaskNamesResolve(t *testing.T) {
	for _, n := range TaskNames() {
		d, err := lookupTask(n)
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if d.Name != n {
			t.Errorf("lookupTask(%q).Name = %q", n, d.Name)
		}
	}
	want := map[string][]string{"mrpc": {"f1", "accuracy"}, "qqp": {"f1", "accuracy"}, "cola": {"mcc"},
		"stsb": {"pearson", "spearman"}, "sst2": {"accuracy"}, "mnli": {"accuracy"}}
	for n, ms := range want {
		d, _ := lookupTask(n)
		if !reflect.DeepEqual(d.Metrics, ms) {
			t.Errorf("%s metrics %v, want %v", n, d.Metrics, ms)
		}
	}
	if d, _ := lookupTask("STS-B"); d.Kind != model.HeadRegress {
		t.Errorf("STS-B is not a regression task")
	}
	if d, _ := lookupTask("mnli"); !slices.Equal(d.TestSplits, []string{"dev_matched", "dev_mismatched"}) {
		t.Errorf("MNLI eval splits %v", d.TestSplits)
	}
}

// writeIDX writes the first n embedded images of each split as an MNIST-style folder.
func writeIDX(t *testing.T, dir string, n int) {
	t.Helper()
	train, test, err := images.Default()
	if err != nil {
		t.Fatal(err)
	}
	for prefix, ds := range map[string]*images.Dataset{"train": train.Head(n), "t10k": test.Head(n)} {
		var img, lbl bytes.Buffer
		if err := images.EncodeIDX(ds, &img, &lbl, false); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, prefix+"-images-idx3-ubyte"), img.String())
		writeFile(t, filepath.Join(dir, prefix+"-labels-idx1-ubyte"), lbl.String())
	}
}

func TestImageDataSetsFromDisk(t *testing.T) {
	idx := t.TempDir()
	writeIDX(t, idx, 64)
	// An ImageFolder of one split: two classes of 10 RGB 12×12 PNGs, one
	// dark and one bright, converted to the model's 28×28 grey.
	folder := t.TempDir()
	for c, name := range []string{"dark", "bright"} {
		for i := range 10 {
			img := image.NewRGBA(image.Rect(0, 0, 12, 12))
			for p := range img.Pix {
				img.Pix[p] = uint8(40 + 160*c + i)
			}
			var b bytes.Buffer
			if err := png.Encode(&b, img); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(folder, name, fmt.Sprintf("%02d.png", i)), b.String())
		}
	}
	for _, tc := range []struct {
		task    Task
		split   string
		classes []string
	}{
		{Task{Name: TaskMNIST, Data: idx}, "test", images.MNISTClasses},
		{Task{Name: TaskFashionMNIST, Data: idx}, "test", images.FashionMNISTClasses},
		{Task{Name: TaskImageFolder, Data: folder}, "test", []string{"bright", "dark"}},
	} {
		t.Run(tc.task.Name, func(t *testing.T) {
			c := tinyConfig(tc.task, 4, 8)
			c.ModelConfig = tinyModel(true, false)
			res, out := runQuiet(t, c)
			if res.Split != tc.split {
				t.Errorf("eval split %q, want %q", res.Split, tc.split)
			}
			checkResultFiles(t, res, out)
			m := loadModel(t, res.BestDir)
			if h := m.Config.TaskHeads[0]; !slices.Equal(h.Labels, tc.classes) {
				t.Errorf("head labels %v, want %v", h.Labels, tc.classes)
			}
		})
	}
	// The held-out images of the folder: every tenth of each class, 2 in all;
	// the validation split is every tenth of the 18 left, 1.
	td, err := openTask(Task{Name: TaskImageFolder, Data: folder})
	if err != nil {
		t.Fatal(err)
	}
	for split, want := range map[string]int{"train": 17, ValidationSplit: 1, "test": 2} {
		ds, err := td.loadImages(split, 28, 1)
		if err != nil {
			t.Fatal(err)
		}
		if ds.N != want || ds.C != 1 || ds.H != 28 {
			t.Errorf("split %s: %d images of %d×%d×%d, want %d of 1×28×28", split, ds.N, ds.C, ds.H, ds.W, want)
		}
	}
}

func TestCancelledContextStopsBeforeTraining(t *testing.T) {
	c := tinyConfig(Task{Name: TaskEmbeddedImages}, 5, 8)
	c.ModelConfig = tinyModel(true, false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := t.TempDir()
	res, err := Run(ctx, backend(t), c, Options{OutDir: out, Quiet: true})
	if res != nil || err == nil || !strings.Contains(err.Error(), "interrupted at step 0") {
		t.Errorf("Run on a cancelled context = %v, %v; want an interruption error", res, err)
	}
	if _, err := os.Stat(filepath.Join(out, ResultFile)); !os.IsNotExist(err) {
		t.Errorf("result.json written without any evaluation (stat err %v)", err)
	}
}
