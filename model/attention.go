package model

import (
	"math"
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
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
	if keyMask != nil {
		// The key mask rides in the product: Q gains a column of ones and K a
		// column holding 0 for a kept key and the lowest float32 for a masked
		// one, so each score is q·k plus its key's bias. The lowest float32
		// plus a score is the lowest float32 (|q·k| is far below its rounding
		// step), whose probability is exactly 0, as is its gradient. Adding a
		// [B, 1, 1, S] bias to the [B, H, S, S] scores instead is a broadcast
		// the pure-Go backend runs element by element through a general index
		// walk (compute v0.1.14: 0.81 ms for tiny's scores on an AVX-512
		// Xeon, against 0.06 ms for the two extra columns).
		zero := ScalarZero(g, q.DType())
		bias := Where(keyMask, zero, Scalar(g, q.DType(), -math.MaxFloat32)) // [B, S]
		q = Concatenate([]*Node{q, Ones(g, shapes.Make(q.DType(), B, H, S, 1))}, 3)
		k = Concatenate([]*Node{k, BroadcastToDims(Reshape(bias, B, 1, S, 1), B, H, S, 1)}, 3)
		// Texts without any unmasked key attend to nothing. ([B, N]·[B, 1] is a
		// broadcast the backend vectorises; a [B, 1, 1, 1] condition is not.)
		anyKey := ConvertDType(Reshape(ReduceLogicalOr(keyMask, 1), B, 1), v.DType())
		v = Reshape(Mul(Reshape(v, B, H*S*d), anyKey), B, H, S, d)
	}
	scores := DotGeneral(q, []int{3}, []int{0, 1}, k, []int{3}, []int{0, 1}) // [B, H, S, S]
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
	m := StopGradient(rowMax(x))
	e := Exp(Sub(x, m))
	return Div(e, ReduceAndKeep(e, ReduceSum, -1))
}

// rowMax is the maximum of x over its last axis, kept as an axis of 1.
//
// A row of S = a·b entries with 2 ≤ b ≤ 8 is reduced as [a, b]: first the a
// groups against each other, then the b survivors. On the pure-Go backend
// (compute v0.1.14) a trailing max over rows of 12 or more runs a 512-bit
// loop, then a scalar tail per row that Go emits with legacy SSE encodings
// while the vector registers' upper halves are dirty: on an AVX-512 Xeon
// every row pays an AVX-SSE transition (docs/gomlx-notes.md). For tiny's
// [16, 4, 64, 64] scores that was 1.03 ms, against 0.33 ms for the two
// scalar reductions of 8. Rows that do not factor so (17, 197) keep the
// one reduction.
func rowMax(x *Node) *Node {
	dims := x.Shape().Dimensions
	S := dims[len(dims)-1]
	for b := 8; b >= 2; b-- {
		if S%b != 0 || S/b < 2 {
			continue
		}
		split := append(slices.Clone(dims[:len(dims)-1]), S/b, b)
		m := ReduceMax(ReduceMax(Reshape(x, split...), -2), -1)
		return InsertAxes(m, -1)
	}
	return ReduceAndKeep(x, ReduceMax, -1)
}
