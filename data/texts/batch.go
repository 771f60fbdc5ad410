package texts

import (
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
)

// MaskFunc applies masked-language-model corruption to one sequence.
// index is the sequence's position in the data set and epoch the current
// epoch, so an implementation can draw masks afresh every epoch from
// (seed, epoch, index) — e.g. with text.MaskSequence — independently of
// batch composition. ids is the row's unpadded tokens inside the batch and
// may be modified in place; the returned labels (len(ids), or nil for none)
// are copied into TextBatch.MLMLabels.
//
// The batcher calls it from its producer goroutine, one sequence at a time.
// Masking lives here, not in Pack, so that every epoch draws new masks, as
// RoBERTa's dynamic masking, instead of BERT's fixed duplicated copies. With
// package text:
//
//	mask := func(epoch, index int, ids []int32) []int32 {
//		rng := rand.New(rand.NewPCG(seed, uint64(epoch)<<32|uint64(index)))
//		m := text.MaskSequence(ids, tok.IsSpecial, tok.VocabSize(), cfg, rng)
//		labels := make([]int32, len(ids))
//		for i := range labels {
//			labels[i] = -100
//		}
//		for k, p := range m.Positions {
//			if m.Weights[k] > 0 {
//				labels[p] = m.Labels[k]
//			}
//		}
//		copy(ids, m.Inputs)
//		return labels
//	}
type MaskFunc func(epoch, index int, ids []int32) (labels []int32)

// BatchOptions configures a Batcher.
type BatchOptions struct {
	BatchSize int
	// MaxLength is L, the padded length of every row; longer sequences are
	// an error when the Batcher is built.
	MaxLength int
	PAD       int32
	// Seed and the epoch number fix each epoch's shuffle.
	Seed uint64
	// Ordered keeps data-set order (for evaluation) instead of shuffling.
	Ordered bool
	// KeepLast keeps the final partial batch of an epoch, padded with empty
	// rows (Index −1, Mask 0); by default it is dropped so every step of
	// training sees B real rows.
	KeepLast bool
	// Mask, if set, is applied to every row (see MaskFunc).
	Mask MaskFunc
	// LabelPad fills MLMLabels where there is no label (padding, and rows
	// whose MaskFunc returned nil); −100 matches PyTorch's ignore index.
	LabelPad int32
	// Prefetch is how many batches the background producer prepares ahead
	// (default 2).
	Prefetch int
	// Epochs bounds Iterate (0 = unbounded).
	Epochs int
}

// TextBatch is one fixed-shape batch of B rows of L tokens, row-major.
type TextBatch struct {
	IDs     []int32 // B*L token ids, PAD-padded
	TypeIDs []int32 // B*L segment ids (0 in padding)
	Mask    []int32 // B*L attention mask: 1 for real tokens, 0 for padding
	B, L    int

	Epoch, Step int
	Index       []int // B: data-set index of each row, −1 for padding rows
	Valid       int   // rows holding real sequences (< B only with KeepLast)

	MLMLabels []int32   // B*L labels from BatchOptions.Mask, nil without it
	NSP       []int32   // B: 1 when the B segment is random, else 0
	Labels    []int32   // B: Sequence.Label
	Scores    []float32 // B: Sequence.Score
}

// Batcher turns sequences into shuffled fixed-shape batches. A batch is a
// pure function of (epoch, step), so a run resumed at (epoch, step) sees
// exactly the batches an uninterrupted run would have.
type Batcher struct {
	seqs []Sequence
	opt  BatchOptions

	mu        sync.Mutex
	permEpoch int
	perm      []int
}

// NewBatcher checks the sequences against the options.
func NewBatcher(seqs []Sequence, opt BatchOptions) (*Batcher, error) {
	if opt.BatchSize < 1 || opt.MaxLength < 1 {
		return nil, fmt.Errorf("batching: BatchSize %d and MaxLength %d must be positive", opt.BatchSize, opt.MaxLength)
	}
	for i, s := range seqs {
		if len(s.IDs) > opt.MaxLength {
			return nil, fmt.Errorf("batching: sequence %d has %d tokens, more than MaxLength %d", i, len(s.IDs), opt.MaxLength)
		}
		if s.TypeIDs != nil && len(s.TypeIDs) != len(s.IDs) {
			return nil, fmt.Errorf("batching: sequence %d has %d ids but %d type ids", i, len(s.IDs), len(s.TypeIDs))
		}
	}
	if opt.Prefetch <= 0 {
		opt.Prefetch = 2
	}
	b := &Batcher{seqs: seqs, opt: opt, permEpoch: -1}
	if b.StepsPerEpoch() == 0 {
		return nil, fmt.Errorf("batching: %d sequences make no batch of %d (set KeepLast?)", len(seqs), opt.BatchSize)
	}
	return b, nil
}

