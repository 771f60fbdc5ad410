package texts

import (
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/vitbert/vitbert/text"
)

// MaskFunc applies masked-language-model corruption to one sequence: ids is
// the row's unpadded tokens ([CLS] … [SEP]) and the result holds the corrupted
// ids (Inputs, same length) and the row's BatchOptions.MaxPredictions targets
// (Positions, Labels, Weights), which the batch carries as they are.
// index is the sequence's position in the data set and epoch the current
// epoch, so an implementation can draw masks afresh every epoch from
// (seed, epoch, index) independently of batch composition, as
// text.DynamicMask does.
//
// The batcher calls it from its producer goroutine, one sequence at a time.
// Masking lives here, not in Pack, so that every epoch draws new masks, as
// RoBERTa's dynamic masking, instead of BERT's fixed duplicated copies.
type MaskFunc func(epoch, index int, ids []int32) text.Masked

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
	// Mask, if set, is applied to every row (see MaskFunc); it must return
	// MaxPredictions targets per row.
	Mask           MaskFunc
	MaxPredictions int
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

	// MLM targets from BatchOptions.Mask, B*P row-major (P =
	// MaxPredictions), nil without it: the predicted positions, the original
	// ids there, and weights 1 for a real target, 0 for padding (padding
	// rows are all 0).
	MLMPositions, MLMLabels []int32
	MLMWeights              []float32
	P                       int
	NSP                     []int32   // B: 1 when the B segment is random, else 0
	Labels                  []int32   // B: Sequence.Label
	Scores                  []float32 // B: Sequence.Score
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
	if opt.Mask != nil && opt.MaxPredictions < 1 {
		return nil, fmt.Errorf("batching: MaxPredictions %d must be positive with a Mask", opt.MaxPredictions)
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
		P := b.opt.MaxPredictions
		tb.P, tb.MLMPositions, tb.MLMLabels, tb.MLMWeights = P, make([]int32, B*P), make([]int32, B*P), make([]float32, B*P)
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
			m, P := b.opt.Mask(epoch, idx, row[:n]), tb.P
			if len(m.Inputs) != n || len(m.Positions) != P || len(m.Labels) != P || len(m.Weights) != P {
				return nil, fmt.Errorf("batching: mask function returned %d ids and %d/%d/%d targets for %d tokens and %d predictions (sequence %d)",
					len(m.Inputs), len(m.Positions), len(m.Labels), len(m.Weights), n, P, idx)
			}
			copy(row, m.Inputs)
			copy(tb.MLMPositions[r*P:], m.Positions)
			copy(tb.MLMLabels[r*P:], m.Labels)
			copy(tb.MLMWeights[r*P:], m.Weights)
		}
	}
	return tb, nil
}
