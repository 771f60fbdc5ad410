package train

import (
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// referenceDistill is the loss written directly from its definition with
// decomposed log-softmaxes and a one-hot cross-entropy, differentiated by
// autodiff: the hand-written gradient of DistillationLoss must match it.
func referenceDistill(student, teacher, labels, weights *Node, alpha, tau float64) *Node {
	C := student.Shape().Dimensions[student.Rank()-1]
	logPs := LogSoftmax(student, -1)
	ce := Neg(ReduceSum(Mul(OneHot(labels, C, student.DType()), logPs), -1))
	logPt := LogSoftmax(MulScalar(StopGradient(teacher), 1/tau), -1)
	logPsT := LogSoftmax(MulScalar(student, 1/tau), -1)
	kl := ReduceSum(Mul(Exp(logPt), Sub(logPt, logPsT)), -1)
	per := Add(MulScalar(ce, 1-alpha), MulScalar(kl, alpha*tau*tau))
	w := weights
	return Div(ReduceAllSum(Mul(per, w)), ReduceAllSum(w))
}

func TestDistillationGradientMatchesAutodiff(t *testing.T) {
	const B, P, C = 2, 3, 7
	rng := rand.New(rand.NewPCG(3, 4))
	zs, zt := make([]float32, B*P*C), make([]float32, B*P*C)
	for i := range zs {
		zs[i], zt[i] = float32(3*rng.NormFloat64()), float32(3*rng.NormFloat64())
	}
	// One label outside [0, C) (weight 0, as the batcher writes it) and one
	// example of weight 0.5.
	labels := []int32{0, 6, 3, 2, -1, 5}
	weights := []float32{1, 1, 0.5, 1, 0, 1}
	args := []any{tensors.FromFlatDataAndDimensions(zs, B, P, C), tensors.FromFlatDataAndDimensions(zt, B, P, C),
		tensors.FromFlatDataAndDimensions(labels, B, P), tensors.FromFlatDataAndDimensions(weights, B, P)}
	for _, tc := range []struct{ alpha, tau float64 }{{0, 1}, {0.5, 2}, {1, 3}, {0.3, 0.5}} {
		out := runGraph(t, func(g *Graph, in []*Node) []*Node {
			got := DistillationLoss(in[0], in[1], in[2], in[3], tc.alpha, tc.tau)
			// The reference cannot take the out-of-range label: give it any
			// class, its weight is 0.
			safe := Where(GreaterOrEqual(in[2], ZerosLike(in[2])), in[2], ZerosLike(in[2]))
			want := referenceDistill(in[0], in[1], safe, in[3], tc.alpha, tc.tau)
			return []*Node{got, want, Gradient(got, in[0])[0], Gradient(want, in[0])[0], Gradient(got, in[1])[0]}
		}, args...)
		assertClose(t, "loss", scalar64(out[0]), scalar64(out[1]), 1e-5)
		g1, g2 := tensors.MustCopyFlatData[float32](out[2]), tensors.MustCopyFlatData[float32](out[3])
		for i := range g1 {
			assertClose(t, "gradient", float64(g1[i]), float64(g2[i]), 1e-5)
		}
		for i, x := range tensors.MustCopyFlatData[float32](out[4]) {
			if x != 0 {
				t.Fatalf("alpha=%g: teacher gradient[%d] = %g, want 0", tc.alpha, i, x)
			}
		}
	}
}

// The gradient is scaled by whatever multiplies the loss downstream.
func TestDistillationGradientChainRule(t *testing.T) {
	out := runGraph(t, func(g *Graph, in []*Node) []*Node {
		l1 := DistillationLoss(in[0], in[1], in[2], nil, 0.5, 2)
		l2 := MulScalar(Square(DistillationLoss(in[0], in[1], in[2], nil, 0.5, 2)), 3) // d/dz = 6·l·dl/dz
		return []*Node{l1, Gradient(l1, in[0])[0], Gradient(l2, in[0])[0]}
	}, [][]float32{{1, 2, 0.5}, {0, -1, 3}}, [][]float32{{2, 0, 1}, {5, 5, 5}}, []int32{1, 2})
	l := scalar64(out[0])
	g1, g2 := tensors.MustCopyFlatData[float32](out[1]), tensors.MustCopyFlatData[float32](out[2])
	for i := range g1 {
		assertClose(t, "chain rule", float64(g2[i]), 6*l*float64(g1[i]), 1e-5)
	}
}

// BenchmarkDistillationMLM is the MLM distillation loss of the tiny preset
// (16 texts × 10 positions over a 30522-word vocabulary), forward and backward.
func BenchmarkDistillationMLM(b *testing.B) {
	R, V := 160, 30522
	rng := rand.New(rand.NewPCG(1, 2))
	zs, zt := make([]float32, R*V), make([]float32, R*V)
	for i := range zs {
		zs[i], zt[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
	}
	y, w := make([]int32, R), make([]float32, R)
	for i := range y {
		y[i], w[i] = int32(rng.IntN(V)), 1
	}
	e := MustNewExec(testBackend(), func(s, t, y, w *Node) []*Node {
		l := DistillationLoss(s, t, y, w, 0.5, 2)
		return []*Node{l, Gradient(l, s)[0]}
	})
	args := []any{tensors.FromFlatDataAndDimensions(zs, R, V), tensors.FromFlatDataAndDimensions(zt, R, V),
		tensors.FromFlatDataAndDimensions(y, R), tensors.FromFlatDataAndDimensions(w, R)}
	e.MustExec(args...)
	b.ResetTimer()
	for range b.N {
		e.MustExec(args...)
	}
}
