package train

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like the equations.
	"github.com/gomlx/gomlx/support/exceptions"
)

// Combine rules: how the two task gradients gt = ∇L_txt and gi = ∇L_img
// become the one update of the shared encoder. Gradient masking (mask) is
// the paper's rule (gradmask.go); the others are multi-task baselines run on
// the same step, one configuration field apart. Every rule other than sum
// and weighted uses the two gradients computed separately in the step, as
// masking does; the parameters outside the shared encoder always take their
// own task's gradient (the other task's is zero there).
//
// With a = ‖gt‖², b = ‖gi‖² and d = gt·gi over the whole shared encoder as
// one vector, pcgrad and cagrad both come down to g = αt·gt + αi·gi with
// scalars αt, αi computed in the graph: two passes over the shared
// gradients (the three dot products, then the combination) and no state.
//
//   - sum: g = gt + gi (one backward pass of L_txt + L_img).
//   - mask: g = M⊙gt + (1−M)⊙gi (gradmask.go).
//   - pcgrad (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning"):
//     when d < 0 each task gradient is projected onto the normal plane of
//     the other's, gt' = gt − (d/b)·gi and gi' = gi − (d/a)·gt, and
//     g = gt' + gi'; when d ≥ 0, g = gt + gi. With two tasks the paper's
//     random task order does not matter: each gradient is projected against
//     the other's original.
//   - cagrad (Liu et al. 2021, "Conflict-Averse Gradient Descent for
//     Multi-task Learning", Algorithm 1): with the average gradient
//     g0 = (gt + gi)/2 and gw = w·gt + (1−w)·gi, w* minimises
//     gw·g0 + c‖g0‖·‖gw‖ over w ∈ [0, 1] (the dual of max_d min_i gi·d
//     subject to ‖d − g0‖ ≤ c‖g0‖), and g = g0 + (c‖g0‖/‖gw*‖)·gw*. The
//     paper's convention is the mean, not the sum: with c = 0, g = g0 =
//     (gt + gi)/2, half the sum rule's gradient. Its reference code
//     optionally divides g by 1 + c² ("rescale"); the paper's algorithm, used
//     here, does not. For two tasks the 1-D problem has a closed form
//     (cagradWeight).
//   - weighted: g = λt·∇L_txt + λi·∇L_img on every parameter, the gradient
//     of the weighted loss λt·L_txt + λi·L_img (one backward pass).

// CombineRule names a rule.
type CombineRule string

const (
	CombineSum      CombineRule = "sum"
	CombineMask     CombineRule = "mask"
	CombinePCGrad   CombineRule = "pcgrad"
	CombineCAGrad   CombineRule = "cagrad"
	CombineWeighted CombineRule = "weighted"
)

// CombineRules lists the rules, in the order of the command-line help.
var CombineRules = []CombineRule{CombineSum, CombineMask, CombinePCGrad, CombineCAGrad, CombineWeighted}

// CombineConfig selects the combine rule of the shared encoder's gradients.
type CombineConfig struct {
	// Rule is one of CombineRules; "" means mask when Config.Mask.Enabled,
	// else sum. The mask rule is configured by Config.Mask, which must be
	// enabled exactly when the rule is mask.
	Rule CombineRule `json:"rule,omitempty"`
	// C is CAGrad's c ≥ 0 (the radius of the ball around the average
	// gradient, relative to its norm; the paper uses values in [0, 1)).
	C float64 `json:"cagrad_c,omitempty"`
	// TextWeight and ImageWeight are the loss weights of the weighted rule
	// (≥ 0, not both 0).
	TextWeight  float64 `json:"text_weight,omitempty"`
	ImageWeight float64 `json:"image_weight,omitempty"`
}

