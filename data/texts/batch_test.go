package texts

import (
	"errors"
	"io"
	"reflect"
	"testing"
)

const maskID = 3

// everyThird masks positions where (epoch+index+j) % 3 == 0, so masks move
// between epochs; labels hold the original id there and −1 elsewhere.
func everyThird(epoch, index int, ids []int32) []int32 {
	labels := make([]int32, len(ids))
	for j := range ids {
		labels[j] = -1
		if (epoch+index+j)%3 == 0 {
			labels[j], ids[j] = ids[j], maskID
		}
	}
	return labels
}

func toySeqs(n int) []Sequence {
	seqs := make([]Sequence, n)
	for i := range seqs {
		l := 3 + i%4 // 3..6 tokens
		s := Sequence{IDs: make([]int32, l), TypeIDs: make([]int32, l), Label: int32(i % 2), Score: float32(i), RandomNext: i%3 == 0}
		s.IDs[0], s.IDs[l-1] = sp.CLS, sp.SEP
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
	b, err := NewBatcher(seqs, BatchOptions{BatchSize: 3, MaxLength: 6, PAD: sp.PAD, Seed: 1, Mask: everyThird, LabelPad: -100})
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
		if len(tb.IDs) != 18 || len(tb.Mask) != 18 || len(tb.TypeIDs) != 18 || len(tb.MLMLabels) != 18 || tb.Valid != 3 {
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
			for j := 0; j < 6; j++ {
				id, m, lab := tb.IDs[r*6+j], tb.Mask[r*6+j], tb.MLMLabels[r*6+j]
				switch {
				case j >= n:
					if id != sp.PAD || m != 0 || lab != -100 || tb.TypeIDs[r*6+j] != 0 {
						t.Fatalf("padding at row %d col %d: id %d mask %d label %d", r, j, id, m, lab)
					}
				case (idx+j)%3 == 0:
					if id != maskID || lab != s.IDs[j] || m != 1 {
						t.Fatalf("masked position row %d col %d: id %d label %d", r, j, id, lab)
					}
				default:
					if id != s.IDs[j] || lab != -1 || m != 1 || tb.TypeIDs[r*6+j] != s.TypeIDs[j] {
						t.Fatalf("row %d col %d: id %d label %d", r, j, id, lab)
					}
				}
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
	b, err := NewBatcher(toySeqs(10), BatchOptions{BatchSize: 3, MaxLength: 6, PAD: sp.PAD, Ordered: true, KeepLast: true})
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
		if tb.Mask[j] != 0 || tb.IDs[j] != sp.PAD {
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

func TestIterateResumeGivesUninterruptedBatches(t *testing.T) {
	opt := BatchOptions{BatchSize: 3, MaxLength: 6, Seed: 42, Mask: everyThird, LabelPad: -100, Epochs: 3}
	b, _ := NewBatcher(toySeqs(11), opt)
	var full []*TextBatch
	it := b.Iterate(0, 0)
	for {
		tb, err := it.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		full = append(full, tb)
	}
	if len(full) != 9 { // 3 epochs × 3 steps
		t.Fatalf("%d batches, want 9", len(full))
	}
	// Interrupted run: stop after 4 batches (epoch 1, step 1 comes next),
	// then a fresh Batcher resumes there.
	it = b.Iterate(0, 0)
	for i := 0; i < 4; i++ {
		if _, err := it.Next(); err != nil {
			t.Fatal(err)
		}
	}
	it.Close()
	b2, _ := NewBatcher(toySeqs(11), opt)
	it2 := b2.Iterate(1, 1)
	defer it2.Close()
	for i := 4; i < 9; i++ {
		tb, err := it2.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(tb, full[i]) {
			t.Fatalf("resumed batch %d (epoch %d step %d) differs", i, tb.Epoch, tb.Step)
		}
	}
	if _, err := it2.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last epoch: %v, want EOF", err)
	}
}
