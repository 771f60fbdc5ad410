package text

import (
	"math"
	"testing"
)

func TestUnigramEntropy(t *testing.T) {
	special := func(id int32) bool { return id < 5 }
	tests := []struct {
		ids  []int32
		want float64
	}{
		{[]int32{7, 7, 7}, 0},
		{[]int32{2, 7, 8, 3}, math.Ln2}, // two equally likely tokens, specials dropped
		{[]int32{10, 11, 12, 13}, math.Log(4)},
		// p = (1/2, 1/4, 1/4): H = ½ln2 + ½ln4 = 1.5 ln 2.
		{[]int32{9, 9, 0, 10, 11, 4}, 1.5 * math.Ln2},
	}
	for _, tc := range tests {
		h, err := UnigramEntropy(tc.ids, special)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(h-tc.want) > 1e-12 {
			t.Errorf("UnigramEntropy(%v) = %g, want %g", tc.ids, h, tc.want)
		}
	}
	if _, err := UnigramEntropy([]int32{0, 1, 4}, special); err == nil {
		t.Error("a stream of special tokens only gave no error")
	}
	if h, err := UnigramEntropy([]int32{0, 1}, nil); err != nil || math.Abs(h-math.Ln2) > 1e-12 {
		t.Errorf("nil special: %g, %v; want ln 2", h, err)
	}
}
