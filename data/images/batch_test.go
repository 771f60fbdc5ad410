package images

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestPermutationDependsOnSeedAndEpochOnly(t *testing.T) {
	ds := synthetic(50, 1, 2, 2, 10)
	mk := func(seed uint64) *Loader {
		l, err := NewLoader(ds, LoaderConfig{BatchSize: 8, Train: true, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a, b, c := mk(1), mk(1), mk(2)
	p0 := a.Permutation(0)
	if !slices.Equal(p0, b.Permutation(0)) {
		t.Error("same seed and epoch: different orders")
	}
	if slices.Equal(p0, a.Permutation(1)) || slices.Equal(p0, c.Permutation(0)) {
		t.Error("another epoch or seed gave the same order")
	}
	sorted := slices.Clone(p0)
	slices.Sort(sorted)
	for i, v := range sorted {
		if v != i {
			t.Fatalf("epoch order is not a permutation: %v", p0)
		}
	}
	if a.StepsPerEpoch() != 6 {
		t.Errorf("train steps per epoch = %d, want 50/8 = 6", a.StepsPerEpoch())
	}
}

func TestTrainBatchHoldsPermutedPreprocessedImages(t *testing.T) {
	ds := synthetic(20, 1, 4, 4, 10)
	cfg := LoaderConfig{BatchSize: 4, Size: 6, Channels: 3, Train: true, Seed: 9, Augment: Augment{Pad: 1, Flip: true}}
	l, err := NewLoader(ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Batch(2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if b.B != 4 || b.C != 3 || b.H != 6 || b.W != 6 || len(b.Pixels) != 4*3*36 || b.Real() != 4 {
		t.Fatalf("batch shape B=%d C=%d H=%d W=%d len=%d real=%d", b.B, b.C, b.H, b.W, len(b.Pixels), b.Real())
	}
	perm := l.Permutation(2)
	pre := Preprocess{Size: 6, Channels: 3}
	for j := range 4 {
		pos := 3*4 + j
		i := perm[pos]
		// Rebuild example j the documented way: its own generator keyed by
		// (seed, epoch, position).
		want, err := pre.Image(ds, i, cfg.Augment, rand.New(rand.NewPCG(9^augKey, 2<<32|uint64(pos))))
		if err != nil {
			t.Fatal(err)
		}
		if !equal(b.Pixels[j*108:(j+1)*108], want) || b.Labels[j] != ds.Labels[i] {
			t.Fatalf("example %d is not image %d preprocessed and augmented", j, i)
		}
	}
}

func TestEvalPadsLastBatchWithZeroWeights(t *testing.T) {
	ds := synthetic(10, 1, 2, 2, 10)
	l, err := NewLoader(ds, LoaderConfig{BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	if l.StepsPerEpoch() != 3 {
		t.Fatalf("eval steps = %d, want 3", l.StepsPerEpoch())
	}
	var labels []int32
	var weights []float32
	for step := range l.StepsPerEpoch() {
		b, err := l.Batch(0, step)
		if err != nil {
			t.Fatal(err)
		}
		labels = append(labels, b.Labels...)
		weights = append(weights, b.Weights...)
		if b.Step == 2 && (b.Real() != 2 || b.Pixels[2*4] != 0) {
			t.Errorf("last batch: %d real examples, padding pixel %v", b.Real(), b.Pixels[2*4])
		}
	}
	want := []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0}
	if !slices.Equal(labels, want) || !slices.Equal(weights, []float32{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}) {
		t.Errorf("labels %v weights %v, want dataset order then 2 padding", labels, weights)
	}
	// Evaluation batches are not augmented even if asked: the first image is
	// exactly the dataset's, normalised.
	b, _ := l.Batch(0, 0)
	if got, want := b.Pixels[1], (float32(ds.Pixels[1])/255-0.5)/0.5; got != want {
		t.Errorf("eval pixel = %v, want %v", got, want)
	}
}

func TestFreshLoaderGivesIdenticalBatches(t *testing.T) {
	ds := synthetic(22, 1, 3, 3, 10)
	cfg := LoaderConfig{BatchSize: 5, Train: true, Seed: 42, Augment: Augment{Pad: 1, Flip: true}}
	l, err := NewLoader(ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// 4 steps per epoch; 3 epochs of an uninterrupted run.
	if l.StepsPerEpoch() != 4 {
		t.Fatalf("steps per epoch = %d, want 4", l.StepsPerEpoch())
	}
	var all []*Batch
	for e := range 3 {
		for s := range 4 {
			b, err := l.Batch(e, s)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, b)
		}
	}
	if all[4].Epoch != 1 || all[4].Step != 0 || all[11].Epoch != 2 || all[11].Step != 3 {
		t.Fatalf("positions: batch 4 at (%d,%d), batch 11 at (%d,%d)", all[4].Epoch, all[4].Step, all[11].Epoch, all[11].Step)
	}
	// A fresh loader (as after a restart) resumed at (1, 2).
	l2, _ := NewLoader(ds, cfg)
	for k := 6; k < 12; k++ {
		b, err := l2.Batch(k/4, k%4)
		if err != nil {
			t.Fatal(err)
		}
		if b.Epoch != all[k].Epoch || b.Step != all[k].Step || !equal(b.Pixels, all[k].Pixels) || !slices.Equal(b.Labels, all[k].Labels) {
			t.Fatalf("resumed batch %d differs from the uninterrupted run", k)
		}
	}
	// Successive epochs see different orders, and an epoch covers 20 distinct images.
	if slices.Equal(all[0].Labels, all[4].Labels) && equal(all[0].Pixels, all[4].Pixels) {
		t.Error("epochs 0 and 1 start with the same batch")
	}
}

func TestNewLoaderRejectsBadConfig(t *testing.T) {
	ds := synthetic(3, 1, 2, 2, 10)
	for name, cfg := range map[string]LoaderConfig{
		"zero batch":        {BatchSize: 0},
		"batch > N (train)": {BatchSize: 4, Train: true},
		"2 channels":        {BatchSize: 1, Channels: 2},
		"short mean":        {BatchSize: 1, Channels: 3, Mean: []float32{0.5, 0.5}},
	} {
		if _, err := NewLoader(ds, cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	l, _ := NewLoader(ds, LoaderConfig{BatchSize: 2, Train: true})
	if _, err := l.Batch(0, 1); err == nil {
		t.Error("step 1 of a 1-step epoch: no error")
	}
}
