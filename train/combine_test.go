package train

import (
	"math"
	"slices"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// combineVectors runs CombineConfig.combineShared on task gradients given as
// lists of 1-D tensors (the shared encoder's tensors) and returns the
// combined tensors.
func combineVectors(t *testing.T, c CombineConfig, rule CombineRule, gt, gi [][]float32) [][]float32 {
	t.Helper()
	var args []any
	for _, v := range append(append([][]float32{}, gt...), gi...) {
		args = append(args, tensors.FromFlatDataAndDimensions(v, len(v)))
	}
	n := len(gt)
	out := runGraph(t, func(g *Graph, in []*Node) []*Node {
		return c.combineShared(rule, in[:n], in[n:])
	}, args...)
	res := make([][]float32, n)
	for i := range out {
		res[i] = tensors.MustCopyFlatData[float32](out[i])
	}
	return res
}

func flatten(vs [][]float32) []float64 {
	var out []float64
	for _, v := range vs {
		for _, x := range v {
			out = append(out, float64(x))
		}
	}
	return out
}

func assertVector(t *testing.T, name string, got [][]float32, want []float64, tol float64) {
	t.Helper()
	g := flatten(got)
	if len(g) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(g), len(want))
	}
	for i := range g {
		if math.Abs(g[i]-want[i]) > tol {
			t.Fatalf("%s: got %v, want %v", name, g, want)
		}
	}
}

// PCGrad by hand. gt = (1, 0), gi = (−1, 1): gt·gi = −1, ‖gt‖² = 1,
// ‖gi‖² = 2. gt' = gt − (−1/2)·gi = (1/2, 1/2); gi' = gi − (−1/1)·gt =
// (0, 1); g = (1/2, 3/2). The projections are orthogonal to the other
// original gradient: gt'·gi = 0 and gi'·gt = 0.
func TestPCGradConflicting2D(t *testing.T) {
	c := CombineConfig{Rule: CombinePCGrad}
	got := combineVectors(t, c, CombinePCGrad, [][]float32{{1, 0}}, [][]float32{{-1, 1}})
	assertVector(t, "one tensor", got, []float64{0.5, 1.5}, 1e-6)
	// The same vectors split into two tensors: the projection is over the
	// shared encoder as one vector.
	got = combineVectors(t, c, CombinePCGrad, [][]float32{{1}, {0}}, [][]float32{{-1}, {1}})
	assertVector(t, "two tensors", got, []float64{0.5, 1.5}, 1e-6)
}

// Without a conflict (gt·gi ≥ 0 over the whole vector) PCGrad is the sum,
// even when single tensors conflict: ((1), (2)) and ((−1), (1)) have
// gt·gi = −1 + 2 = 1 > 0, so g = (0, 3) (a per-tensor projection would
// change the first tensor).
func TestPCGradWithoutConflictIsSum(t *testing.T) {
	c := CombineConfig{Rule: CombinePCGrad}
	for _, tc := range []struct {
		name   string
		gt, gi [][]float32
		want   []float64
	}{
		{"acute", [][]float32{{1, 2}}, [][]float32{{3, -1}}, []float64{4, 1}},
		{"orthogonal", [][]float32{{1, 0}}, [][]float32{{0, 5}}, []float64{1, 5}},
		{"zero image gradient", [][]float32{{1, 2}}, [][]float32{{0, 0}}, []float64{1, 2}},
		{"conflict in one tensor only", [][]float32{{1}, {2}}, [][]float32{{-1}, {1}}, []float64{0, 3}},
	} {
		got := combineVectors(t, c, CombinePCGrad, tc.gt, tc.gi)
		assertVector(t, tc.name, got, tc.want, 1e-6)
	}
}