// Len is the number of sequences.
func (b *Batcher) Len() int { return len(b.seqs) }

// StepsPerEpoch is the number of batches in one epoch.
func (b *Batcher) StepsPerEpoch() int {
	n := len(b.seqs) / b.opt.BatchSize
	if b.opt.KeepLast && len(b.seqs)%b.opt.BatchSize != 0 {
		n++
	}
	return n
}

// order returns the data-set order of an epoch: a permutation drawn from
// PCG(Seed, epoch), or the identity when Ordered.
func (b *Batcher) order(epoch int) []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.permEpoch == epoch && b.perm != nil {
		return b.perm
	}
	n := len(b.seqs)
	p := make([]int, n)
	if b.opt.Ordered {
		for i := range p {
			p[i] = i
		}
	} else {
		p = rand.New(rand.NewPCG(b.opt.Seed, uint64(epoch))).Perm(n)
	}
	b.perm, b.permEpoch = p, epoch
	return p
}

// Batch builds batch step of epoch.
func (b *Batcher) Batch(epoch, step int) (*TextBatch, error) {
	if epoch < 0 || step < 0 || step >= b.StepsPerEpoch() {
		return nil, fmt.Errorf("batching: no batch at epoch %d step %d (%d steps per epoch)", epoch, step, b.StepsPerEpoch())
	}
	perm := b.order(epoch)
	B, L := b.opt.BatchSize, b.opt.MaxLength
	tb := &TextBatch{
		IDs: make([]int32, B*L), TypeIDs: make([]int32, B*L), Mask: make([]int32, B*L),
		B: B, L: L, Epoch: epoch, Step: step,
		Index: make([]int, B), NSP: make([]int32, B), Labels: make([]int32, B), Scores: make([]float32, B),
	}
	if b.opt.Mask != nil {
		tb.MLMLabels = make([]int32, B*L)
		for i := range tb.MLMLabels {
			tb.MLMLabels[i] = b.opt.LabelPad
		}
	}
	for r := 0; r < B; r++ {
		row := tb.IDs[r*L : (r+1)*L]
		k := step*B + r
		if k >= len(perm) {
			tb.Index[r] = -1
			for j := range row {
				row[j] = b.opt.PAD
			}
			continue
		}
		idx := perm[k]
		s := &b.seqs[idx]
		tb.Index[r] = idx
		tb.Valid++
		n := copy(row, s.IDs)
		for j := n; j < L; j++ {
			row[j] = b.opt.PAD
		}
		copy(tb.TypeIDs[r*L:], s.TypeIDs)
		for j := 0; j < n; j++ {
			tb.Mask[r*L+j] = 1
		}
		if s.RandomNext {
			tb.NSP[r] = 1
		}
		tb.Labels[r], tb.Scores[r] = s.Label, s.Score
		if b.opt.Mask != nil {
			labels := b.opt.Mask(epoch, idx, row[:n])
			if labels != nil && len(labels) != n {
				return nil, fmt.Errorf("batching: mask function returned %d labels for %d tokens (sequence %d)", len(labels), n, idx)
			}
			copy(tb.MLMLabels[r*L:], labels)
		}
	}
	return tb, nil
}

// BatchIter delivers batches produced ahead by a background goroutine.
type BatchIter struct {
	ch   chan iterItem
	stop chan struct{}
	once sync.Once
}

type iterItem struct {
	b   *TextBatch
	err error
}

// Iterate starts a producer at (epoch, step) that runs through the
// remaining steps of that epoch and on into the next ones, until
// BatchOptions.Epochs (if set) or Close.
func (b *Batcher) Iterate(epoch, step int) *BatchIter {
	it := &BatchIter{ch: make(chan iterItem, b.opt.Prefetch), stop: make(chan struct{})}
	go func() {
		defer close(it.ch)
		e, s := epoch, step
		for b.opt.Epochs <= 0 || e < b.opt.Epochs {
			tb, err := b.Batch(e, s)
			select {
			case it.ch <- iterItem{tb, err}:
			case <-it.stop:
				return
			}
			if err != nil {
				return
			}
			if s++; s == b.StepsPerEpoch() {
				e, s = e+1, 0
			}
		}
	}()
	return it
}

// Next returns the next batch, or io.EOF after the last epoch.
func (it *BatchIter) Next() (*TextBatch, error) {
	item, ok := <-it.ch
	if !ok {
		return nil, io.EOF
	}
	return item.b, item.err
}

// Close stops the producer; Next must not be called afterwards.
func (it *BatchIter) Close() {
	it.once.Do(func() { close(it.stop) })
}
