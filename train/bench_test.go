package train

import (
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers"
	mlmodel "github.com/gomlx/gomlx/ml/model"
)

// benchLossFn: a text and an image input through a shared 4-layer MLP of
// width 256 and a 10-way head each.
func benchLossFn(scope *mlmodel.Scope, g *Graph, in []*Node) Losses {
	encoder := func(x *Node) *Node {
		for i := range 4 {
			x = Tanh(layers.Dense(scope.At("encoder").At("layer_%d", i), x, true, 256))
		}
		return x
	}
	lt := layers.Dense(scope.At("heads").At("text"), encoder(layers.Dense(scope.At("text").At("embed"), in[0], true, 256)), true, 10)
	li := layers.Dense(scope.At("heads").At("image"), encoder(layers.Dense(scope.At("image").At("patch"), in[2], true, 256)), true, 10)
	return Losses{Text: SoftmaxCrossEntropy(lt, in[1], nil), Image: SoftmaxCrossEntropy(li, in[3], nil)}
}

func benchBatch() []*tensors.Tensor {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 64*128)
	y := make([]int32, 64)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for i := range y {
		y[i] = int32(rng.IntN(10))
	}
	xt := tensors.FromFlatDataAndDimensions(x, 64, 128)
	yt := tensors.FromFlatDataAndDimensions(y, 64)
	return []*tensors.Tensor{xt, yt, xt, yt}
}

func benchmarkStep(b *testing.B, masking bool) {
	cfg := Config{Optimizer: DefaultOptimizerConfig(1 << 30), Seed: 1}
	if masking {
		cfg.Mask = MaskConfig{Enabled: true, FinalSparsity: 0.5, Increment: 0.1, StartStep: 1 << 20, EndStep: 1 << 21}
	}
	tr, err := NewTrainer(testBackend(), mlmodel.NewStore(), benchLossFn, cfg)
	if err != nil {
		b.Fatal(err)
	}
	batch := benchBatch()
	if _, err := tr.Step(batch...); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := tr.Step(batch...); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStepSummedGradient(b *testing.B)  { benchmarkStep(b, false) }
func BenchmarkStepGradientMasking(b *testing.B) { benchmarkStep(b, true) }

// BenchmarkMaskUpdate times one host-side mask update of the shared encoder
// (4×256×256 weights), ranked globally.
func BenchmarkMaskUpdate(b *testing.B) {
	cfg := Config{Optimizer: DefaultOptimizerConfig(1 << 30), Seed: 1,
		Mask: MaskConfig{Enabled: true, FinalSparsity: 0.9, Increment: 0.001, StartStep: 0, EndStep: 1 << 20, Ranking: RankGlobal}}
	tr, err := NewTrainer(testBackend(), mlmodel.NewStore(), benchLossFn, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tr.Step(benchBatch()...); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := tr.Mask().update(i%800+1, 1); err != nil {
			b.Fatal(err)
		}
	}
}