// CAGrad follows the paper's convention: the update is built around the
// average gradient g0 = (gt+gi)/2, so with c = 0 it is the mean, half the
// sum rule's gradient.
func TestCAGradZeroCIsMean(t *testing.T) {
	c := CombineConfig{Rule: CombineCAGrad, C: 0}
	for _, tc := range []struct {
		gt, gi [][]float32
		want   []float64
	}{
		{[][]float32{{1, 0}}, [][]float32{{-1, 1}}, []float64{0, 0.5}},
		{[][]float32{{1, 2}, {4}}, [][]float32{{3, -1}, {-2}}, []float64{2, 0.5, 1}},
	} {
		got := combineVectors(t, c, CombineCAGrad, tc.gt, tc.gi)
		assertVector(t, "c=0", got, tc.want, 1e-6)
	}
}

// CAGrad by hand on orthogonal unit gradients gt = (1, 0), gi = (0, 1):
// g0 = (1/2, 1/2), ‖g0‖ = 1/√2; by symmetry w* = 1/2, gw = g0, and
// λ = c‖g0‖/‖gw‖ = c, so g = (1+c)·g0; c = 0.5 gives (0.75, 0.75).
func TestCAGradOrthogonalByHand(t *testing.T) {
	c := CombineConfig{Rule: CombineCAGrad, C: 0.5}
	got := combineVectors(t, c, CombineCAGrad, [][]float32{{1, 0}}, [][]float32{{0, 1}})
	assertVector(t, "orthogonal", got, []float64{0.75, 0.75}, 1e-6)
}

// cagradReference solves CAGrad's dual for two tasks numerically: it
// minimises F(w) = gw·g0 + c‖g0‖‖gw‖ over w ∈ [0, 1] by ternary search (F
// is convex) evaluated from the vectors themselves, then returns
// g0 + c‖g0‖/‖gw*‖·gw*.
func cagradReference(gt, gi []float64, c float64) []float64 {
	n := len(gt)
	g0 := make([]float64, n)
	for i := range gt {
		g0[i] = (gt[i] + gi[i]) / 2
	}
	norm := func(v []float64) float64 {
		var s float64
		for _, x := range v {
			s += x * x
		}
		return math.Sqrt(s)
	}
	gw := func(w float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = w*gt[i] + (1-w)*gi[i]
		}
		return out
	}
	s := c * norm(g0)
	f := func(w float64) float64 {
		v := gw(w)
		var dot float64
		for i := range v {
			dot += v[i] * g0[i]
		}
		return dot + s*norm(v)
	}
	lo, hi := 0.0, 1.0
	for range 200 {
		m1, m2 := lo+(hi-lo)/3, hi-(hi-lo)/3
		if f(m1) <= f(m2) {
			hi = m2
		} else {
			lo = m1
		}
	}
	v := gw((lo + hi) / 2)
	lambda := 0.0
	if nv := norm(v); nv > 0 {
		lambda = s / nv
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = g0[i] + lambda*v[i]
	}
	return out
}

// The closed form of the two-task dual against a numerical solution, on an
// interior optimum, optima at both ends of [0, 1], opposite gradients (the
// kink where gw = 0) and equal gradients.
func TestCAGradClosedFormMatchesDualSolve(t *testing.T) {
	for _, tc := range []struct {
		name   string
		gt, gi []float64
		c      float64
	}{
		{"interior", []float64{1, 0, 2}, []float64{-1, 1, 0.5}, 0.4},
		{"unequal norms", []float64{3, 1}, []float64{-0.2, 0.5}, 0.5},
		{"large c", []float64{1, 0}, []float64{-1, 1}, 0.9},
		{"w at 1", []float64{0.1, 0}, []float64{5, 5}, 0.2},
		{"w at 0", []float64{5, 5}, []float64{0.1, 0}, 0.2},
		{"opposite", []float64{1, 2}, []float64{-1, -2}, 0.5},
		{"opposite, unequal", []float64{1, 2}, []float64{-2, -4}, 0.5},
		{"equal", []float64{1, 2}, []float64{1, 2}, 0.5},
	} {
		want := cagradReference(tc.gt, tc.gi, tc.c)
		f32 := func(v []float64) []float32 {
			out := make([]float32, len(v))
			for i, x := range v {
				out[i] = float32(x)
			}
			return out
		}
		got := combineVectors(t, CombineConfig{Rule: CombineCAGrad, C: tc.c}, CombineCAGrad,
			[][]float32{f32(tc.gt)}, [][]float32{f32(tc.gi)})
		assertVector(t, tc.name, got, want, 1e-4)
	}
}

