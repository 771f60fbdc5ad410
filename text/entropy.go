package text

import (
	"errors"
	"maps"
	"math"
	"slices"
)

// UnigramEntropy is the entropy in nats of the unigram distribution of a
// token-id stream, the special tokens excluded (special may be nil; it has
// the shape of Tokenizer.IsSpecial):
//
//	H = −Σ_t p(t)·ln p(t),  p(t) = count(t) / N.
//
// It is the cross-entropy of the best model that ignores context, measured on
// the stream itself: the reference line a masked language model's loss must
// go below to show that it uses context. It fails when no token is left.
func UnigramEntropy(ids []int32, special func(int32) bool) (float64, error) {
	counts := map[int32]int{}
	n := 0
	for _, id := range ids {
		if special != nil && special(id) {
			continue
		}
		counts[id]++
		n++
	}
	if n == 0 {
		return 0, errors.New("unigram entropy: no non-special token in the stream")
	}
	// In id order, so that the sum is the same on every call.
	c := make([]float64, 0, len(counts))
	for _, id := range slices.Sorted(maps.Keys(counts)) {
		c = append(c, float64(counts[id]))
	}
	return EntropyOfCounts(c), nil
}

// EntropyOfCounts is the entropy in nats of the distribution that the counts
// define, −Σ_t (c_t/N)·ln(c_t/N) with N = Σ_t c_t; it is 0 when N is 0.
func EntropyOfCounts(counts []float64) float64 {
	n := 0.0
	for _, c := range counts {
		n += c
	}
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			h -= c / n * math.Log(c/n)
		}
	}
	return h
}
