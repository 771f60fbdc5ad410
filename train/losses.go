package train

import (
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like the equations.
	"github.com/gomlx/gomlx/support/exceptions"
)

// SoftmaxCrossEntropy returns the weighted mean over examples of
// −log softmax(logits)[label].
//
// logits has shape [..., C]; labels is an integer tensor with the leading
// shape [...]; weights is a float tensor of shape [...] or nil (all ones).
// The weighted mean is Σ wᵢ·CEᵢ / Σ wᵢ, and 0 when all weights are 0 (a batch
// with no masked token, say). A label outside [0, C) contributes 0: give it
// weight 0.
func SoftmaxCrossEntropy(logits, labels, weights *Node) *Node {
	checkLabels(logits, labels)
	return weightedMean(perExampleSoftmaxLoss(logits, nil, labels, 0, 1), weights)
}

// DistillationLoss is the knowledge-distillation loss of the paper:
//
//	L = (1−α)·CE(softmax(z_s), y) + α·τ²·KL(softmax(z_t/τ) ‖ softmax(z_s/τ))
//
// per example, then the weighted mean (see SoftmaxCrossEntropy). student and
// teacher are logits [..., C] (for MLM: at the masked positions only); the
// teacher gets no gradient. labels may be nil when α = 1. The τ² factor keeps
// the gradient scale of the soft term independent of τ (Hinton et al.).
// With α = 0 the KL term is not built and the result is exactly the plain
// cross-entropy; with α = 1 the cross-entropy is not built.
func DistillationLoss(student, teacher, labels, weights *Node, alpha, temperature float64) *Node {
	if alpha < 0 || alpha > 1 {
		exceptions.Panicf("DistillationLoss: alpha must be in [0, 1], got %g", alpha)
	}
	if temperature <= 0 {
		exceptions.Panicf("DistillationLoss: temperature must be > 0, got %g", temperature)
	}
	if alpha == 0 {
		return SoftmaxCrossEntropy(student, labels, weights)
	}
	if !teacher.Shape().Equal(student.Shape()) {
		exceptions.Panicf("DistillationLoss: teacher logits %s and student logits %s differ in shape",
			teacher.Shape(), student.Shape())
	}
	if alpha < 1 {
		if labels == nil {
			exceptions.Panicf("DistillationLoss: labels are required when alpha < 1 (alpha=%g)", alpha)
		}
		checkLabels(student, labels)
	} else {
		labels = nil
	}
	return weightedMean(perExampleSoftmaxLoss(student, teacher, labels, alpha, temperature), weights)
}

// MeanSquaredError returns the weighted mean over the first axis of the
// squared error summed over the remaining axes. predictions and targets have
// the same shape ([B] or [B, k]); weights is [B] or nil.
func MeanSquaredError(predictions, targets, weights *Node) *Node {
	if !predictions.Shape().Equal(targets.Shape()) {
		exceptions.Panicf("MeanSquaredError: predictions %s and targets %s differ in shape",
			predictions.Shape(), targets.Shape())
	}
	if predictions.Rank() == 0 {
		exceptions.Panicf("MeanSquaredError: predictions must have a batch axis, got a scalar")
	}
	se := Square(Sub(predictions, StopGradient(targets)))
	if se.Rank() > 1 {
		axes := make([]int, se.Rank()-1)
		for i := range axes {
			axes[i] = i + 1
		}
		se = ReduceSum(se, axes...)
	}
	return weightedMean(se, weights)
}

// checkLabels validates the shapes and dtypes of logits [..., C] and labels [...].
func checkLabels(logits, labels *Node) {
	if labels == nil {
		exceptions.Panicf("cross-entropy: labels are nil")
	}
	if !logits.DType().IsFloat() {
		exceptions.Panicf("cross-entropy: logits must be float, got %s", logits.Shape())
	}
	if !labels.DType().IsInt() {
		exceptions.Panicf("cross-entropy: labels must be integer, got %s", labels.Shape())
	}
	if labels.Rank() != logits.Rank()-1 {
		exceptions.Panicf("cross-entropy: labels %s must have the shape of logits %s without the last axis",
			labels.Shape(), logits.Shape())
	}
	for i := range labels.Rank() {
		if labels.Shape().Dimensions[i] != logits.Shape().Dimensions[i] {
			exceptions.Panicf("cross-entropy: labels %s do not match logits %s", labels.Shape(), logits.Shape())
		}
	}
}

