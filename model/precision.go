package model

import (
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/layers"
	mlmodel "github.com/gomlx/gomlx/ml/model"
)

// Precision names the dtype of the model's matrix products.
//
//   - "f32" (default): everything in float32. On Hopper GPUs XLA runs float32
//     products on TF32 tensor cores.
//   - "bf16": mixed precision. Variables (master weights), optimiser state,
//     embeddings, LayerNorm, softmax, losses and gradients of the variables
//     stay float32; the operands of every matrix product (dense layers,
//     attention scores and values, the tied MLM output) are rounded to
//     bfloat16 and their results converted back to float32, forward and
//     backward (the transposed products of the gradient run in bfloat16 too).
//     Like PyTorch's autocast, without loss scaling (bfloat16 has float32's
//     exponent range).
type Precision string

// The precisions.
const (
	PrecisionF32  Precision = "f32"
	PrecisionBF16 Precision = "bf16"
)

// precisionParam is the store parameter that holds the precision.
const precisionParam = "vitbert_precision"

// ParsePrecision accepts "f32" (or "float32", or "") and "bf16" (or
// "bfloat16").
func ParsePrecision(s string) (Precision, error) {
	switch s {
	case "", "f32", "float32", "fp32":
		return PrecisionF32, nil
	case "bf16", "bfloat16":
		return PrecisionBF16, nil
	}
	return "", fmt.Errorf("unknown precision %q (want f32 or bf16)", s)
}

// SetPrecision makes every graph built on store's variables use precision p
// for its matrix products. Variables keep their dtype (float32).
func SetPrecision(store *mlmodel.Store, p Precision) {
	store.SetParam("/"+precisionParam, string(p))
}

func precisionOf(scope *mlmodel.Scope) Precision {
	v, ok := scope.GetParam(precisionParam)
	if !ok {
		return PrecisionF32
	}
	s, _ := v.(string)
	p, err := ParsePrecision(s)
	if err != nil {
		return PrecisionF32
	}
	return p
}

// lowDType is the dtype of the operands of matrix products under scope, and
// whether it differs from float32.
func lowDType(scope *mlmodel.Scope) (dtypes.DType, bool) {
	if precisionOf(scope) == PrecisionBF16 {
		return dtypes.BFloat16, true
	}
	return dtypes.Float32, false
}

// lowDot is DotGeneral with both operands rounded to dt and the result
// converted back to float32. No accumulator dtype is set on purpose: GoMLX's
// gradient of a product runs in the accumulator's dtype, and the transposed
// products of the backward pass should run in dt too. (XLA's GPU products of
// bfloat16 operands accumulate in float32 inside the library.)
func lowDot(dt dtypes.DType, lhs *Node, lhsContracting, lhsBatch []int, rhs *Node, rhsContracting, rhsBatch []int) *Node {
	y := Dot(ConvertDType(lhs, dt), ConvertDType(rhs, dt)).
		WithAccumulatorDType(dtypes.InvalidDType).
		General(lhsContracting, lhsBatch, rhsContracting, rhsBatch)
	return ConvertDType(y, dtypes.Float32)
}

// denseDot is dense (same variables: "dense/weights" [out, in] and
// "dense/biases" [out], float32) as a product in dt and a broadcast bias.
// The tokens are flattened to one axis first, so that the weight gradient's
// product (contracting over the tokens) transposes 2-D operands, which the
// pure-Go backend does with its parallel tiled kernel; a [B, S, ·] operand
// would take its general index walk.
func denseDot(scope *mlmodel.Scope, x *Node, out int, dt dtypes.DType) *Node {
	g := x.Graph()
	s := scope.In("dense")
	in := x.Shape().Dim(-1)
	wv := s.VariableWithShape("weights", shapes.Make(dtypes.Float32, out, in))
	w := wv.NodeValue(g)
	b := s.VariableWithShape("biases", shapes.Make(dtypes.Float32, out)).NodeValue(g)
	lead := x.Shape().Dimensions[:x.Rank()-1]
	x2 := Reshape(x, -1, in)
	var y *Node
	// productTransposingDY holds a copy of the weights until the backward
	// pass (see there): worth it for a trained layer with at least twice as
	// many tokens as its widths (tiny's and small's), not for base's 768- to
	// 3072-wide layers over 1024–1576 tokens, whose copies would push its
	// step past its 7 GiB heap limit.
	if dt == dtypes.Float32 && OnGoBackend(g.Backend()) && wv.Trainable && x2.Shape().Dim(0) >= 2*max(in, out) {
		y = productTransposingDY(x2, w)
	} else {
		y = lowDot(dt, x2, []int{1}, nil, w, []int{1}, nil)
	}
	y = Reshape(y, append(slices.Clone(lead), out)...)
	return Add(y, ExpandLeftToRank(b, y.Rank()))
}

