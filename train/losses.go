package train

import (
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
	return weightedMean(perExampleCrossEntropy(logits, labels), weights)
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
	kl := perExampleKL(StopGradient(teacher), student, temperature)
	soft := MulScalar(kl, alpha*temperature*temperature)
	if alpha == 1 {
		return weightedMean(soft, weights)
	}
	if labels == nil {
		exceptions.Panicf("DistillationLoss: labels are required when alpha < 1 (alpha=%g)", alpha)
	}
	hard := MulScalar(perExampleCrossEntropy(student, labels), 1-alpha)
	return weightedMean(Add(hard, soft), weights)
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

// perExampleCrossEntropy returns −log softmax(logits)[label] with the shape of labels.
func perExampleCrossEntropy(logits, labels *Node) *Node {
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
	numClasses := logits.Shape().Dimensions[logits.Rank()-1]
	logProbs := LogSoftmax(logits, -1)
	oneHot := OneHot(labels, numClasses, logits.DType())
	return Neg(ReduceSum(Mul(oneHot, logProbs), -1))
}

// perExampleKL returns KL(softmax(teacher/τ) ‖ softmax(student/τ)) =
// Σ p_t·(log p_t − log p_s) over the last axis. Log-probabilities come from
// LogSoftmax, so a teacher probability that underflows to 0 gives 0, not NaN.
func perExampleKL(teacher, student *Node, temperature float64) *Node {
	logPt := LogSoftmax(MulScalar(teacher, 1/temperature), -1)
	logPs := LogSoftmax(MulScalar(student, 1/temperature), -1)
	return ReduceSum(Mul(Exp(logPt), Sub(logPt, logPs)), -1)
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
