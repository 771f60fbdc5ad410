package finetune

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/data/images"
	"github.com/vitbert/vitbert/data/texts"
	"github.com/vitbert/vitbert/metrics"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/text"
	"github.com/vitbert/vitbert/train"
)

// HeadName is the name of the downstream head that fine-tuning adds.
const HeadName = "task"

// Metrics maps metric names to values. A metric that is undefined (the
// Pearson correlation of constant predictions) is NaN, written as null in
// JSON.
type Metrics map[string]float64

// MarshalJSON writes NaN and infinities as null.
func (m Metrics) MarshalJSON() ([]byte, error) {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			out[k] = nil
		} else {
			out[k] = v
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads null as NaN.
func (m *Metrics) UnmarshalJSON(b []byte) error {
	var raw map[string]*float64
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*m = make(Metrics, len(raw))
	for k, v := range raw {
		if v == nil {
			(*m)[k] = math.NaN()
		} else {
			(*m)[k] = *v
		}
	}
	return nil
}

// better reports whether metric value a beats b (NaN loses to anything).
func better(a, b float64) bool {
	if math.IsNaN(a) {
		return false
	}
	return math.IsNaN(b) || a > b
}

// evalSet is one evaluation split, batched in order with the last batch padded.
type evalSet struct {
	split  string
	suffix string // appended to the metric names ("" for the main split)
	text   *texts.Batcher
	images *images.Loader
}

// evaluator runs the task head over evaluation splits and scores them.
//
// The forward pass is compiled afresh for every evaluation: GoMLX's pure-Go
// backend prefers constants for variables outside training, so a compiled
// inference graph holds the weights it was built with and would not see later
// training steps.
type evaluator struct {
	def     *taskDef
	cfg     *model.Config
	head    *model.HeadConfig
	backend compute.Backend
	store   *mlmodel.Store
	exec    *mlmodel.Exec // of the evaluation in progress
	sets    []evalSet
	cls     bool // compile the [CLS] embedding, not the head
	// progress is where the evaluation shows its progress (nil: standard
	// error); quiet hides it.
	progress io.Writer
	quiet    bool
}

// newEvaluator prepares the evaluation of the task head on store's weights
// (as they are when run is called).
func newEvaluator(backend compute.Backend, store *mlmodel.Store, cfg *model.Config, def *taskDef) (*evaluator, error) {
	h, ok := cfg.Head(HeadName)
	if !ok {
		return nil, fmt.Errorf("the model has no %q head", HeadName)
	}
	return &evaluator{def: def, cfg: cfg, head: h, backend: backend, store: store}, nil
}

// compile builds the forward pass on the current weights.
func (e *evaluator) compile() error {
	cfg, h := e.cfg, e.head
	var err error
	if e.def.Modality == "text" {
		e.exec, err = mlmodel.NewExec(e.backend, e.store, func(scope *mlmodel.Scope, ids, seg, mask *graph.Node) *graph.Node {
			return e.output(scope, h, model.CLS(cfg.EncodeText(scope, ids, seg, mask)))
		})
	} else {
		e.exec, err = mlmodel.NewExec(e.backend, e.store, func(scope *mlmodel.Scope, px *graph.Node) *graph.Node {
			return e.output(scope, h, model.CLS(cfg.EncodeImage(scope, px)))
		})
	}
	if err != nil {
		return err
	}
	e.exec = e.exec.WithName("Evaluate")
	return nil
}

// output is the head's logits on the [CLS] embedding, or the embedding itself.
func (e *evaluator) output(scope *mlmodel.Scope, h *model.HeadConfig, cls *graph.Node) *graph.Node {
	if e.cls {
		return cls
	}
	return e.cfg.HeadLogits(scope, h, cls)
}

// addText prepares a text split for evaluation.
func (e *evaluator) addText(split, suffix string, seqs []texts.Sequence, batch, L int, pad int32) error {
	b, err := texts.NewBatcher(seqs, texts.BatchOptions{BatchSize: batch, MaxLength: L, PAD: pad, Ordered: true, KeepLast: true})
	if err != nil {
		return fmt.Errorf("split %s: %w", split, err)
	}
	e.sets = append(e.sets, evalSet{split: split, suffix: suffix, text: b})
	return nil
}

// addImages prepares an image split for evaluation.
func (e *evaluator) addImages(split, suffix string, ds *images.Dataset, batch int) error {
	l, err := images.NewLoader(ds, images.LoaderConfig{BatchSize: batch, Size: e.cfg.ImageSize, Channels: e.cfg.Channels})
	if err != nil {
		return fmt.Errorf("split %s: %w", split, err)
	}
	e.sets = append(e.sets, evalSet{split: split, suffix: suffix, images: l})
	return nil
}

func (e *evaluator) logits(inputs ...*tensors.Tensor) (vals []float32, k int, err error) {
	args := make([]any, len(inputs))
	for i, x := range inputs {
		args[i] = x
	}
	var out []*tensors.Tensor
	err = exceptions.TryCatch[error](func() {
		var err error
		if out, err = e.exec.Exec(args...); err != nil {
			panic(err)
		}
	})
	if err != nil {
		return nil, 0, fmt.Errorf("evaluation forward pass: %w", err)
	}
	vals, err = tensors.CopyFlatData[float32](out[0])
	if err != nil {
		return nil, 0, err
	}
	return vals, out[0].Shape().Dim(-1), nil
}

// outputs holds one split's predictions and gold values.
type outputs struct {
	predClass, goldClass []int
	predScore, goldScore []float64
}

func (o *outputs) add(row []float32, regression bool, label int, score float64) {
	if regression {
		o.predScore = append(o.predScore, float64(row[0]))
		o.goldScore = append(o.goldScore, score)
		return
	}
	best := 0
	for j, v := range row {
		if v > row[best] {
			best = j
		}
	}
	o.predClass = append(o.predClass, best)
	o.goldClass = append(o.goldClass, label)
}

func (e *evaluator) predict(s *evalSet) (*outputs, error) {
	regression := e.def.Kind == model.HeadRegress
	o := &outputs{}
	err := e.rows(s, "evaluate", func(row []float32, label int, score float64) {
		o.add(row, regression, label, score)
	})
	return o, err
}

// rows runs the compiled graph over a split in order and passes each
// example's output row, with its gold label and score, to fn; what names
// the work in the progress shown.
func (e *evaluator) rows(s *evalSet, what string, fn func(row []float32, label int, score float64)) error {
	var n int
	if s.text != nil {
		n = s.text.StepsPerEpoch()
	} else {
		n = s.images.StepsPerEpoch()
	}
	var bar *train.Progress
	if !e.quiet {
		bar = train.NewSubProgress(e.progress, n, what+" "+s.split, "batches")
		defer bar.Exit()
	}
	done := func(step int) {
		if bar != nil {
			bar.Set(step + 1)
		}
	}
	if s.text != nil {
		for step := range n {
			tb, err := s.text.Batch(0, step)
			if err != nil {
				return err
			}
			vals, k, err := e.logits(textInputs(tb)...)
			if err != nil {
				return err
			}
			for r := range tb.B {
				if tb.Index[r] < 0 {
					continue
				}
				fn(vals[r*k:(r+1)*k], int(tb.Labels[r]), float64(tb.Scores[r]))
			}
			done(step)
		}
		return nil
	}
	for step := range n {
		ib, err := s.images.Batch(0, step)
		if err != nil {
			return err
		}
		vals, k, err := e.logits(pixelInputs(ib))
		if err != nil {
			return err
		}
		for r := range ib.B {
			if ib.Weights[r] == 0 {
				continue
			}
			fn(vals[r*k:(r+1)*k], int(ib.Labels[r]), 0)
		}
		done(step)
	}
	return nil
}

// features returns the [CLS] embeddings of every example of the prepared
// splits (rows of Hidden values) and their labels, split by split.
func (e *evaluator) features() (x [][][]float32, labels [][]int, err error) {
	e.cls = true
	defer func() { e.cls = false }()
	if err := e.compile(); err != nil {
		return nil, nil, err
	}
	defer func() {
		e.exec.Finalize()
		e.exec = nil
	}()
	for i := range e.sets {
		var xs [][]float32
		var ls []int
		err := e.rows(&e.sets[i], "features of", func(row []float32, label int, _ float64) {
			xs, ls = append(xs, slices.Clone(row)), append(ls, label)
		})
		if err != nil {
			return nil, nil, fmt.Errorf("features of split %s: %w", e.sets[i].split, err)
		}
		x, labels = append(x, xs), append(labels, ls)
	}
	return x, labels, nil
}

// run scores every prepared split.
func (e *evaluator) run() (Metrics, error) {
	if err := e.compile(); err != nil {
		return nil, err
	}
	defer func() {
		e.exec.Finalize()
		e.exec = nil
	}()
	m := Metrics{}
	for i := range e.sets {
		s := &e.sets[i]
		o, err := e.predict(s)
		if err != nil {
			return nil, fmt.Errorf("evaluating split %s: %w", s.split, err)
		}
		for _, name := range e.def.Metrics {
			var v float64
			if e.def.Kind == model.HeadRegress {
				v, err = metrics.Regression(name, o.predScore, o.goldScore)
			} else {
				v, err = metrics.Classification(name, o.predClass, o.goldClass)
			}
			if err != nil {
				return nil, fmt.Errorf("split %s: %s: %w", s.split, name, err)
			}
			m[name+s.suffix] = v
		}
	}
	return m, nil
}

// MetaFile, written beside the weights of a fine-tuned model, records the
// task and the evaluation settings, so that Evaluate reproduces the scores
// fine-tuning reported.
const MetaFile = "finetune.json"

// Meta is the content of MetaFile.
type Meta struct {
	Task
	Classes   []string `json:"classes,omitempty"`
	MaxLength int      `json:"max_length,omitempty"`
	EvalBatch int      `json:"eval_batch"`
	// Step is the selected step; Metric the metric that selected it on the
	// SelectedOn split, where it scored ValidationMetrics.
	Step              int     `json:"step"`
	Metric            string  `json:"metric"`
	SelectedOn        string  `json:"selected_on"`
	ValidationMetrics Metrics `json:"validation_metrics"`
	// TestSplit is the main test split and Metrics the test scores (absent
	// until the run has finished).
	TestSplit   string  `json:"test_split,omitempty"`
	Metrics     Metrics `json:"metrics,omitempty"`
	From        string  `json:"from"` // the model fine-tuning started from
	AdaptImages bool    `json:"adapt_images,omitempty"`
}

// ReadMeta reads dir/finetune.json.
func ReadMeta(dir string) (*Meta, error) {
	var m Meta
	if err := readJSON(filepath.Join(dir, MetaFile), &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// readJSON decodes the JSON file at path into v; a read error is returned as
// is, a parse error names the file.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}

// tokenizerFiles are copied with a model so that it keeps its vocabulary.
var tokenizerFiles = []string{"tokenizer.json", "vocab.txt", "tokenizer_config.json"}

// textLength is the padded text length: the requested one, else 128, and
// never more than the model's position table.
func textLength(requested int, c *model.Config) (int, error) {
	if requested > c.MaxTextLength {
		return 0, fmt.Errorf("max length %d exceeds the model's position table (%d)", requested, c.MaxTextLength)
	}
	if requested > 0 {
		return requested, nil
	}
	return min(128, c.MaxTextLength), nil
}

// checkSide reports a clear error when the model lacks the task's modality.
func checkSide(c *model.Config, def *taskDef, dir string) error {
	switch {
	case def.Modality == "image" && !c.HasImage():
		return fmt.Errorf("task %s is an image task but the model %s has no image side (it is text-only)", def.Name, dir)
	case def.Modality == "text" && !c.HasText():
		return fmt.Errorf("task %s is a text task but the model %s has no text side (it is image-only)", def.Name, dir)
	}
	return nil
}

// prepareEval reads splits into ev (the first one's metrics unsuffixed,
// the others' with "_<split>"), which shows its progress as opt says, and
// returns the number of examples of the first.
func prepareEval(ev *evaluator, td *taskData, splits []string, tok *text.Tokenizer, L, batch int, adapt bool, opt *Options) (int, error) {
	ev.progress, ev.quiet = opt.Progress, opt.Quiet
	n := 0
	for i, split := range splits {
		suffix := ""
		if i > 0 {
			suffix = splitSuffix(split)
		}
		if td.def.Modality == "image" {
			ds, err := td.loadImages(split, ev.cfg.ImageSize, ev.cfg.Channels)
			if err != nil {
				return 0, err
			}
			if err := checkImageShape(ds, ev.cfg, adapt, opt); err != nil {
				return 0, err
			}
			if i == 0 {
				n = ds.N
			}
			if err := ev.addImages(split, suffix, ds, batch); err != nil {
				return 0, err
			}
			continue
		}
		s, err := td.loadTexts(split)
		if err != nil {
			return 0, err
		}
		if i == 0 {
			n = s.Len()
		}
		seqs, err := encodeTexts(tok, s, td.def.Pair, L)
		if err != nil {
			return 0, err
		}
		if err := ev.addText(split, suffix, seqs, batch, L, tok.PAD()); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// evaluateDir scores the fine-tuned model in dir on splits of td.
func evaluateDir(backend compute.Backend, dir string, td *taskData, splits []string, tok *text.Tokenizer, L, batch int, adapt bool, opt *Options) (Metrics, error) {
	m, err := checkpoint.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	c := &m.Config
	h, ok := c.Head(HeadName)
	if !ok {
		return nil, fmt.Errorf("the model %s has no fine-tuned %q head (is it the OUT/best of vitbert finetune?)", dir, HeadName)
	}
	if h.Modality != td.def.Modality || h.Kind != td.def.Kind {
		return nil, fmt.Errorf("the model %s was fine-tuned for a %s %s task, not %s", dir, h.Modality, h.Kind, td.def.Name)
	}
	store, err := m.NewStore(backend)
	if err != nil {
		return nil, err
	}
	ev, err := newEvaluator(backend, store, c, td.def)
	if err != nil {
		return nil, err
	}
	if _, err := prepareEval(ev, td, splits, tok, L, batch, adapt, opt); err != nil {
		return nil, err
	}
	if err := checkClasses(td, h, dir); err != nil {
		return nil, err
	}
	return ev.run()
}

// checkClasses refuses data whose classes differ in number from the head's
// outputs, or, where the head records its labels, in name.
func checkClasses(td *taskData, h *model.HeadConfig, dir string) error {
	if td.def.Kind != model.HeadClassify || td.classes == nil {
		return nil
	}
	if len(td.classes) != h.Outputs {
		return fmt.Errorf("task %s has %d classes but the head of %s has %d outputs", td.def.Name, len(td.classes), dir, h.Outputs)
	}
	if h.Labels != nil && !slices.Equal(h.Labels, td.classes) {
		return fmt.Errorf("task %s has the classes %v but the head of %s was trained on %v", td.def.Name, td.classes, dir, h.Labels)
	}
	return nil
}

// EvalOptions are Evaluate's settings.
type EvalOptions struct {
	// Split to score ("": the task's test split(s), as at the end of
	// fine-tuning; ValidationSplit or the task's dev split: the split that
	// selected the model).
	Split string
	// AdaptImages lets images of another shape than the model's be
	// converted (with a message on Log); without it they are an error.
	AdaptImages bool
	Log         io.Writer // messages and progress (nil: standard error)
	Quiet       bool      // no progress
}

// Evaluate runs the fine-tuned model in modelDir (a Run's OUT/best) on a
// split of a task and returns the task's metrics: accuracy; F1 and accuracy
// for MRPC and QQP; MCC for CoLA; Pearson and Spearman for STS-B; accuracy
// and F1 (positive class: label 1) for binary labelled text; macro-F1 and
// accuracy for Brown genres. An empty split scores the task's test splits
// (both of MNLI's dev splits, the mismatched one with "_dev_mismatched"
// names), as fine-tuning did once at its end. An empty task name or data
// path is taken from modelDir/finetune.json, as are the text length, batch
// size and image adaptation, so the scores are those Run reported.
func Evaluate(backend compute.Backend, modelDir string, task Task, eo EvalOptions) (Metrics, error) {
	meta, err := ReadMeta(modelDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if meta == nil {
		meta = &Meta{}
	}
	if task.Name == "" {
		if meta.Name == "" {
			return nil, fmt.Errorf("%s has no %s: name the task", modelDir, MetaFile)
		}
		task.Name = meta.Name
	}
	def, err := lookupTask(task.Name)
	if err != nil {
		return nil, err
	}
	if task.Data == "" && def.Name == meta.Name {
		task.Data = meta.Data
	}
	m, err := checkpoint.LoadDir(modelDir)
	if err != nil {
		return nil, err
	}
	c := &m.Config
	if err := checkSide(c, def, modelDir); err != nil {
		return nil, err
	}
	if _, ok := c.Head(HeadName); !ok {
		return nil, fmt.Errorf("the model %s has no fine-tuned %q head (is it the OUT/best of vitbert finetune?)", modelDir, HeadName)
	}
	td, err := openTask(task)
	if err != nil {
		return nil, err
	}
	splits := td.def.TestSplits
	if eo.Split != "" {
		splits = []string{eo.Split}
	}
	batch := meta.EvalBatch
	if batch <= 0 {
		batch = 32
	}
	var tok *text.Tokenizer
	L := 0
	if def.Modality == "text" {
		if tok, err = text.ForModel(modelDir, c.VocabSize); err != nil {
			return nil, err
		}
		if L, err = textLength(meta.MaxLength, c); err != nil {
			return nil, err
		}
	}
	opt := &Options{Progress: eo.Log, Quiet: eo.Quiet}
	return evaluateDir(backend, modelDir, td, splits, tok, L, batch, eo.AdaptImages || meta.AdaptImages && def.Name == meta.Name, opt)
}

// SortedKeys lists the metric names in order.
func (m Metrics) SortedKeys() []string {
	return slices.Sorted(maps.Keys(m))
}
