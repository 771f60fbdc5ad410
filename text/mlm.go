package text

import (
	"math"
	"math/rand/v2"
	"slices"
)

// MaskConfig sets BERT's masked-language-model corruption.
type MaskConfig struct {
	// Prob is the share of candidate tokens chosen for prediction (0.15).
	Prob float64
	// MaskFrac and RandomFrac split the chosen tokens: MaskFrac become [MASK]
	// (0.8), RandomFrac a random token (0.1), the rest keep their id (0.1).
	MaskFrac, RandomFrac float64
	// MaxPredictions caps the chosen tokens and is the length of Positions,
	// Labels and Weights, which are padded to it. 0 means no cap and no padding.
	MaxPredictions int
	// MaskID is the id of [MASK] (Tokenizer.MASK()).
	MaskID int32
}

// DefaultMaskConfig is BERT's setting: 15% of tokens, 80% [MASK], 10% random,
// 10% unchanged.
func DefaultMaskConfig(maskID int32, maxPredictions int) MaskConfig {
	return MaskConfig{Prob: 0.15, MaskFrac: 0.8, RandomFrac: 0.1, MaxPredictions: maxPredictions, MaskID: maskID}
}

// Masked is one corrupted sequence and its prediction targets.
type Masked struct {
	Inputs    []int32   // the ids with chosen tokens replaced; same length as the input
	Positions []int32   // chosen positions, ascending, then 0 padding
	Labels    []int32   // original ids at Positions, 0 for padding
	Weights   []float32 // 1 for a real prediction, 0 for padding
}

// maxRandomTries bounds the draws for a random non-special token; a vocabulary
// where they all fail leaves the token unchanged.
const maxRandomTries = 64

// MaskSequence applies BERT's masking to ids. Candidates are the positions
// whose id is not special (special should report [CLS], [SEP], [PAD] and the
// other special tokens; Tokenizer.IsSpecial does). It chooses
// round(Prob·candidates) of them (half to even, as Python's round), at least
// one when there is any candidate and at most MaxPredictions; then, for each
// chosen token independently, it writes cfg.MaskID with probability MaskFrac,
// a uniformly drawn non-special id in [0, vocabSize) with probability
// RandomFrac, and otherwise keeps the id.
//
// The result depends only on the arguments and the state of rng, so a seeded
// rand.NewPCG gives reproducible batches. A nil rng is taken as PCG(0, 0);
// out-of-range probabilities are clamped to [0, 1].
func MaskSequence(ids []int32, special func(int32) bool, vocabSize int, cfg MaskConfig, rng *rand.Rand) Masked {
	if rng == nil {
		rng = rand.New(rand.NewPCG(0, 0))
	}
	if special == nil {
		special = func(int32) bool { return false }
	}
	prob, maskFrac, randomFrac := clamp01(cfg.Prob), clamp01(cfg.MaskFrac), clamp01(cfg.RandomFrac)

	candidates := make([]int32, 0, len(ids))
	for i, id := range ids {
		if !special(id) {
			candidates = append(candidates, int32(i))
		}
	}
	n := int(math.RoundToEven(prob * float64(len(candidates))))
	if len(candidates) > 0 {
		n = max(n, 1)
	}
	n = min(n, len(candidates))
	if cfg.MaxPredictions > 0 {
		n = min(n, cfg.MaxPredictions)
	}
	// Partial Fisher–Yates: the first n candidates become a uniform sample.
	for i := range n {
		j := i + rng.IntN(len(candidates)-i)
		candidates[i], candidates[j] = candidates[j], candidates[i]
	}
	chosen := candidates[:n]
	slices.Sort(chosen)

	size := n
	if cfg.MaxPredictions > 0 {
		size = cfg.MaxPredictions
	}
	m := Masked{
		Inputs:    slices.Clone(ids),
		Positions: make([]int32, size),
		Labels:    make([]int32, size),
		Weights:   make([]float32, size),
	}
	if m.Inputs == nil {
		m.Inputs = []int32{}
	}
	for k, pos := range chosen {
		m.Positions[k], m.Labels[k], m.Weights[k] = pos, ids[pos], 1
		switch r := rng.Float64(); {
		case r < maskFrac:
			m.Inputs[pos] = cfg.MaskID
		case r < maskFrac+randomFrac:
			m.Inputs[pos] = randomToken(ids[pos], special, vocabSize, rng)
		}
	}
	return m
}

// DynamicMask returns BERT's masking of tok's sequences drawn afresh for every
// epoch, as RoBERTa's dynamic masking: the mask of sequence index in epoch is
// MaskSequence with an rng seeded from (seed, epoch, index) alone, so it does
// not depend on batch composition and a resumed run draws the same masks. It
// has the shape of data/texts' MaskFunc.
func DynamicMask(tok *Tokenizer, cfg MaskConfig, seed uint64) func(epoch, index int, ids []int32) Masked {
	vocab := tok.VocabSize()
	return func(epoch, index int, ids []int32) Masked {
		rng := rand.New(rand.NewPCG(seed^0x6d6c6d, uint64(epoch)<<32|uint64(index)))
		return MaskSequence(ids, tok.IsSpecial, vocab, cfg, rng)
	}
}

func randomToken(orig int32, special func(int32) bool, vocabSize int, rng *rand.Rand) int32 {
	if vocabSize <= 0 || vocabSize > math.MaxInt32 {
		return orig
	}
	for range maxRandomTries {
		if id := int32(rng.IntN(vocabSize)); !special(id) {
			return id
		}
	}
	return orig
}

func clamp01(x float64) float64 {
	if !(x > 0) { // NaN too
		return 0
	}
	return min(x, 1)
}
