package texts

import (
	"reflect"
	"slices"
	"testing"

	"github.com/vitbert/vitbert/text"
)

const maskID, pad = 3, 0

// toyP is the number of MLM targets per row in the batch tests.
const toyP = 3

// everyThird masks positions where (epoch+index+j) % 3 == 0, so masks move
// between epochs: at most 2 of a row's ≤ 6 tokens, padded to toyP targets.
func everyThird(epoch, index int, ids []int32) text.Masked {
	m := text.Masked{Inputs: slices.Clone(ids), Positions: make([]int32, toyP), Labels: make([]int32, toyP), Weights: make([]float32, toyP)}
	k := 0
	for j := range ids {
		if (epoch+index+j)%3 == 0 {
			m.Positions[k], m.Labels[k], m.Weights[k] = int32(j), ids[j], 1
			m.Inputs[j] = maskID
			k++
		}
	}
	return m
}

func toySeqs(n int) []Sequence {
	seqs := make([]Sequence, n)
	for i := range seqs {
		l := 3 + i%4 // 3..6 tokens
		s := Sequence{IDs: make([]int32, l), TypeIDs: make([]int32, l), Label: int32(i % 2), Score: float32(i), RandomNext: i%3 == 0}
		s.IDs[0], s.IDs[l-1] = numVocab.CLS(), numVocab.SEP()
		for j := 1; j < l-1; j++ {
			s.IDs[j] = int32(100 + 10*i + j)
		}
		s.TypeIDs[l-1] = 1
		seqs[i] = s
	}
	return seqs
}

func TestBatchShapePaddingAndMasks(t *testing.T) {
	seqs := toySeqs(10)
	b, err := NewBatcher(seqs, BatchOptions{BatchSize: 3, MaxLength: 6, PAD: pad, Seed: 1, Mask: everyThird, MaxPredictions: toyP})
	if err != nil {
		t.Fatal(err)
	}
	if b.StepsPerEpoch() != 3 { // 10/3, last partial batch dropped
		t.Fatalf("steps %d, want 3", b.StepsPerEpoch())
	}
	seen := map[int]bool{}
	for step := 0; step < 3; step++ {
		tb, err := b.Batch(0, step)
		if err != nil {
			t.Fatal(err)
		}
		if len(tb.IDs) != 18 || len(tb.Mask) != 18 || len(tb.TypeIDs) != 18 || len(tb.MLMLabels) != 3*toyP || len(tb.MLMPositions) != 3*toyP || len(tb.MLMWeights) != 3*toyP || tb.Valid != 3 {
			t.Fatalf("bad shapes: %d ids, valid %d", len(tb.IDs), tb.Valid)
		}
		for r := 0; r < 3; r++ {
			idx := tb.Index[r]
			if seen[idx] {
				t.Fatalf("sequence %d twice in an epoch", idx)
			}
			seen[idx] = true
			s := seqs[idx]
			n := len(s.IDs)
			var wantPos, wantLab []int32
			var wantW []float32
			for j := 0; j < 6; j++ {
				id, m := tb.IDs[r*6+j], tb.Mask[r*6+j]
				switch {
				case j >= n:
					if id != pad || m != 0 || tb.TypeIDs[r*6+j] != 0 {
						t.Fatalf("padding at row %d col %d: id %d mask %d", r, j, id, m)
					}
				case (idx+j)%3 == 0:
					if id != maskID || m != 1 {
						t.Fatalf("masked position row %d col %d: id %d", r, j, id)
					}
					wantPos, wantLab, wantW = append(wantPos, int32(j)), append(wantLab, s.IDs[j]), append(wantW, 1)
				default:
					if id != s.IDs[j] || m != 1 || tb.TypeIDs[r*6+j] != s.TypeIDs[j] {
						t.Fatalf("row %d col %d: id %d", r, j, id)
					}
				}
			}
			for len(wantPos) < toyP {
				wantPos, wantLab, wantW = append(wantPos, 0), append(wantLab, 0), append(wantW, 0)
			}
			rp := func(x []int32) []int32 { return x[r*toyP : (r+1)*toyP] }
			if !slices.Equal(rp(tb.MLMPositions), wantPos) || !slices.Equal(rp(tb.MLMLabels), wantLab) || !slices.Equal(tb.MLMWeights[r*toyP:(r+1)*toyP], wantW) {
				t.Fatalf("row %d targets %v %v %v, want %v %v %v", r, rp(tb.MLMPositions), rp(tb.MLMLabels), tb.MLMWeights[r*toyP:(r+1)*toyP], wantPos, wantLab, wantW)
			}
			if tb.Labels[r] != s.Label || tb.Scores[r] != s.Score || (tb.NSP[r] == 1) != s.RandomNext {
				t.Fatalf("row %d targets differ from sequence %d", r, idx)
			}
		}
	}
	if s := seqs[0].IDs[1]; s != 101 {
		t.Fatalf("masking modified the source sequences (%d)", s)
	}
	e0, _ := b.Batch(0, 0)
	e1, _ := b.Batch(1, 0)
	if reflect.DeepEqual(e0.Index, e1.Index) && reflect.DeepEqual(e0.IDs, e1.IDs) {
		t.Error("epochs 0 and 1 start with the same batch")
	}
}