func TestWeightedIsWeightedSum(t *testing.T) {
	c := CombineConfig{Rule: CombineWeighted, TextWeight: 0.3, ImageWeight: 2}
	got := combineVectors(t, c, CombineWeighted, [][]float32{{1, 2}}, [][]float32{{3, -1}})
	assertVector(t, "weighted", got, []float64{0.3 + 6, 0.6 - 2}, 1e-6)
}

func TestCombineConfigValidate(t *testing.T) {
	mask := MaskConfig{Enabled: true, FinalSparsity: 0.5, Increment: 0.5, EndStep: 10}
	bad := map[string]Config{
		"unknown rule":           {Combine: CombineConfig{Rule: "graddrop"}},
		"mask rule, mask off":    {Combine: CombineConfig{Rule: CombineMask}},
		"pcgrad with mask on":    {Combine: CombineConfig{Rule: CombinePCGrad}, Mask: mask},
		"negative c":             {Combine: CombineConfig{Rule: CombineCAGrad, C: -0.1}},
		"NaN c":                  {Combine: CombineConfig{Rule: CombineCAGrad, C: math.NaN()}},
		"zero weights":           {Combine: CombineConfig{Rule: CombineWeighted}},
		"negative weight":        {Combine: CombineConfig{Rule: CombineWeighted, TextWeight: -1, ImageWeight: 2}},
		"negative diagnostics K": {DiagnosticsEvery: -1},
	}
	for name, c := range bad {
		err := c.ValidateCombine()
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.Contains(err.Error(), "combine") && !strings.Contains(err.Error(), "diagnostics") {
			t.Errorf("%s: error %q does not name the setting", name, err)
		}
	}
	good := []Config{{}, {Mask: mask}, {Combine: CombineConfig{Rule: CombineMask}, Mask: mask},
		{Combine: CombineConfig{Rule: CombineCAGrad}}, {Combine: CombineConfig{Rule: CombineWeighted, TextWeight: 1}}}
	for _, c := range good {
		if err := c.ValidateCombine(); err != nil {
			t.Errorf("%+v: %v", c.Combine, err)
		}
	}
	if _, err := ParseCombineRule("pcgrad"); err != nil {
		t.Error(err)
	}
}

// The rules wired into the step on the toy model (batch 0 has conflicting
// task gradients, which the test checks): the shared encoder's
// gradient is the rule applied to ∇L_txt and ∇L_img computed apart (over the
// four encoder tensors as one vector), every other parameter takes its own
// task's gradient (weighted: scaled by its weight).
func TestCombineRulesInStep(t *testing.T) {
	o := toyOpts{text: true, image: true}
	for _, cc := range []CombineConfig{
		{Rule: CombinePCGrad},
		{Rule: CombineCAGrad, C: 0.5},
		{Rule: CombineWeighted, TextWeight: 0.25, ImageWeight: 3},
		{Rule: CombineSum},
	} {
		cfg := noClipConfig()
		cfg.Combine = cc
		tr := newToyTrainer(t, cfg, o)
		batch := toyBatchAt(0)
		gt, gi := referenceGradients(t, tr.Store(), toyLossFn(o), batch)
		if _, err := tr.Step(batch...); err != nil {
			t.Fatal(err)
		}
		got := capturedGrads(tr)
		// Host reference for the shared part.
		var paths []string
		var vt, vi []float64
		for path := range gt {
			if strings.HasPrefix(path, "/encoder/") {
				paths = append(paths, path)
			}
		}
		slices.Sort(paths)
		for _, p := range paths {
			for i := range gt[p] {
				vt = append(vt, float64(gt[p][i]))
				vi = append(vi, float64(gi[p][i]))
			}
		}
		var d float64
		for i := range vt {
			d += vt[i] * vi[i]
		}
		if d >= 0 {
			t.Fatalf("the toy batch's task gradients do not conflict (gt·gi = %g): PCGrad would not project", d)
		}
		var want []float64
		switch cc.Rule {
		case CombinePCGrad:
			want = pcgradReference(vt, vi)
		case CombineCAGrad:
			want = cagradReference(vt, vi, cc.C)
		default:
			wt, wi := 1.0, 1.0
			if cc.Rule == CombineWeighted {
				wt, wi = cc.TextWeight, cc.ImageWeight
			}
			for i := range vt {
				want = append(want, wt*vt[i]+wi*vi[i])
			}
		}
		k := 0
		for _, p := range paths {
			for i, x := range got[p] {
				if math.Abs(float64(x)-want[k]) > 1e-5 {
					t.Fatalf("%s: %s[%d] = %g, want %g", cc.Rule, p, i, x, want[k])
				}
				k++
			}
		}
		for path, g := range got {
			if strings.HasPrefix(path, "/encoder/") {
				continue
			}
			wt, wi := 1.0, 1.0
			if cc.Rule == CombineWeighted {
				wt, wi = cc.TextWeight, cc.ImageWeight
			}
			for i, x := range g {
				w := wt*float64(gt[path][i]) + wi*float64(gi[path][i])
				if math.Abs(float64(x)-w) > 1e-6 {
					t.Fatalf("%s: own gradient %s[%d] = %g, want %g", cc.Rule, path, i, x, w)
				}
			}
		}
		tr.Close()
	}
}