// ParseCombineRule checks a rule name.
func ParseCombineRule(s string) (CombineRule, error) {
	for _, r := range CombineRules {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown combine rule %q (want sum, mask, pcgrad, cagrad or weighted)", s)
}

// rule resolves the empty rule.
func (c *Config) combineRule() CombineRule {
	if c.Combine.Rule == "" {
		if c.Mask.Enabled {
			return CombineMask
		}
		return CombineSum
	}
	return c.Combine.Rule
}

// ValidateCombine checks the combine rule (with the mask configuration it
// depends on) and the diagnostics interval.
func (c *Config) ValidateCombine() error {
	cc := c.Combine
	if cc.Rule != "" {
		if _, err := ParseCombineRule(string(cc.Rule)); err != nil {
			return err
		}
	}
	rule := c.combineRule()
	switch {
	case rule == CombineMask && !c.Mask.Enabled:
		return fmt.Errorf("combine rule mask needs the gradient mask configuration enabled")
	case rule != CombineMask && c.Mask.Enabled:
		return fmt.Errorf("combine rule %s cannot be used with gradient masking enabled", rule)
	case rule == CombineCAGrad && !(cc.C >= 0):
		return fmt.Errorf("combine rule cagrad: c must be >= 0, got %g", cc.C)
	case rule == CombineWeighted && !(cc.TextWeight >= 0 && cc.ImageWeight >= 0 && cc.TextWeight+cc.ImageWeight > 0):
		return fmt.Errorf("combine rule weighted: the text and image weights must be >= 0 and not both 0, got %g and %g",
			cc.TextWeight, cc.ImageWeight)
	case c.DiagnosticsEvery < 0:
		return fmt.Errorf("diagnostics must be >= 0 (every K steps), got %d", c.DiagnosticsEvery)
	}
	return nil
}

// separateGradients reports whether the rule needs ∇L_txt and ∇L_img apart.
func (r CombineRule) separateGradients() bool {
	return r == CombineMask || r == CombinePCGrad || r == CombineCAGrad
}

// weightedLoss returns λt·L_txt + λi·L_img (the rule weighted) or
// L_txt + L_img, in the text loss's dtype; either loss may be nil.
func (c *CombineConfig) weightedLoss(rule CombineRule, text, image *Node) *Node {
	wt, wi := 1.0, 1.0
	if rule == CombineWeighted {
		wt, wi = c.TextWeight, c.ImageWeight
	}
	scale := func(l *Node, w float64) *Node {
		if w == 1 {
			return l
		}
		return MulScalar(l, w)
	}
	switch {
	case text != nil && image != nil:
		return Add(scale(text, wt), ConvertDType(scale(image, wi), text.DType()))
	case text != nil:
		return scale(text, wt)
	default:
		return scale(image, wi)
	}
}

// sharedDots returns a = ‖gt‖², b = ‖gi‖² and d = gt·gi over all the tensors
// as one vector, float32 scalars.
func sharedDots(gt, gi []*Node) (a, b, d *Node) {
	g := gt[0].Graph()
	a, b, d = ScalarZero(g, dtypes.Float32), ScalarZero(g, dtypes.Float32), ScalarZero(g, dtypes.Float32)
	for i := range gt {
		t, im := ConvertDType(gt[i], dtypes.Float32), ConvertDType(gi[i], dtypes.Float32)
		a = Add(a, ReduceAllSum(Square(t)))
		b = Add(b, ReduceAllSum(Square(im)))
		d = Add(d, ReduceAllSum(Mul(t, im)))
	}
	return a, b, d
}

// pcgradCoefficients returns αt, αi of g = αt·gt + αi·gi for PCGrad:
// 1 − d/a and 1 − d/b when d < 0, else 1 and 1. d < 0 implies a, b > 0.
func pcgradCoefficients(a, b, d *Node) (at, ai *Node) {
	g := a.Graph()
	one := ScalarOne(g, dtypes.Float32)
	conflict := LessThan(d, ScalarZero(g, dtypes.Float32))
	safe := func(x *Node) *Node { return Where(conflict, x, one) }
	at = Where(conflict, OneMinus(Div(d, safe(a))), one)
	ai = Where(conflict, OneMinus(Div(d, safe(b))), one)
	return at, ai
}

// cagradWeight returns w* ∈ [0, 1] minimising f(w) = gw·g0 + s‖gw‖ with
// gw = w·gt + (1−w)·gi, g0 = (gt+gi)/2 and s = c‖g0‖ ≥ 0, from a = ‖gt‖²,
// b = ‖gi‖², d = gt·gi. It returns w* and ‖gw*‖².
//
// In terms of w, gw·g0 = p·w + const with p = (a−b)/2, and ‖gw‖² =
// A·w² + B·w + C with A = ‖gt−gi‖² = a+b−2d, B = 2(d−b), C = b. With
// u = w + B/(2A) and D = C − B²/(4A) ≥ 0, ‖gw‖² = A·u² + D, and f is convex;
// f'(w) = p + s·A·u/√(A·u²+D), where A·u/√(A·u²+D) runs over (−√A, √A).
// With r = −p/s: if r² < A, f' = 0 at u = sign(r)·√(r²·D/(A·(A−r²))); else
// f is monotone and the minimum is at w = 1 (r > 0) or w = 0. The result is
// clipped to [0, 1], which for a convex f is the constrained minimum. When
// A = 0 (gt = gi) every w gives the same gw; when s = 0 the weight does not
// enter g; both return w = 1/2.
func cagradWeight(a, b, d, s *Node) (w, gwNorm2 *Node) {
	g := a.Graph()
	f32 := func(x float64) *Node { return Scalar(g, dtypes.Float32, x) }
	zero, one, half := f32(0), f32(1), f32(0.5)
	A := Sub(Add(a, b), MulScalar(d, 2))
	B := MulScalar(Sub(d, b), 2)
	p := MulScalar(Sub(a, b), 0.5)
	degenerate := LogicalOr(LessOrEqual(A, zero), LessOrEqual(s, zero))
	safeA := Where(degenerate, one, A)
	safeS := Where(degenerate, one, s)
	r := Div(Neg(p), safeS)
	r2 := Square(r)
	D := Max(Sub(b, Div(Square(B), MulScalar(safeA, 4))), zero)
	interior := LessThan(r2, safeA)
	den := Where(interior, Mul(safeA, Sub(safeA, r2)), one)
	u := Mul(Sign(r), Sqrt(Div(Mul(r2, D), den)))
	wInterior := Sub(u, Div(B, MulScalar(safeA, 2)))
	wEdge := Where(GreaterThan(r, zero), one, zero)
	w = Where(interior, wInterior, wEdge)
	w = Where(degenerate, half, Min(Max(w, zero), one))
	gwNorm2 = Max(Add(Mul(A, Square(w)), Add(Mul(B, w), b)), zero)
	return w, gwNorm2
}

// cagradCoefficients returns αt, αi of CAGrad's g = g0 + λ·gw* with
// λ = c‖g0‖/‖gw*‖: αt = 1/2 + λ·w*, αi = 1/2 + λ·(1−w*).
func cagradCoefficients(a, b, d *Node, c float64) (at, ai *Node) {
	g := a.Graph()
	zero := ScalarZero(g, dtypes.Float32)
	g0Norm := Sqrt(Max(MulScalar(Add(Add(a, b), MulScalar(d, 2)), 0.25), zero))
	s := MulScalar(g0Norm, c)
	w, gw2 := cagradWeight(a, b, d, s)
	gwNorm := Sqrt(gw2)
	positive := GreaterThan(gwNorm, zero)
	lambda := Where(positive, Div(s, Where(positive, gwNorm, ScalarOne(g, dtypes.Float32))), zero)
	at = AddScalar(Mul(lambda, w), 0.5)
	ai = AddScalar(Mul(lambda, OneMinus(w)), 0.5)
	return at, ai
}

// combineShared combines the shared encoder's task gradients gt, gi by the
// rules that take them apart (pcgrad, cagrad; sum for the diagnostics
// step). Mask is handled by GradMask.combineGraph.
func (c *CombineConfig) combineShared(rule CombineRule, gt, gi []*Node) []*Node {
	out := make([]*Node, len(gt))
	var at, ai *Node
	switch rule {
	case CombinePCGrad, CombineCAGrad:
		if len(gt) == 0 {
			exceptions.Panicf("combine rule %s: no shared-encoder parameters (check Config.SharedPrefix)", rule)
		}
		a, b, d := sharedDots(gt, gi)
		if rule == CombinePCGrad {
			at, ai = pcgradCoefficients(a, b, d)
		} else {
			at, ai = cagradCoefficients(a, b, d, c.C)
		}
	}
	for i := range gt {
		switch rule {
		case CombinePCGrad, CombineCAGrad:
			dt := gt[i].DType()
			out[i] = Add(Mul(gt[i], ConvertDType(at, dt)), Mul(gi[i], ConvertDType(ai, dt)))
		case CombineWeighted:
			out[i] = Add(MulScalar(gt[i], c.TextWeight), MulScalar(gi[i], c.ImageWeight))
		default:
			out[i] = Add(gt[i], gi[i])
		}
	}
	return out
}

// combineOwn combines the two gradients of a parameter outside the shared
// encoder, which one task at most reaches: its own task's gradient
// (weighted by the rule weighted).
func (c *CombineConfig) combineOwn(rule CombineRule, gt, gi *Node) *Node {
	if rule != CombineWeighted {
		return addGradients(gt, gi)
	}
	switch {
	case isZeroGradient(gi):
		return MulScalar(gt, c.TextWeight)
	case isZeroGradient(gt):
		return MulScalar(gi, c.ImageWeight)
	}
	return Add(MulScalar(gt, c.TextWeight), MulScalar(gi, c.ImageWeight))
}
