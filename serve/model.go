package serve

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/infer"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/text"
)

// Options are the batching and input limits of a served model.
type Options struct {
	MaxBatch    int           // inputs run in one forward pass; batch shapes are powers of two up to it
	MaxWait     time.Duration // how long a batch waits for more inputs after its first
	Lengths     []int         // text length buckets (tokens); texts are padded to the next one
	MaxTokens   int           // tokens per text, special tokens included (0: the model's position table)
	Truncate    bool          // truncate longer texts instead of refusing them
	MaxMasks    int           // [MASK] tokens per fill-mask text
	MaxPixels   int           // decoded image width×height
	MaxInputs   int           // texts or images per request
	QueueLength int           // inputs waiting per queue before requests are refused
}

// DefaultOptions are the serve command's defaults.
func DefaultOptions() Options {
	return Options{MaxBatch: 32, MaxWait: 5 * time.Millisecond, Lengths: []int{16, 32, 64, 128, 256, 512}, MaxMasks: 4,
		MaxPixels: 4096 * 4096, MaxInputs: 64, QueueLength: 4096}
}

// Model is one loaded model with its tokenizer and its batching queues, one
// per modality and head ("" for the encoder alone, which embed uses).
type Model struct {
	Name    string
	Dir     string
	Config  *model.Config
	Tok     *text.Tokenizer // nil without a text side
	P       *infer.Predictor
	Opts    Options
	lengths []int // Lengths capped at MaxTokens, MaxTokens last
	queues  map[string]*queue
	metrics *metrics
}

// LoadModel loads the model in dir (config.json + model.safetensors) and its
// tokenizer (tokPath, else the directory's, else bert-base-uncased).
func LoadModel(backend compute.Backend, name, dir, tokPath string, opts Options) (*Model, error) {
	m, err := checkpoint.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	p, err := infer.New(backend, m)
	if err != nil {
		return nil, err
	}
	return NewModel(name, m.Source, p, tokPath, opts)
}

// NewModel serves predictor p under name.
func NewModel(name, dir string, p *infer.Predictor, tokPath string, opts Options) (*Model, error) {
	c := &p.Config
	if opts.MaxBatch < 1 || opts.MaxInputs < 1 || opts.MaxMasks < 1 || opts.MaxPixels < 1 || opts.QueueLength < 1 {
		return nil, fmt.Errorf("model %s: max batch, inputs, masks, pixels and queue length must be positive (got %d, %d, %d, %d, %d)",
			name, opts.MaxBatch, opts.MaxInputs, opts.MaxMasks, opts.MaxPixels, opts.QueueLength)
	}
	sm := &Model{Name: name, Dir: dir, Config: c, P: p, Opts: opts, queues: map[string]*queue{}}
	if c.HasText() {
		var err error
		if sm.Tok, err = infer.LoadTokenizer(tokPath, dir, c.VocabSize); err != nil {
			return nil, fmt.Errorf("model %s: %w", name, err)
		}
		maxTok := opts.MaxTokens
		if maxTok <= 0 || maxTok > c.MaxTextLength {
			maxTok = c.MaxTextLength
		}
		sm.Opts.MaxTokens = maxTok
		for _, l := range opts.Lengths {
			if l <= 0 {
				return nil, fmt.Errorf("model %s: length bucket %d is not positive", name, l)
			}
			if l < maxTok {
				sm.lengths = append(sm.lengths, l)
			}
		}
		sm.lengths = append(sm.lengths, maxTok)
		slices.Sort(sm.lengths)
		sm.lengths = slices.Compact(sm.lengths)
		sm.addQueue("text", nil)
	}
	if c.HasImage() {
		sm.addQueue("image", nil)
	}
	for i := range c.TaskHeads {
		h := &c.TaskHeads[i]
		if (h.Modality == "text" && c.HasText()) || (h.Modality == "image" && c.HasImage()) {
			sm.addQueue(h.Modality, h)
		}
	}
	return sm, nil
}

func queueKey(modality string, h *model.HeadConfig) string {
	if h == nil {
		return modality
	}
	return modality + "/" + h.Name
}

// batchSizes are the compiled batch shapes: powers of two below MaxBatch, and MaxBatch.
func (m *Model) batchSizes() []int {
	var out []int
	for b := 1; b < m.Opts.MaxBatch; b *= 2 {
		out = append(out, b)
	}
	return append(out, m.Opts.MaxBatch)
}

func bucket(sizes []int, n int) int {
	for _, s := range sizes {
		if s >= n {
			return s
		}
	}
	return sizes[len(sizes)-1]
}

