package text

import (
	"errors"
	"math"
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
	h := 0.0
	for _, c := range counts {
		p := float64(c) / float64(n)
		h -= p * math.Log(p)
	}
	return h, nil
}