// OnGoBackend reports whether b is the pure-Go backend (compute's gobackend,
// whose Name is not its configuration name "go").
func OnGoBackend(b compute.Backend) bool { return b.Name() == "Go Backend" }

// MaxGoExecutors is the pure-Go backend's own default number of graph
// executors, the goroutines that run a graph's independent nodes
// concurrently: cmd/vitbert gives it one per core up to this many, and an
// inference graph splits its batch into at most this many parts
// (inferenceParts).
const MaxGoExecutors = 8

// productTransposingDY is x·wᵀ (x [T, in], w [out, in]) with its own
// gradient with respect to w. GoMLX's gradient contracts dy [T, out] and
// x [T, in] over their leading axis, a layout the pure-Go backend's matrix
// kernels (compute v0.1.14) take only after transposing both operands, to
// [out, T] and [in, T]. Their kernels read [M, K]·[K, N] as it is, so one
// transpose suffices: dyᵀ·x (T·out elements moved), or (xᵀ·dy)ᵀ (T·in +
// in·out moved), whichever moves fewer: the second only for a layer that
// widens (out > in) over more than in·out/(out−in) tokens, such as the MLP's
// first layer (D → 4D) over tiny's and small's 1024–4096 tokens. The
// gradient with respect to x (dy·w) needs no transpose either way.
//
// GoMLX has no custom gradient for a two-input op, so the product's output
// passes through an identity whose gradient records dy, and w through one
// whose gradient ignores what the product's own gradient gives it (left
// unused, so never executed) and returns the product above. Reverse
// differentiation reaches the output's identity before w's, in every
// Gradient call (it walks the nodes from the last created). The pure-Go
// backend executes w's identity as a copy (w is a variable it does not own),
// which lives until the backward pass.
func productTransposingDY(x, w *Node) *Node {
	T, in, out := x.Shape().Dim(0), x.Shape().Dim(1), w.Shape().Dim(0)
	var dy *Node
	wg := IdentityWithCustomGradient(w, func(_, _ *Node) *Node {
		if T*out <= T*in+in*out {
			return Dot(TransposeAllAxes(dy, 1, 0), x).General([]int{1}, nil, []int{0}, nil)
		}
		return TransposeAllAxes(Dot(TransposeAllAxes(x, 1, 0), dy).General([]int{1}, nil, []int{0}, nil), 1, 0)
	})
	y := Dot(x, wg).General([]int{1}, nil, []int{1}, nil)
	return IdentityWithCustomGradient(y, func(_, v *Node) *Node {
		dy = v
		return v
	})
}

// attentionLow is the self-attention of a block (the variables GoMLX's
// MultiHeadAttention layer creates with transposed weights: query, key,
// value and output dense layers) with its four projections and two batched
// products in dt; the softmax runs in float32.
func (c *Config) attentionLow(scope *mlmodel.Scope, h, mask *Node, dt dtypes.DType) *Node {
	s := scope.At("attention").At("MultiHeadAttention")
	B, S, D := h.Shape().Dim(0), h.Shape().Dim(1), h.Shape().Dim(2)
	H := c.Heads
	dh := D / H
	heads := func(x *Node) *Node { return Reshape(x, B, S, H, dh) }
	q := heads(denseDot(s.At("query"), h, D, dt))
	k := heads(denseDot(s.At("key"), h, D, dt))
	v := heads(denseDot(s.At("value"), h, D, dt))
	q = MulScalar(q, 1/math.Sqrt(float64(dh)))
	// scores[b, h, q, k] = Σ_d q[b, q, h, d] k[b, k, h, d]
	scores := lowDot(dt, q, []int{3}, []int{0, 2}, k, []int{3}, []int{0, 2}) // [B, H, S, S]
	var probs *Node
	if mask != nil {
		m := BroadcastToDims(Reshape(mask, B, 1, 1, S), B, H, S, S)
		probs = MaskedSoftmax(scores, m, -1)
	} else {
		probs = Softmax(scores, -1)
	}
	if c.AttnDropout > 0 && scope.IsTraining(h.Graph()) {
		probs = layers.DropoutStatic(scope, probs, c.AttnDropout)
	}
	// ctx[b, h, q, d] = Σ_k probs[b, h, q, k] v[b, k, h, d]
	ctx := lowDot(dt, probs, []int{3}, []int{0, 1}, v, []int{1}, []int{0, 2}) // [B, H, S, dh]
	ctx = Reshape(TransposeAllDims(ctx, 0, 2, 1, 3), B, S, D)
	return denseDot(s.At("output"), ctx, D, dt)
}