// perExampleSoftmaxLoss returns, with the shape of logits without the last
// axis, (1−α)·CE(z, y) + α·τ²·KL(softmax(t/τ) ‖ softmax(z/τ)) for student
// logits z [..., C] and teacher logits t (nil when α = 0; labels nil when
// α = 1). CE is −log softmax(z)[y], and 0 for a label outside [0, C).
//
// The logits of an MLM head span the whole vocabulary, so this is written to
// touch the [rows, C] tensors as few times as possible:
//
//   - the values use the fused row-wise Softmax and the identity
//     logsumexp(x) = max(x) − log(max(softmax(x))) (the largest probability is
//     at least 1/C, so its logarithm is safe);
//   - CE = logsumexp(z) − z_y and KL = Σ p_t·(t/τ − z/τ) − logsumexp(t/τ) + logsumexp(z/τ);
//   - the gradient with respect to z is set by hand,
//     (1−α)·(softmax(z) − onehot(y)) + α·τ·(softmax(z/τ) − p_t),
//     reusing the forward's probabilities, instead of differentiating the
//     decomposed log-softmaxes. The teacher gets no gradient.
func perExampleSoftmaxLoss(student, teacher, labels *Node, alpha, tau float64) *Node {
	g := student.Graph()
	dtype := student.DType()
	dims := student.Shape().Dimensions
	C := dims[len(dims)-1]
	R := student.Shape().Size() / C
	outDims := dims[:len(dims)-1]

	z := Reshape(StopGradient(student), R, C)
	lse := func(x, probs *Node) *Node { // [R]
		return Sub(ReduceMax(x, -1), Log(ReduceMax(probs, -1)))
	}
	loss := Zeros(g, shapes.Make(dtype, R))
	var pz, validF, flatIdx *Node
	if alpha < 1 {
		// Indices into the flattened [R·C] logits: int32 unless that overflows.
		idxType := dtypes.Int32
		if int64(R)*int64(C) > math.MaxInt32 {
			idxType = dtypes.Int64
		}
		y := ConvertDType(Reshape(labels, R), idxType)
		valid := LogicalAnd(GreaterOrEqual(y, ScalarZero(g, idxType)), LessThan(y, Scalar(g, idxType, C)))
		validF = ConvertDType(valid, dtype)
		yc := Where(valid, y, ZerosLike(y))
		flatIdx = Add(Mul(Iota(g, shapes.Make(idxType, R), 0), Scalar(g, idxType, C)), yc)
		zy := Reshape(Gather(Reshape(z, R*C, 1), InsertAxes(flatIdx, -1)), R)
		pz = Softmax(z, -1)
		ce := Mul(Sub(lse(z, pz), zy), validF)
		loss = Add(loss, MulScalar(ce, 1-alpha))
	}
	var pt, ps *Node
	if alpha > 0 {
		a := MulScalar(Reshape(StopGradient(teacher), R, C), 1/tau)
		b := MulScalar(z, 1/tau)
		pt = Softmax(a, -1)
		ps = Softmax(b, -1)
		cross := ReduceSum(Mul(pt, Sub(a, b)), -1)
		kl := Add(Sub(cross, lse(a, pt)), lse(b, ps))
		loss = Add(loss, MulScalar(kl, alpha*tau*tau))
	}
	// The gradient enters through the first logit of each row: zc is the
	// student with the hand-written gradient, and anchor − StopGradient(anchor)
	// adds exactly 0 to the value.
	zc := IdentityWithCustomGradient(Reshape(student, R, C), func(_, v *Node) *Node {
		u := Slice(v, AxisRange(), AxisRange(0, 1)) // [R, 1]: d(total)/d(loss_r)
		var grad *Node
		if alpha < 1 {
			scale := MulScalar(InsertAxes(validF, -1), 1-alpha) // [R, 1]
			grad = Mul(pz, scale)
			grad = Reshape(ScatterSum(Reshape(grad, R*C), InsertAxes(flatIdx, -1),
				Neg(Reshape(scale, R)), false, true), R, C)
		}
		if alpha > 0 {
			soft := MulScalar(Sub(ps, pt), alpha*tau)
			if grad == nil {
				grad = soft
			} else {
				grad = Add(grad, soft)
			}
		}
		return Mul(grad, u)
	})
	anchor := Reshape(Slice(zc, AxisRange(), AxisRange(0, 1)), R)
	loss = Add(loss, Sub(anchor, StopGradient(anchor)))
	return Reshape(loss, outDims...)
}

// weightedMean returns Σ w·x / Σ w (0 when Σ w = 0), or the plain mean when
// weights is nil.
func weightedMean(x, weights *Node) *Node {
	if weights == nil {
		return ReduceAllMean(x)
	}
	if !weights.Shape().EqualDimensions(x.Shape()) {
		exceptions.Panicf("loss weights %s do not match the per-example losses %s", weights.Shape(), x.Shape())
	}
	w := ConvertDType(StopGradient(weights), x.DType())
	sumW := ReduceAllSum(w)
	g := x.Graph()
	zero := ScalarZero(g, x.DType())
	// A safe denominator keeps the gradient finite when every weight is 0:
	// the numerator is then 0 as well.
	safe := Where(GreaterThan(sumW, zero), sumW, ScalarOne(g, x.DType()))
	return Div(ReduceAllSum(Mul(w, x)), safe)
}