// maskSizes are the compiled numbers of MLM positions per text: 1 and MaxMasks.
func (m *Model) maskSizes() []int {
	if m.Opts.MaxMasks == 1 {
		return []int{1}
	}
	return []int{1, m.Opts.MaxMasks}
}

// Shapes is the number of input shapes compiled for m.
func (m *Model) Shapes() int {
	n := 0
	for _, q := range m.queues {
		n += len(q.shapes())
	}
	return n
}

// head resolves a head for a task: by name, or the model's first head of
// that modality and kind.
func (m *Model) head(name, modality string, kinds ...string) (*model.HeadConfig, error) {
	if name != "" {
		h, ok := m.Config.Head(name)
		if !ok {
			return nil, errf(404, "not_found", "model %q has no head %q (it has %v)", m.Name, name, infer.HeadNames(m.Config))
		}
		if h.Modality != modality || !slices.Contains(kinds, h.Kind) {
			return nil, errf(400, "bad_request", "head %q of model %q is a %s %s head, this endpoint needs a %s head of kind %v", name, m.Name, h.Modality, h.Kind, modality, kinds)
		}
		return h, nil
	}
	for i := range m.Config.TaskHeads {
		h := &m.Config.TaskHeads[i]
		if h.Modality == modality && slices.Contains(kinds, h.Kind) {
			return h, nil
		}
	}
	return nil, errf(404, "not_found", "model %q has no %s head of kind %v (it has %v)", m.Name, modality, kinds, infer.HeadNames(m.Config))
}

func (m *Model) needText() error {
	if m.Tok == nil {
		return errf(404, "not_found", "model %q has no text side", m.Name)
	}
	return nil
}

func (m *Model) needImage() error {
	if !m.Config.HasImage() {
		return errf(404, "not_found", "model %q has no image side", m.Name)
	}
	return nil
}

// TextPair is one text, or a pair of texts for a two-segment head.
type TextPair struct {
	Text     string  `json:"text"`
	TextPair *string `json:"text_pair,omitempty"`
}

// encode tokenises one input with the tokenizer's pair encoding, refusing or
// truncating texts over MaxTokens.
func (m *Model) encode(i int, in TextPair) (text.Encoding, error) {
	opts := text.EncodeOpts{}
	if m.Opts.Truncate {
		opts.MaxLength = m.Opts.MaxTokens
	}
	enc, err := m.Tok.EncodeWith(in.Text, in.TextPair, opts)
	if err != nil {
		return enc, errf(400, "bad_request", "input %d: %v", i, err)
	}
	if enc.Len() > m.Opts.MaxTokens {
		return enc, errf(413, "too_large", "input %d has %d tokens, over the limit of %d (the server truncates only with --truncate)", i, enc.Len(), m.Opts.MaxTokens)
	}
	return enc, nil
}

// Label is one class and its probability (or, for a regression head, the
// predicted value).
type Label struct {
	Label string  `json:"label"`
	Score float64 `json:"score"`
}

func labelName(h *model.HeadConfig, i int) string {
	if i < len(h.Labels) && h.Labels[i] != "" {
		return h.Labels[i]
	}
	return fmt.Sprintf("LABEL_%d", i)
}

// ranked turns a head's logits into labels sorted by probability, topK of
// them (0: all).
func ranked(h *model.HeadConfig, logits []float32, topK int) []Label {
	if h.Kind == model.HeadRegress {
		return []Label{{Label: labelName(h, 0), Score: float64(logits[0])}}
	}
	probs := infer.Softmax(logits)
	idx := make([]int, len(probs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return probs[idx[a]] > probs[idx[b]] })
	if topK <= 0 || topK > len(idx) {
		topK = len(idx)
	}
	out := make([]Label, topK)
	for r, i := range idx[:topK] {
		out[r] = Label{Label: labelName(h, i), Score: probs[i]}
	}
	return out
}

// Classify runs a text classification (or regression) head on texts or pairs.
func (m *Model) Classify(ctx context.Context, headName string, inputs []TextPair, topK int) ([][]Label, error) {
	if err := m.needText(); err != nil {
		return nil, err
	}
	h, err := m.head(headName, "text", model.HeadClassify, model.HeadRegress)
	if err != nil {
		return nil, err
	}
	jobs := make([]*job, len(inputs))
	for i, in := range inputs {
		enc, err := m.encode(i, in)
		if err != nil {
			return nil, err
		}
		jobs[i] = &job{enc: enc}
	}
	return m.classifyJobs(ctx, "text", h, jobs, topK)
}

