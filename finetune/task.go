package finetune

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vitbert/vitbert/data/images"
	"github.com/vitbert/vitbert/data/texts"
	"github.com/vitbert/vitbert/metrics"
	"github.com/vitbert/vitbert/model"
)

// Task names a downstream task and, for the tasks that are not built in,
// where its data lives (a GLUE folder, an image data set, a labelled-text
// TSV or folder).
type Task struct {
	Name string `json:"task"`
	Data string `json:"data,omitempty"`
}

// Names of the tasks that are not GLUE tasks.
const (
	TaskEmbeddedImages = "embedded-images" // the built-in Fashion-MNIST slice (default)
	TaskMNIST          = "mnist"
	TaskFashionMNIST   = "fashion-mnist"
	TaskCIFAR10        = "cifar10"
	TaskCIFAR100       = "cifar100"
	TaskImageFolder    = "imagefolder"
	TaskEmbeddedText   = "embedded-text" // the built-in SpamAssassin ham/spam set
	TaskLabelled       = "labelled"      // single-text classification from a TSV or class folders
)

func glueName(t *texts.Task) string {
	return strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(t.Name))
}

// HeldOutEvery: a data set that comes as one split (an ImageFolder of class
// folders, a single labelled TSV) is split deterministically: every tenth
// example (index ≡ 0 mod 10, in the reader's order) is held out for
// evaluation, the rest is the training split.
const HeldOutEvery = 10

// taskDef is what fine-tuning needs to know of a task.
type taskDef struct {
	Name     string // canonical name
	Modality string // "image" or "text"
	Kind     string // model.HeadClassify or model.HeadRegress
	Pair     bool   // text pairs (A, B)
	// Metrics in report order; the first is the one that picks the best
	// checkpoint (on the validation split).
	Metrics []string
	// TestSplits are scored once, at the end, with the selected checkpoint;
	// the first is the main one, the others are reported with a
	// "_<split>" suffix. They never select anything.
	TestSplits []string
	// ValSplit is the task's own validation split, distinct from the test
	// splits; "" means the validation split is carved from train (see
	// ValidationSplit).
	ValSplit string
	// Chunked tasks cut each document into pieces of at most ChunkWords
	// words; the pieces of one document stay in one split.
	ChunkWords int
	glue       *texts.Task
	needsData  bool
}

// The built-in tasks: images, the embedded and labelled text sets, GLUE.
func init() {
	acc := []string{metrics.MetricAccuracy}
	img := func(name string, data bool, aliases ...string) *taskEntry {
		return &taskEntry{def: taskDef{Name: name, Modality: "image", Kind: model.HeadClassify, Metrics: acc,
			TestSplits: []string{"test"}, needsData: data}, aliases: aliases, open: openImageTask}
	}
	for _, e := range []*taskEntry{
		img(TaskEmbeddedImages, false, "", "embedded", "embedded-image"),
		img(TaskMNIST, true),
		img(TaskFashionMNIST, true, "fashionmnist", "fashion_mnist"),
		img(TaskCIFAR10, true, "cifar-10"),
		img(TaskCIFAR100, true, "cifar-100"),
		img(TaskImageFolder, true, "image-folder"),
		{def: taskDef{Name: TaskEmbeddedText, Modality: "text", Kind: model.HeadClassify,
			Metrics: []string{metrics.MetricAccuracy, metrics.MetricF1}, TestSplits: []string{"test"}},
			aliases: []string{"embedded-texts", "spam"}, open: openEmbeddedText},
		// Metrics and splits depend on the data (binary or not; which
		// splits exist): see openLabelled.
		{def: taskDef{Name: TaskLabelled, Modality: "text", Kind: model.HeadClassify, Metrics: acc, needsData: true},
			aliases: []string{"labeled"}, open: openLabelled},
	} {
		registerTask(e)
	}
	for _, gt := range texts.GLUETasks() {
		d := taskDef{Name: glueName(gt), Modality: "text", Kind: model.HeadClassify, Pair: gt.Pair,
			Metrics: gt.Metrics, TestSplits: gt.EvalSplits, glue: gt, needsData: true}
		if gt.Regression() {
			d.Kind = model.HeadRegress
		}
		var aliases []string
		for _, a := range []string{strings.ToLower(gt.Name), strings.ReplaceAll(strings.ToLower(gt.Name), "-", "_")} {
			if a != d.Name && !contains(aliases, a) {
				aliases = append(aliases, a)
			}
		}
		registerTask(&taskEntry{def: d, aliases: aliases, open: openGLUE})
	}
}

