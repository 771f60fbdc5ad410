// Package vitbert runs ViT-BERT models — vitbert's own, or Hugging Face BERT
// and ViT checkpoints — from Go programs: fill masks, classify texts and
// images, embed them.
//
//	m, err := vitbert.Load("google-bert/bert-base-uncased") // a directory, or a Hub id in the local cache
//	preds, err := m.FillMask("The capital of France is [MASK].", 5)
//
// The model runs on GoMLX's pure-Go backend unless GOMLX_BACKEND names
// another one (e.g. xla:cuda in a binary built with -tags xla).
package vitbert

import (
	"fmt"
	"math"
	"os"
	"sort"
	"sync"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/data/images"
	"github.com/vitbert/vitbert/infer"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/text"
)

// Model is a loaded model with its tokenizer and image preprocessing. Its
// methods may be called from several goroutines; calls run one at a time.
type Model struct {
	// Config is the model's configuration: sizes, sides and heads.
	Config model.Config

	mu   sync.Mutex
	src  *checkpoint.Model
	pred *infer.Predictor
	tok  *text.Tokenizer     // nil without a text side
	proc *images.HFProcessor // the model's preprocessor_config.json, if any
}

// Prediction is one class or token with its softmax probability.
type Prediction struct {
	Label string
	Score float64
}

// Load reads a model directory (config.json + model.safetensors; the
// tokenizer.json or vocab.txt beside it, else bert-base-uncased's
// vocabulary; preprocessor_config.json if present) or a Hub id
// ORG/NAME[@REVISION] found in the local Hugging Face cache.
func Load(dir string) (*Model, error) {
	src, err := checkpoint.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	var backend compute.Backend
	if _, set := os.LookupEnv(compute.ConfigEnvVar); set {
		backend, err = compute.New()
	} else {
		backend, err = compute.NewWithConfig("go")
	}
	if err != nil {
		return nil, fmt.Errorf("opening the compute backend: %w", err)
	}
	pred, err := infer.New(backend, src)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: src.Config, src: src, pred: pred}
	if src.Config.HasText() {
		if m.tok, err = text.ForModel(src.Source, src.Config.VocabSize); err != nil {
			return nil, err
		}
	}
	if src.Config.HasImage() {
		if m.proc, err = images.ReadHFProcessor(src.Source); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// head returns the model's first head of that modality and kind ("" kind:
// any but MLM).
func (m *Model) head(modality, kind string) (*model.HeadConfig, error) {
	for i := range m.Config.TaskHeads {
		h := &m.Config.TaskHeads[i]
		if h.Modality == modality && (h.Kind == kind || kind == "" && h.Kind != model.HeadMLM) {
			return h, nil
		}
	}
	what := "classification"
	if kind == model.HeadMLM {
		what = "masked-language-model"
	}
	return nil, fmt.Errorf("the model (%s) has no %s head for %s", m.src.Source, what, modality)
}

func (m *Model) encode(s string) (ids, seg, mask [][]int32, err error) {
	if m.tok == nil {
		return nil, nil, nil, fmt.Errorf("the model has no text side")
	}
	e, err := m.tok.EncodeWith(s, nil, text.EncodeOpts{MaxLength: m.Config.MaxTextLength})
	if err != nil {
		return nil, nil, nil, err
	}
	return [][]int32{e.IDs}, [][]int32{e.TypeIDs}, [][]int32{e.AttentionMask}, nil
}

// FillMask predicts the k most likely tokens for each [MASK] in s, in order.
func (m *Model) FillMask(s string, k int) ([][]Prediction, error) {
	h, err := m.head("text", model.HeadMLM)
	if err != nil {
		return nil, err
	}
	ids, seg, mask, err := m.encode(s)
	if err != nil {
		return nil, err
	}
	var pos []int32
	for i, id := range ids[0] {
		if id == m.tok.MASK() {
			pos = append(pos, int32(i))
		}
	}
	if len(pos) == 0 {
		return nil, fmt.Errorf("no [MASK] token in %q", s)
	}
	m.mu.Lock()
	out, err := m.pred.Text(h.Name, ids, seg, mask, [][]int32{pos})
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	V := out.LogitsShape[len(out.LogitsShape)-1]
	res := make([][]Prediction, len(pos))
	for i := range pos {
		res[i] = topK(out.Logits[i*V:(i+1)*V], k, func(j int) string { return m.tok.IDToken(int32(j)) })
	}
	return res, nil
}

// ClassifyText returns the k most likely classes of s under the model's
// first text classification head.
func (m *Model) ClassifyText(s string, k int) ([]Prediction, error) {
	h, err := m.head("text", "")
	if err != nil {
		return nil, err
	}
	ids, seg, mask, err := m.encode(s)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	out, err := m.pred.Text(h.Name, ids, seg, mask, nil)
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return topK(out.Logits, k, labeller(h)), nil
}

// ClassifyImage returns the k most likely classes of the image file (PNG,
// JPEG or GIF) under the model's first image classification head.
func (m *Model) ClassifyImage(path string, k int) ([]Prediction, error) {
	h, err := m.head("image", "")
	if err != nil {
		return nil, err
	}
	px, err := m.pixels(path)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	out, err := m.pred.Image(h.Name, px, 1)
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return topK(out.Logits, k, labeller(h)), nil
}

func (m *Model) pixels(path string) ([]float32, error) {
	if !m.Config.HasImage() {
		return nil, fmt.Errorf("the model has no image side")
	}
	return images.LoadForModel(path, m.proc, m.Config.ImageSize, m.Config.Channels)
}

// Embed returns the final hidden state of the [CLS] token of s: a vector of
// Config.Hidden values.
func (m *Model) Embed(s string) ([]float32, error) {
	ids, seg, mask, err := m.encode(s)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	out, err := m.pred.Text("", ids, seg, mask, nil)
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return out.Hidden[:m.Config.Hidden], nil
}

// EmbedImage returns the final hidden state of the class token of the image
// file: a vector of Config.Hidden values.
func (m *Model) EmbedImage(path string) ([]float32, error) {
	px, err := m.pixels(path)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	out, err := m.pred.Image("", px, 1)
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return out.Hidden[:m.Config.Hidden], nil
}

func labeller(h *model.HeadConfig) func(int) string {
	return func(i int) string {
		if i < len(h.Labels) && h.Labels[i] != "" {
			return h.Labels[i]
		}
		return fmt.Sprintf("LABEL_%d", i)
	}
}

// topK is the softmax of logits, its k largest entries first (all for k <= 0).
func topK(logits []float32, k int, label func(int) string) []Prediction {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	p := make([]Prediction, len(logits))
	sum := 0.0
	for i, v := range logits {
		e := math.Exp(float64(v) - mx)
		p[i] = Prediction{Label: label(i), Score: e}
		sum += e
	}
	for i := range p {
		p[i].Score /= sum
	}
	sort.SliceStable(p, func(a, b int) bool { return p[a].Score > p[b].Score })
	if k > 0 && k < len(p) {
		p = p[:k]
	}
	return p
}
