package pretrain

import (
	"cmp"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like the equations.
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/vitbert/vitbert/atomicfs"
	"github.com/vitbert/vitbert/data/images"
	"github.com/vitbert/vitbert/data/texts"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/text"
	"github.com/vitbert/vitbert/train"
)

// heldOutSeed fixes the held-out images and the held-out texts' packing and
// masking, whatever the run's seed, so that every run of a comparison is
// scored on the same examples.
const heldOutSeed = 0x68656c64

// DataFile, under a run's folder, describes its data: the train/held-out
// split and the corpus's unigram entropy under the run's vocabulary.
const DataFile = "data.json"

// heldOutCount is how many of n items a share frac holds out: at least one
// when frac > 0, and never all of them.
func heldOutCount(n int, frac float64) int {
	if frac <= 0 || n < 2 {
		return 0
	}
	return min(n-1, max(1, int(math.Ceil(frac*float64(n)))))
}

// SplitDocuments holds out a share frac of the documents, by document, so
// that no held-out text shares a document with a training one. The choice
// depends only on the documents' sources (the first of them in FNV-1a hash
// order), not on their order or the run's seed. It is the one place that
// decides the text split.
func SplitDocuments(docs []texts.Document, frac float64) (train, heldOut []texts.Document) {
	k := heldOutCount(len(docs), frac)
	hash := func(d texts.Document) uint64 {
		h := fnv.New64a()
		h.Write([]byte(d.Source))
		return h.Sum64()
	}
	order := make([]int, len(docs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(hash(docs[a]), hash(docs[b])) })
	held := map[int]bool{}
	for _, i := range order[:k] {
		held[i] = true
	}
	for i, d := range docs {
		if held[i] {
			heldOut = append(heldOut, d)
		} else {
			train = append(train, d)
		}
	}
	return train, heldOut
}

// SplitImages holds out a share frac of a training set's images, chosen by
// a permutation of fixed seed; both parts keep the data set's order.
func SplitImages(ds *images.Dataset, frac float64) (train, heldOut *images.Dataset, err error) {
	k := heldOutCount(ds.N, frac)
	if k == 0 {
		return ds, nil, nil
	}
	perm := rand.New(rand.NewPCG(heldOutSeed, uint64(ds.N))).Perm(ds.N)
	held, rest := slices.Clone(perm[:k]), slices.Clone(perm[k:])
	slices.Sort(held)
	slices.Sort(rest)
	if heldOut, err = ds.Subset(held); err != nil {
		return nil, nil, err
	}
	if train, err = ds.Subset(rest); err != nil {
		return nil, nil, err
	}
	return train, heldOut, nil
}

// UnigramStats are the corpus's token statistics under the run's vocabulary
// (word pieces, special tokens excluded), in nats: the reference a masked
// language model must beat before it has learned anything from context.
type UnigramStats struct {
	Tokens int `json:"tokens"`
	// Entropy of the training tokens' unigram distribution.
	Entropy float64 `json:"unigram_entropy_nats"`
	// HeldOutCrossEntropy is the mean −log p(token) of the held-out tokens
	// under the training unigram distribution with add-one smoothing: the
	// held-out MLM loss of a model that ignores the context.
	HeldOutCrossEntropy float64 `json:"held_out_unigram_cross_entropy_nats,omitempty"`
}

func unigramStats(train, heldOut []texts.Sequence, isSpecial func(int32) bool, vocab int) UnigramStats {
	counts := make([]float64, vocab)
	var st UnigramStats
	for _, s := range train {
		for _, id := range s.IDs {
			if !isSpecial(id) && int(id) < vocab {
				counts[id]++
				st.Tokens++
			}
		}
	}
	n := float64(st.Tokens)
	st.Entropy = text.EntropyOfCounts(counts)
	m := 0
	for _, s := range heldOut {
		for _, id := range s.IDs {
			if !isSpecial(id) && int(id) < vocab {
				st.HeldOutCrossEntropy -= math.Log((counts[id] + 1) / (n + float64(vocab)))
				m++
			}
		}
	}
	if m > 0 {
		st.HeldOutCrossEntropy /= float64(m)
	}
	return st
}

// DataRecord is DataFile.
type DataRecord struct {
	Text  *textRecord  `json:"text,omitempty"`
	Image *imageRecord `json:"image,omitempty"`
}

type textRecord struct {
	Documents        int          `json:"documents"`
	HeldOutDocuments []string     `json:"held_out_documents"`
	Sequences        int          `json:"sequences"`
	HeldOutSequences int          `json:"held_out_sequences"`
	VocabSize        int          `json:"vocab_size"`
	Unigram          UnigramStats `json:"unigram"`
}

type imageRecord struct {
	Train   int `json:"train_images"`
	HeldOut int `json:"held_out_images"`
}

func (r *DataRecord) write(dir string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfs.WriteBytes(filepath.Join(dir, DataFile), append(b, '\n'))
}