func openEmbeddedText(def *taskDef, _ string) (*taskData, error) {
	train, test, err := texts.DefaultLabelled()
	if err != nil {
		return nil, err
	}
	return labelledData(def, train.Classes, map[string]*texts.Labelled{"train": train, "test": test}), nil
}

// mainMetric is the metric that picks the best checkpoint.
func (d *taskDef) mainMetric() string { return d.Metrics[0] }

type textSplit struct {
	// A and B (for pairs) texts, with their gold label or score.
	A, B   []string
	Labels []int
	Scores []float64
	// Src names each example (file and line) for error messages.
	Src []string
	// Doc names the document each example comes from, for tasks whose
	// examples are pieces of documents (nil otherwise): a carved
	// validation split takes whole documents.
	Doc []string
}

func (s *textSplit) Len() int { return len(s.A) }

// subset returns the examples at idx.
func (s *textSplit) subset(idx []int) *textSplit {
	out := &textSplit{}
	for _, i := range idx {
		out.A, out.B = append(out.A, s.A[i]), append(out.B, s.B[i])
		out.Labels, out.Scores = append(out.Labels, s.Labels[i]), append(out.Scores, s.Scores[i])
		out.Src = append(out.Src, s.Src[i])
		if s.Doc != nil {
			out.Doc = append(out.Doc, s.Doc[i])
		}
	}
	return out
}

// taskData is a task's data: classes and one loader per split.
type taskData struct {
	def     *taskDef
	classes []string // nil for regression; for images, set by loadImages
	// openImages and openTexts read a split ("train", or one of the eval
	// splits); images come at the model's size and channel count.
	openImages func(split string, size, channels int) (*images.Dataset, error)
	openTexts  func(split string) (*textSplit, error)
	splits     []string // the splits that exist, for messages
	carvedVal  bool     // the validation split is carved from train
}

func (t *taskData) numOutputs() int {
	if t.def.Kind == model.HeadRegress {
		return 1
	}
	return len(t.classes)
}

// openTask prepares the data of a task; no split is read yet except where
// the classes can only be known by reading (labelled text).
func openTask(task Task) (*taskData, error) {
	e, err := findTask(task.Name)
	if err != nil {
		return nil, err
	}
	def := &taskDef{}
	*def = e.def
	if def.needsData && task.Data == "" {
		return nil, fmt.Errorf("task %s needs --data (a path to its data)", def.Name)
	}
	if def.needsData {
		if _, err := os.Stat(task.Data); err != nil {
			return nil, fmt.Errorf("task %s: data: %w", def.Name, err)
		}
	}
	td, err := e.open(def, task.Data)
	if err != nil {
		return nil, err
	}
	if td.def.ValSplit == "" {
		td.carveValidation()
	}
	return td, nil
}

func openGLUE(def *taskDef, dir string) (*taskData, error) {
	gt := def.glue
	td := &taskData{def: def, classes: gt.Labels, splits: gt.Splits}
	td.openTexts = func(split string) (*textSplit, error) {
		s, err := texts.ReadGLUE(dir, gt.Name, split, texts.GLUEOptions{})
		if err != nil {
			return nil, err
		}
		if !s.Labelled {
			return nil, fmt.Errorf("%s has no labels (GLUE test files are unlabelled): choose another split", s.Path)
		}
		out := &textSplit{}
		for _, ex := range s.Examples {
			out.A, out.B = append(out.A, ex.A), append(out.B, ex.B)
			out.Labels, out.Scores = append(out.Labels, ex.Label), append(out.Scores, float64(ex.Score))
			out.Src = append(out.Src, fmt.Sprintf("%s:%d", s.Path, ex.Line))
		}
		if out.Len() == 0 {
			return nil, fmt.Errorf("%s holds no examples", s.Path)
		}
		return out, nil
	}
	return td, nil
}

// labelledData serves fixed splits of labelled text.
func labelledData(def *taskDef, classes []string, splits map[string]*texts.Labelled) *taskData {
	td := &taskData{def: def, classes: classes}
	for s := range splits {
		td.splits = append(td.splits, s)
	}
	sort.Strings(td.splits)
	td.openTexts = func(split string) (*textSplit, error) {
		l, ok := splits[split]
		if !ok {
			return nil, fmt.Errorf("task %s has splits %s, not %q", def.Name, strings.Join(td.splits, ", "), split)
		}
		out := &textSplit{A: l.Texts, B: make([]string, l.Len()), Labels: l.Labels, Scores: make([]float64, l.Len()), Src: l.Sources}
		if out.Len() == 0 {
			return nil, fmt.Errorf("task %s: split %s holds no examples", def.Name, split)
		}
		return out, nil
	}
	return td
}