func TestBatchKeepLastPadsRows(t *testing.T) {
	b, err := NewBatcher(toySeqs(10), BatchOptions{BatchSize: 3, MaxLength: 6, PAD: pad, Ordered: true, KeepLast: true})
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.Batch(0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if b.StepsPerEpoch() != 4 || tb.Valid != 1 || !reflect.DeepEqual(tb.Index, []int{9, -1, -1}) {
		t.Fatalf("steps %d valid %d index %v", b.StepsPerEpoch(), tb.Valid, tb.Index)
	}
	for j := 6; j < 18; j++ {
		if tb.Mask[j] != 0 || tb.IDs[j] != pad {
			t.Fatal("padding row not empty")
		}
	}
	if _, err := b.Batch(0, 4); err == nil {
		t.Error("step past the epoch accepted")
	}
	if _, err := NewBatcher(toySeqs(2), BatchOptions{BatchSize: 3, MaxLength: 6}); err == nil {
		t.Error("no full batch accepted without KeepLast")
	}
	if _, err := NewBatcher(toySeqs(5), BatchOptions{BatchSize: 3, MaxLength: 4}); err == nil {
		t.Error("sequence longer than MaxLength accepted")
	}
}

func TestFreshBatcherGivesUninterruptedBatches(t *testing.T) {
	opt := BatchOptions{BatchSize: 3, MaxLength: 6, Seed: 42, Mask: everyThird, MaxPredictions: toyP}
	b, _ := NewBatcher(toySeqs(11), opt)
	if b.StepsPerEpoch() != 3 {
		t.Fatalf("%d steps per epoch, want 3", b.StepsPerEpoch())
	}
	var full []*TextBatch
	for e := range 3 {
		for s := range 3 {
			tb, err := b.Batch(e, s)
			if err != nil {
				t.Fatal(err)
			}
			full = append(full, tb)
		}
	}
	// Interrupted run: a fresh Batcher resumes at epoch 1, step 1.
	b2, _ := NewBatcher(toySeqs(11), opt)
	for i := 4; i < 9; i++ {
		tb, err := b2.Batch(i/3, i%3)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(tb, full[i]) {
			t.Fatalf("resumed batch %d (epoch %d step %d) differs", i, tb.Epoch, tb.Step)
		}
	}
}

func TestBatchRejectsBadMasks(t *testing.T) {
	if _, err := NewBatcher(toySeqs(6), BatchOptions{BatchSize: 3, MaxLength: 6, Mask: everyThird}); err == nil {
		t.Error("a Mask without MaxPredictions accepted")
	}
	short := func(epoch, index int, ids []int32) text.Masked {
		m := everyThird(epoch, index, ids)
		m.Weights = m.Weights[:1]
		return m
	}
	b, err := NewBatcher(toySeqs(6), BatchOptions{BatchSize: 3, MaxLength: 6, Mask: short, MaxPredictions: toyP})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Batch(0, 0); err == nil {
		t.Error("a mask function returning 1 weight for 3 predictions gave no error")
	}
}