// pcgradReference is PCGrad's two-task definition on host vectors.
func pcgradReference(gt, gi []float64) []float64 {
	var a, b, d float64
	for i := range gt {
		a += gt[i] * gt[i]
		b += gi[i] * gi[i]
		d += gt[i] * gi[i]
	}
	out := make([]float64, len(gt))
	for i := range gt {
		pt, pi := gt[i], gi[i]
		if d < 0 {
			pt -= d / b * gi[i]
			pi -= d / a * gt[i]
		}
		out[i] = pt + pi
	}
	return out
}

// The data-parallel step with the PCGrad and CAGrad rules and the
// diagnostics on every step gives the losses, gradient norms, encoder
// cosines and weights of the single-device step (the dot products over the
// shared encoder are global reductions under AutoSharding). It needs a
// backend with distributed execution (XLA, benchmarks/gpu-check.sh runs it);
// on the pure-Go backend it is skipped.
func TestDataParallelCombineRules(t *testing.T) {
	backend := dpBackend(t)
	o := toyOpts{text: true, image: true}
	lossFn := toyLossFn(o)
	base := initialisedToyStore(t, lossFn, toyBatchAt(0))
	for _, cc := range []CombineConfig{{Rule: CombinePCGrad}, {Rule: CombineCAGrad, C: 0.4}} {
		t.Run(string(cc.Rule), func(t *testing.T) {
			cfg := noClipConfig()
			cfg.Seed = 0
			cfg.Combine = cc
			cfg.DiagnosticsEvery = 1
			wantRes, wantStore := trainClone(t, backend, base, lossFn, cfg, 1, false, 3)
			for _, n := range meshSizes(backend) {
				gotRes, gotStore := trainClone(t, backend, base, lossFn, cfg, n, true, 3)
				for i := range gotRes {
					g, w := gotRes[i], wantRes[i]
					if relDiff(g.LossText, w.LossText) > 1e-5 || relDiff(g.GradNorm, w.GradNorm) > 1e-5 ||
						g.Conflicts == nil || math.Abs(*g.Conflicts.Encoder.Cosine-*w.Conflicts.Encoder.Cosine) > 1e-5 {
						t.Errorf("%s, mesh of %d, step %d: %+v, single device %+v", cc.Rule, n, i+1, g, w)
					}
				}
				for v := range wantStore.IterVariables() {
					if !v.DType().IsFloat() {
						continue
					}
					if gv := gotStore.GetVariable(v.Path()); gv == nil || !mustValue(t, v).InDelta(mustValue(t, gv), 1e-5) {
						t.Errorf("%s, mesh of %d: %s differs from the single-device run", cc.Rule, n, v.Path())
					}
				}
			}
		})
	}
}
