package images

import "testing"

// BenchmarkBatch224 measures one training batch of 32 Fashion-MNIST images
// enlarged to 224x224 RGB with augmentation, the ViT-Base input.
func BenchmarkBatch224(b *testing.B) {
	train, _, err := Default()
	if err != nil {
		b.Fatal(err)
	}
	l, err := NewLoader(train, LoaderConfig{BatchSize: 32, Size: 224, Channels: 3, Train: true, Augment: Augment{Pad: 8, Flip: true}})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		if _, err := l.Batch(0, i%l.StepsPerEpoch()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatch28 is the same at the native 28x28 grey size.
func BenchmarkBatch28(b *testing.B) {
	train, _, err := Default()
	if err != nil {
		b.Fatal(err)
	}
	l, err := NewLoader(train, LoaderConfig{BatchSize: 128, Train: true, Augment: Augment{Pad: 2, Flip: true}})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		if _, err := l.Batch(0, i%l.StepsPerEpoch()); err != nil {
			b.Fatal(err)
		}
	}
}