// validationNames are the names a validation split may go by, in order of
// preference.
var validationNames = []string{"dev", "validation", "val", "valid"}

// heldOutRoles assigns the held-out splits of a data set: "test", if
// present, is the test split and the first of validationNames present the
// validation split; without "test", the first of validationNames present is
// the test split and the validation split is carved from train (val "").
// test is nil when no held-out split exists.
func heldOutRoles(splits []string) (val string, test []string) {
	var v []string
	for _, s := range validationNames {
		if contains(splits, s) {
			v = append(v, s)
		}
	}
	switch {
	case contains(splits, "test") && len(v) > 0:
		return v[0], []string{"test"}
	case contains(splits, "test"):
		return "", []string{"test"}
	case len(v) > 0:
		return "", v[:1]
	}
	return "", nil
}

// openLabelled reads labelled text: a TSV file (split by HeldOutEvery), a
// folder of train.tsv plus dev.tsv/validation.tsv/val.tsv/test.tsv, a folder
// of split folders (root/<split>/<class>/*.txt) or of class folders
// (root/<class>/*.txt, split by HeldOutEvery).
func openLabelled(def *taskDef, path string) (*taskData, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	splits := map[string]*texts.Labelled{}
	switch {
	case !st.IsDir():
		l, err := texts.ReadLabelledTSV(path, texts.LabelledOptions{})
		if err != nil {
			return nil, err
		}
		splits["train"], splits["test"] = holdOutText(l)
	case fileExists(filepath.Join(path, "train.tsv")):
		tr, err := texts.ReadLabelledTSV(filepath.Join(path, "train.tsv"), texts.LabelledOptions{})
		if err != nil {
			return nil, err
		}
		splits["train"] = tr
		for _, s := range append([]string{"test"}, validationNames...) {
			p := filepath.Join(path, s+".tsv")
			if !fileExists(p) {
				continue
			}
			// Fix the classes to the training split's so the ids agree.
			if splits[s], err = texts.ReadLabelledTSV(p, texts.LabelledOptions{Classes: tr.Classes}); err != nil {
				return nil, err
			}
		}
		if len(splits) == 1 {
			splits["train"], splits["test"] = holdOutText(tr)
		}
	default:
		dirs, err := texts.Subdirs(os.DirFS(path), ".")
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		if contains(dirs, "train") {
			if splits, err = texts.ReadLabelledSplits(path); err != nil {
				return nil, err
			}
			if len(splits) == 1 {
				splits["train"], splits["test"] = holdOutText(splits["train"])
			}
		} else {
			l, err := texts.ReadLabelledDir(path, texts.LabelledOptions{})
			if err != nil {
				return nil, err
			}
			splits["train"], splits["test"] = holdOutText(l)
		}
	}
	tr := splits["train"]
	if tr == nil || tr.Len() == 0 {
		return nil, fmt.Errorf("labelled data %s: no training examples", path)
	}
	if len(tr.Classes) < 2 {
		return nil, fmt.Errorf("labelled data %s: %d class(es) %v, need at least 2", path, len(tr.Classes), tr.Classes)
	}
	d := *def
	var names []string
	for s := range splits {
		names = append(names, s)
	}
	if d.ValSplit, d.TestSplits = heldOutRoles(names); d.TestSplits == nil {
		return nil, fmt.Errorf("labelled data %s: no held-out split (want test or one of %s beside train)", path, strings.Join(validationNames, ", "))
	}
	if len(tr.Classes) == 2 {
		d.Metrics = []string{metrics.MetricAccuracy, metrics.MetricF1}
	}
	return labelledData(&d, tr.Classes, splits), nil
}

// holdOutText splits one labelled set by HeldOutEvery.
func holdOutText(l *texts.Labelled) (train, heldOut *texts.Labelled) {
	train = &texts.Labelled{Classes: l.Classes}
	heldOut = &texts.Labelled{Classes: l.Classes}
	for i := range l.Texts {
		dst := train
		if i%HeldOutEvery == 0 {
			dst = heldOut
		}
		dst.Texts = append(dst.Texts, l.Texts[i])
		dst.Labels = append(dst.Labels, l.Labels[i])
		dst.Sources = append(dst.Sources, l.Sources[i])
	}
	return train, heldOut
}