// ClassifyImages runs an image classification head on model-ready pixels
// (one CHW image per entry).
func (m *Model) ClassifyImages(ctx context.Context, headName string, pixels [][]float32, topK int) ([][]Label, error) {
	if err := m.needImage(); err != nil {
		return nil, err
	}
	h, err := m.head(headName, "image", model.HeadClassify, model.HeadRegress)
	if err != nil {
		return nil, err
	}
	jobs := make([]*job, len(pixels))
	for i, px := range pixels {
		jobs[i] = &job{pixels: px}
	}
	return m.classifyJobs(ctx, "image", h, jobs, topK)
}

// classifyJobs runs jobs through the head's queue and ranks each one's labels.
func (m *Model) classifyJobs(ctx context.Context, modality string, h *model.HeadConfig, jobs []*job, topK int) ([][]Label, error) {
	if err := m.queues[queueKey(modality, h)].run(ctx, jobs); err != nil {
		return nil, err
	}
	out := make([][]Label, len(jobs))
	for i, j := range jobs {
		out[i] = ranked(h, j.logits, topK)
	}
	return out, nil
}

// Fill is one candidate for a [MASK] token, shaped as Hugging Face's
// fill-mask pipeline answers.
type Fill struct {
	Token    int32   `json:"token"`
	TokenStr string  `json:"token_str"`
	Score    float64 `json:"score"`
	Sequence string  `json:"sequence"`
}

// FillMask returns, per text and per [MASK] token in it, the topK candidates.
func (m *Model) FillMask(ctx context.Context, headName string, texts []string, topK int) ([][][]Fill, error) {
	if err := m.needText(); err != nil {
		return nil, err
	}
	h, err := m.head(headName, "text", model.HeadMLM)
	if err != nil {
		return nil, err
	}
	if topK <= 0 {
		topK = 5
	}
	topK = min(topK, h.Outputs)
	jobs := make([]*job, len(texts))
	for i, s := range texts {
		enc, err := m.encode(i, TextPair{Text: s})
		if err != nil {
			return nil, err
		}
		var pos []int32
		for p, id := range enc.IDs {
			if id == m.Tok.MASK() {
				pos = append(pos, int32(p))
			}
		}
		if len(pos) == 0 {
			return nil, errf(400, "bad_request", "input %d has no %s token", i, m.Tok.IDToken(m.Tok.MASK()))
		}
		if len(pos) > m.Opts.MaxMasks {
			return nil, errf(400, "bad_request", "input %d has %d %s tokens, over the limit of %d", i, len(pos), m.Tok.IDToken(m.Tok.MASK()), m.Opts.MaxMasks)
		}
		jobs[i] = &job{enc: enc, positions: pos}
	}
	if err := m.queues[queueKey("text", h)].run(ctx, jobs); err != nil {
		return nil, err
	}
	out := make([][][]Fill, len(jobs))
	for i, j := range jobs {
		V := h.Outputs
		for k, p := range j.positions {
			idx, probs := topSoftmax(j.logits[k*V:(k+1)*V], topK)
			fills := make([]Fill, len(idx))
			for r, id := range idx {
				toks := slices.Clone(j.enc.Tokens)
				toks[p] = m.Tok.IDToken(int32(id))
				fills[r] = Fill{Token: int32(id), TokenStr: m.Tok.IDToken(int32(id)), Score: probs[r], Sequence: m.decode(j.enc.IDs, toks, int(p))}
			}
			out[i] = append(out[i], fills)
		}
	}
	return out, nil
}

// topSoftmax returns the k largest logits' indices, largest first, and their
// softmax probabilities. The normaliser Σ exp(x - max) over a whole
// vocabulary is summed with exp2f, which is as exact as float32 and several
// times faster than math.Exp; that sum was most of a fill-mask request's CPU.
func topSoftmax(logits []float32, k int) ([]int, []float64) {
	top := topIndices(logits, k)
	if len(top) == 0 {
		return top, nil
	}
	m := logits[top[0]]
	sum := 0.0
	for _, v := range logits {
		sum += float64(exp2f((v - m) * math.Log2E))
	}
	probs := make([]float64, len(top))
	for r, i := range top {
		probs[r] = math.Exp(float64(logits[i]-m)) / sum
	}
	return top, probs
}

