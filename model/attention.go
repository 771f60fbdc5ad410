package model

import (
	"math"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/layers"
	mlmodel "github.com/gomlx/gomlx/ml/model"
)

// decomposeAttention reports whether self-attention is built from matrix
// products and a softmax (goAttention) rather than GoMLX's fused attention
// op: on backends without a fused attention gradient (the pure-Go backend),
// in training and inference graphs alike. (A backend's name does not tell
// the pure-Go backend reliably: it reports "Go Backend", not "go".)
//
// Training needs it for the gradient. Inference needs it for speed: the
// pure-Go backend's fused kernel (compute v0.1.14,
// fusedops/avx512.sdpaFloat32AVX512Dim32 and its AVX2 twin) turns each
// query·key product into a scalar that goes through scalar float32 code,
// which Go's compiler emits with legacy SSE encodings while the upper
// halves of the vector registers are dirty. On Intel CPUs every such
// transition costs an AVX-SSE assist (golang/go#80835): the kernel spent
// 0.4–0.5 µs per query·key pair on an AVX-512 Xeon, and tiny image
// inference took 10× the CPU time of this decomposed graph. See
// docs/gomlx-notes.md.
func decomposeAttention(g *Graph) bool {
	return !g.Backend().Capabilities().Operations[compute.OpTypeFusedScaledDotProductAttentionVJP]
}

// goAttention is multi-head self-attention over x [B, S, D] for graphs on
// backends where decomposeAttention holds. It computes what
// attention.SelfAttention(...).UseTransposedWeights(true).WithFusion(false)
// computes, with the same variables (".../MultiHeadAttention/{query,key,value,output}/dense/..."),
// in a layout that suits the pure-Go backend:
//
//   - the heads are moved in front once, [B, S, H, d] → [B, H, S, d], so both
//     products have leading batch axes and need no further transposition
//     (the [B, S, H, d] einsums transpose Q, K, the scores, the
//     probabilities and V again, forward and backward);
//   - the key mask adds the lowest float32 to masked scores before a fused
//     row softmax, whose masked probabilities are then exactly 0, instead of
//     the masked softmax's eight passes over a [B, S, H, S] broadcast mask;
//   - the 1/√d scale is applied to Q ([B, S, D]) rather than to the scores;
//   - the softmax is built from whole-tensor operations (rowSoftmax), not
//     GoMLX's fused softmax op.
//
// A text whose keys are all masked attends to nothing (output 0), as with
// the masked softmax. keyMask is a bool [B, S] or nil.
func (c *Config) goAttention(scope *mlmodel.Scope, x, keyMask *Node) *Node {
	g := x.Graph()
	scope = scope.At("MultiHeadAttention")
	B, S, D := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2)
	H := c.Heads
	d := c.Hidden / H
	heads := func(name string, y *Node) *Node { // [B, S, D] → [B, H, S, d]
		return TransposeAllAxes(Reshape(dense(scope.At("%s", name), y, H*d), B, S, H, d), 0, 2, 1, 3)
	}
	q := MulScalar(heads("query", x), 1/math.Sqrt(float64(d)))
	k := heads("key", x)
	v := heads("value", x)
	scores := DotGeneral(q, []int{3}, []int{0, 1}, k, []int{3}, []int{0, 1}) // [B, H, S, S]
	if keyMask != nil {
		// Adding the lowest float32 to a masked score gives the lowest float32
		// (|score| is far below its rounding step): its probability is exactly
		// 0, and the addition passes the gradient through unchanged.
		zero := ScalarZero(g, scores.DType())
		bias := Where(keyMask, zero, Scalar(g, scores.DType(), -math.MaxFloat32)) // [B, S]
		scores = Add(scores, Reshape(bias, B, 1, 1, S))
		// Texts without any unmasked key attend to nothing. ([B, N]·[B, 1] is a
		// broadcast the backend vectorises; a [B, 1, 1, 1] condition is not.)
		anyKey := ConvertDType(Reshape(ReduceLogicalOr(keyMask, 1), B, 1), v.DType())
		v = Reshape(Mul(Reshape(v, B, H*S*d), anyKey), B, H, S, d)
	}
	probs := rowSoftmax(scores)
	if c.AttnDropout > 0 {
		probs = layers.Dropout(scope, probs, Scalar(g, dtypes.Float32, c.AttnDropout))
	}
	out := DotGeneral(probs, []int{3}, []int{0, 1}, v, []int{2}, []int{0, 1}) // [B, H, S, d]
	out = Reshape(TransposeAllAxes(out, 0, 2, 1, 3), B, S, H*d)
	return dense(scope.At("output"), out, D)
}

// rowSoftmax is the softmax of x over its last axis, built from whole-tensor
// reductions and element-wise operations (max, subtract, exp, sum, divide),
// computed once and differentiated as such.
//
// GoMLX's Softmax is a fused op on the pure-Go backend whose kernel
// (compute v0.1.14, fusedops.fusedSoftmaxRowFloat32) spends 0.7–2.4 µs per
// row of 16–197 entries on an AVX-512 Xeon, the cost growing little with the
// length: its horizontal max and sum, its tail and its normalisation run
// scalar float32 code between 512-bit operations (the AVX-SSE transitions
// of the fused attention kernel, docs/gomlx-notes.md). Attention rows are
// short (17 to 197 keys), and that kernel took 2.4–5× the CPU time of these
// five passes on rows of 17–65, 1.2–1.4× on rows of 128 and 2.2× on rows
// of 197. In a training graph the fused op is also differentiated through
// its decomposed twin, which the backward pass evaluates again: the fused
// kernel was pure overhead there.
func rowSoftmax(x *Node) *Node {
	m := StopGradient(ReduceAndKeep(x, ReduceMax, -1))
	e := Exp(Sub(x, m))
	return Div(e, ReduceAndKeep(e, ReduceSum, -1))
}