func openImageTask(def *taskDef, path string) (*taskData, error) {
	td := &taskData{def: def, splits: []string{"train", "test"}}
	if def.Name == TaskEmbeddedImages {
		train, test, err := images.Default()
		if err != nil {
			return nil, err
		}
		td.classes = train.Classes
		td.openImages = func(split string, _, _ int) (*images.Dataset, error) {
			switch split {
			case "train":
				return train, nil
			case "test":
				return test, nil
			}
			return nil, fmt.Errorf("task %s has splits train, test, not %q", def.Name, split)
		}
		return td, nil
	}
	format, splits, err := images.Detect(path)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", def.Name, err)
	}
	want := map[string][]images.Format{
		TaskMNIST:        {images.FormatIDX, images.FormatIDXFile},
		TaskFashionMNIST: {images.FormatIDX, images.FormatIDXFile},
		TaskCIFAR10:      {images.FormatCIFAR10},
		TaskCIFAR100:     {images.FormatCIFAR100},
		TaskImageFolder:  {images.FormatImageFolder},
	}[def.Name]
	ok := false
	for _, f := range want {
		ok = ok || f == format
	}
	if !ok {
		got := string(format)
		if got == "" {
			got = "not an image data set"
		}
		var names []string
		for _, f := range want {
			names = append(names, string(f))
		}
		return nil, fmt.Errorf("task %s: %s is %s, want %s", def.Name, path, got, strings.Join(names, " or "))
	}
	var opt images.Options
	if def.Name == TaskFashionMNIST {
		opt.Classes = images.FashionMNISTClasses
	}
	held := format == images.FormatImageFolder && len(splits) == 1 && splits[0] == "all"
	if format == images.FormatImageFolder && !held {
		td.splits = splits
		if !contains(splits, "train") {
			return nil, fmt.Errorf("task %s: image folder %s has splits %s but no train", def.Name, path, strings.Join(splits, ", "))
		}
		d := *def
		if d.ValSplit, d.TestSplits = heldOutRoles(splits); d.TestSplits == nil {
			return nil, fmt.Errorf("task %s: image folder %s has no held-out split (want test or one of %s beside train)", def.Name, path, strings.Join(validationNames, ", "))
		}
		td.def = &d
	}
	td.openImages = func(split string, size, channels int) (*images.Dataset, error) {
		o := opt
		o.Size, o.Channels = size, channels
		if held {
			if split != "train" && split != "test" {
				return nil, fmt.Errorf("task %s: %s is one folder, split into train and test (every %dth image), not %q", def.Name, path, HeldOutEvery, split)
			}
			all, err := images.OpenWith(path, "all", o)
			if err != nil {
				return nil, err
			}
			var idx []int
			for i := range all.N {
				if (i%HeldOutEvery == 0) == (split == "test") {
					idx = append(idx, i)
				}
			}
			ds, err := all.Subset(idx)
			if err != nil {
				return nil, err
			}
			ds.Split = split
			return ds, nil
		}
		return images.OpenWith(path, split, o)
	}
	// The classes are only known by opening a split: see loadImages.
	return td, nil
}

// loadImages reads an image split at the model's size and channel count,
// and takes the class names from it.
func (t *taskData) loadImages(split string, size, channels int) (*images.Dataset, error) {
	ds, err := t.openImages(split, size, channels)
	if err != nil {
		return nil, fmt.Errorf("task %s: split %s: %w", t.def.Name, split, err)
	}
	if ds.N == 0 {
		return nil, fmt.Errorf("task %s: split %s holds no images", t.def.Name, split)
	}
	if t.classes == nil {
		t.classes = ds.Classes
	} else if len(ds.Classes) != len(t.classes) {
		return nil, fmt.Errorf("task %s: split %s has %d classes, the task %d", t.def.Name, split, len(ds.Classes), len(t.classes))
	}
	return ds, nil
}

// loadTexts reads a text split.
func (t *taskData) loadTexts(split string) (*textSplit, error) {
	s, err := t.openTexts(split)
	if err != nil {
		return nil, fmt.Errorf("task %s: split %s: %w", t.def.Name, split, err)
	}
	return s, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