// evaluator scores the student on the held-out data: the MLM loss
// (cross-entropy, without distillation) and accuracy at the masked
// positions, and the image loss and top-1 accuracy.
type evaluator struct {
	backend compute.Backend
	store   *mlmodel.Store
	model   model.Config
	text    []*TextInputs[*tensors.Tensor]
	image   []*ImageInputs[*tensors.Tensor]
	weights []*tensors.Tensor // the image batches' weights (0: padding)
}

// sums returns Σ w·CE, Σ w·[argmax = label] and Σ w.
func sums(logits, labels, weights *Node) []*Node {
	f := func(x *Node) *Node { return ConvertDType(x, dtypes.Float32) }
	w := f(weights)
	total := ReduceAllSum(w)
	loss := Mul(f(train.SoftmaxCrossEntropy(logits, labels, weights)), total)
	hit := f(Equal(ConvertDType(ArgMax(logits, -1), labels.DType()), labels))
	return []*Node{loss, ReduceAllSum(Mul(hit, w)), total}
}

// newEvaluator prepares up to c.EvalExamples held-out texts and images (the
// first batches of the held-out data, whose order and masking are fixed).
func newEvaluator(backend compute.Backend, store *mlmodel.Store, c *Config, text *TextData, imgs *images.Loader) (*evaluator, error) {
	e := &evaluator{backend: backend, store: store, model: c.Model}
	if text != nil {
		n := min(text.Batcher.StepsPerEpoch(), max(1, c.EvalExamples/c.TextBatch))
		for step := range n {
			x, err := text.inputs(0, step)
			if err != nil {
				return nil, fmt.Errorf("held-out texts: %w", err)
			}
			e.text = append(e.text, x)
		}
	}
	if imgs != nil {
		n := min(imgs.StepsPerEpoch(), max(1, c.EvalExamples/c.ImageBatch))
		for step := range n {
			b, err := imgs.Batch(0, step)
			if err != nil {
				return nil, fmt.Errorf("held-out images: %w", err)
			}
			e.image = append(e.image, imageInputs(b))
			e.weights = append(e.weights, tensors.FromFlatDataAndDimensions(b.Weights, b.B))
		}
	}
	return e, nil
}

// Held-out metric names in metrics.jsonl.
const (
	MetricHeldOutTextLoss  = "heldout_mlm_loss"
	MetricHeldOutTextAcc   = "heldout_mlm_acc"
	MetricHeldOutImageLoss = "heldout_image_loss"
	MetricHeldOutImageAcc  = "heldout_image_acc"
)

// evaluate runs the held-out batches through the current weights. Its
// graphs are compiled afresh each time (as finetune's evaluator does): on
// GoMLX's pure-Go backend a compiled inference graph holds the variable
// values it was first run with and would not see later training steps.
func (e *evaluator) evaluate(int) (map[string]float64, error) {
	out := map[string]float64{}
	mc := &e.model
	score := func(exec *mlmodel.Exec, err error, args [][]any, lossKey, accKey string) error {
		if err != nil {
			return err
		}
		defer exec.Finalize()
		var loss, hit, total float64
		for _, a := range args {
			res, err := exec.Exec(a...)
			if err != nil {
				return err
			}
			loss += float64(tensors.ToScalar[float32](res[0]))
			hit += float64(tensors.ToScalar[float32](res[1]))
			total += float64(tensors.ToScalar[float32](res[2]))
			for _, r := range res {
				r.FinalizeAll()
			}
		}
		if total > 0 {
			out[lossKey], out[accKey] = loss/total, hit/total
		}
		return nil
	}
	if len(e.text) > 0 {
		var args [][]any
		for _, x := range e.text {
			args = append(args, []any{x.IDs, x.Segments, x.Mask, x.Positions, x.Labels, x.Weights})
		}
		fn := func(scope *mlmodel.Scope, ids, seg, mask, pos, lab, w *Node) []*Node {
			h, _ := mc.Head(MLMHead)
			return sums(mc.HeadLogits(scope, h, model.GatherPositions(mc.EncodeText(scope, ids, seg, mask), pos)), lab, w)
		}
		exec, err := mlmodel.NewExec(e.backend, e.store, fn)
		if err := score(exec, err, args, MetricHeldOutTextLoss, MetricHeldOutTextAcc); err != nil {
			return nil, fmt.Errorf("held-out texts: %w", err)
		}
	}
	if len(e.image) > 0 {
		var args [][]any
		for i, x := range e.image {
			args = append(args, []any{x.Pixels, x.Labels, e.weights[i]})
		}
		fn := func(scope *mlmodel.Scope, px, lab, w *Node) []*Node {
			h, _ := mc.Head(ImageHead)
			return sums(mc.HeadLogits(scope, h, model.CLS(mc.EncodeImage(scope, px))), lab, w)
		}
		exec, err := mlmodel.NewExec(e.backend, e.store, fn)
		if err := score(exec, err, args, MetricHeldOutImageLoss, MetricHeldOutImageAcc); err != nil {
			return nil, fmt.Errorf("held-out images: %w", err)
		}
	}
	return out, nil
}