// exp2f is 2^x for x <= 0 in float32: 2^n by the exponent bits times a
// degree-6 polynomial for 2^f on f in [-0.5, 0.5] (relative error < 2e-7).
func exp2f(x float32) float32 {
	if x < -126 {
		return 0
	}
	n := float32(math.Floor(float64(x) + 0.5))
	f := x - n
	// Taylor coefficients of 2^f = e^(f ln 2).
	p := float32(1.5403530393381606e-04)
	p = p*f + 1.3333558146428443e-03
	p = p*f + 9.6181291076284772e-03
	p = p*f + 5.5504108664821580e-02
	p = p*f + 2.4022650695910072e-01
	p = p*f + 6.9314718055994531e-01
	p = p*f + 1
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// topIndices returns the indices of the k largest values of p, largest
// first (ties: lower index first), in one pass: a vocabulary-wide sort
// would cost more than the forward pass of a small model.
func topIndices[T float32 | float64](p []T, k int) []int {
	k = min(k, len(p))
	if k <= 0 {
		return []int{}
	}
	top := make([]int, 0, k+1)
	for i, v := range p {
		if len(top) == k && v <= p[top[k-1]] {
			continue
		}
		j := len(top)
		for j > 0 && v > p[top[j-1]] {
			j--
		}
		top = append(top, 0)
		copy(top[j+1:], top[j:])
		top[j] = i
		if len(top) > k {
			top = top[:k]
		}
	}
	return top
}

// decode joins WordPiece tokens back into text as Hugging Face's BERT
// tokenizers decode with skip_special_tokens and the default clean-up:
// special tokens dropped (except at the filled position), "##" pieces glued
// to the previous piece, and the space before punctuation and English
// contractions removed.
func (m *Model) decode(ids []int32, toks []string, filled int) string {
	var b strings.Builder
	for i, t := range toks {
		if i != filled && m.Tok.IsSpecial(ids[i]) {
			continue
		}
		if rest, ok := strings.CutPrefix(t, "##"); ok && b.Len() > 0 {
			b.WriteString(rest)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(t)
	}
	return strings.NewReplacer(" .", ".", " ?", "?", " !", "!", " ,", ",", " ' ", "'", " n't", "n't", " 'm", "'m", " 's", "'s", " 've", "'ve", " 're", "'re").Replace(b.String())
}

// Pooling turns a sequence of hidden states into one vector.
const (
	PoolCLS  = "cls"  // the first ([CLS]) token's hidden state
	PoolMean = "mean" // the mean over the non-padding tokens (every token of an image)
)

// pool reduces hidden [S, D] (real tokens only) to [D], L2-normalised when asked.
func pool(hidden []float32, d int, pooling string, normalize bool) []float32 {
	out := make([]float32, d)
	if pooling == PoolMean {
		n := len(hidden) / d
		sum := make([]float64, d)
		for t := range n {
			for k := range d {
				sum[k] += float64(hidden[t*d+k])
			}
		}
		for k := range d {
			out[k] = float32(sum[k] / float64(n))
		}
	} else {
		copy(out, hidden[:d])
	}
	if normalize {
		ss := 0.0
		for _, v := range out {
			ss += float64(v) * float64(v)
		}
		if n := math.Sqrt(ss); n > 0 {
			for k := range out {
				out[k] = float32(float64(out[k]) / n)
			}
		}
	}
	return out
}

// EmbedTexts returns one vector per text from the shared encoder's final hidden states.
func (m *Model) EmbedTexts(ctx context.Context, texts []string, pooling string, normalize bool) ([][]float32, error) {
	if err := m.needText(); err != nil {
		return nil, err
	}
	jobs := make([]*job, len(texts))
	for i, s := range texts {
		enc, err := m.encode(i, TextPair{Text: s})
		if err != nil {
			return nil, err
		}
		jobs[i] = &job{enc: enc}
	}
	return m.embed(ctx, "text", jobs, pooling, normalize)
}

// EmbedImages returns one vector per image (model-ready CHW pixels).
func (m *Model) EmbedImages(ctx context.Context, pixels [][]float32, pooling string, normalize bool) ([][]float32, error) {
	if err := m.needImage(); err != nil {
		return nil, err
	}
	jobs := make([]*job, len(pixels))
	for i, px := range pixels {
		jobs[i] = &job{pixels: px}
	}
	return m.embed(ctx, "image", jobs, pooling, normalize)
}

func (m *Model) embed(ctx context.Context, modality string, jobs []*job, pooling string, normalize bool) ([][]float32, error) {
	switch pooling {
	case "":
		pooling = PoolCLS
	case PoolCLS, PoolMean:
	default:
		return nil, errf(400, "bad_request", "pooling %q: want %q or %q", pooling, PoolCLS, PoolMean)
	}
	if err := m.queues[queueKey(modality, nil)].run(ctx, jobs); err != nil {
		return nil, err
	}
	out := make([][]float32, len(jobs))
	for i, j := range jobs {
		out[i] = pool(j.hidden, m.Config.Hidden, pooling, normalize)
	}
	return out, nil
}
