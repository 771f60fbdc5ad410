package model

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
)

func TestParsePrecision(t *testing.T) {
	for in, want := range map[string]Precision{"": PrecisionF32, "f32": PrecisionF32, "float32": PrecisionF32, "bf16": PrecisionBF16, "bfloat16": PrecisionBF16} {
		got, err := ParsePrecision(in)
		if err != nil || got != want {
			t.Errorf("ParsePrecision(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParsePrecision("fp8"); err == nil {
		t.Error("ParsePrecision(fp8) gave no error")
	}
}

// precisionRun builds, under precision p, a graph over a masked text batch
// and an image batch that returns the MLM and image logits and the gradients
// of a fixed random projection of both with respect to every trainable
// variable. It also counts the graph's matrix products by operand dtype.
func precisionRun(t *testing.T, backend compute.Backend, c *Config, store *mlmodel.Store, p Precision, training bool) (outs map[string][]float32, dots map[dtypes.DType]int) {
	t.Helper()
	SetPrecision(store, p)
	var params []*mlmodel.Variable
	for v := range store.IterVariables() {
		if v.Trainable && v.DType() == dtypes.Float32 {
			params = append(params, v)
		}
	}
	dots = map[dtypes.DType]int{}
	e := mlmodel.MustNewExec(backend, store, func(scope *mlmodel.Scope, in []*Node) []*Node {
		ids, seg, mask, pos, pixels, wt, wi := in[0], in[1], in[2], in[3], in[4], in[5], in[6]
		g := ids.Graph()
		scope.SetTraining(g, training)
		h := c.EncodeText(scope, ids, seg, mask)
		mh, _ := c.Head("mlm")
		ml := c.HeadLogits(scope, mh, GatherPositions(h, pos))
		ih, _ := c.Head("image_cls")
		il := c.HeadLogits(scope, ih, CLS(c.EncodeImage(scope, pixels)))
		loss := Add(ReduceAllSum(Mul(ml, wt)), ReduceAllSum(Mul(il, wi)))
		nodes := make([]*Node, len(params))
		for i, v := range params {
			nodes[i] = v.NodeValue(g)
		}
		out := append([]*Node{ml, il}, Gradient(loss, nodes...)...)
		for _, n := range g.Nodes() {
			if n.Type() == NodeTypeDotGeneral {
				dots[n.Inputs()[0].DType()]++
			}
		}
		return out
	})
	rng := rand.New(rand.NewPCG(3, 4))
	const B, L = 3, 12
	ids, seg, mask := make([][]int32, B), make([][]int32, B), make([][]int32, B)
	for b := range B {
		ids[b], seg[b], mask[b] = make([]int32, L), make([]int32, L), make([]int32, L)
		n := L - b // some padding
		for i := range n {
			ids[b][i] = int32(rng.IntN(c.VocabSize))
			mask[b][i] = 1
			if i >= n/2 {
				seg[b][i] = 1
			}
		}
	}
	pos := [][]int32{{1, 2}, {3, 4}, {0, 5}}
	pix := make([]float32, B*3*8*8)
	for i := range pix {
		pix[i] = float32(rng.NormFloat64())
	}
	wt := make([]float32, B*2*c.VocabSize)
	for i := range wt {
		wt[i] = float32(rng.NormFloat64())
	}
	wi := make([]float32, B*10)
	for i := range wi {
		wi[i] = float32(rng.NormFloat64())
	}
	res, err := e.Exec(ids, seg, mask, pos,
		tensors.FromFlatDataAndDimensions(pix, B, 3, 8, 8),
		tensors.FromFlatDataAndDimensions(wt, B, 2, c.VocabSize),
		tensors.FromFlatDataAndDimensions(wi, B, 10))
	if err != nil {
		t.Fatalf("precision %s: %v", p, err)
	}
	outs = map[string][]float32{}
	names := []string{"mlm_logits", "image_logits"}
	for _, v := range params {
		names = append(names, v.Path())
	}
	for i, r := range res {
		if r.DType() != dtypes.Float32 {
			t.Fatalf("precision %s: output %s is %s, want float32", p, names[i], r.DType())
		}
		outs[names[i]] = tensors.MustCopyFlatData[float32](r)
	}
	return outs, dots
}

// TestBF16MatchesF32 checks the mixed-precision graph against the float32
// one on the same weights: same variables (all float32, none created),
// every matrix product in bfloat16, logits within bfloat16 rounding of the
// float32 ones, and every gradient pointing the same way.
func TestBF16MatchesF32(t *testing.T) {
	for _, nrm := range []string{PreNorm, PostNorm} {
		c := normTestConfig(nrm)
		c.TaskHeads[0].Tied = nrm == PostNorm
		c.Dropout = 0
		backend, store := validStore(t, &c)
		nVars := store.NumVariables()
		ref, refDots := precisionRun(t, backend, &c, store, PrecisionF32, false)
		low, lowDots := precisionRun(t, backend, &c, store, PrecisionBF16, true)
		if store.NumVariables() != nVars {
			t.Errorf("%s: the bf16 graph created %d variables", nrm, store.NumVariables()-nVars)
		}
		for v := range store.IterVariables() {
			if v.Trainable && v.DType() != dtypes.Float32 {
				t.Errorf("%s: variable %s is %s, want float32 master weights", nrm, v.Path(), v.DType())
			}
		}
		if refDots[dtypes.BFloat16] != 0 {
			t.Errorf("%s: f32 graph has %d bfloat16 products", nrm, refDots[dtypes.BFloat16])
		}
		if lowDots[dtypes.Float32] != 0 || lowDots[dtypes.BFloat16] == 0 {
			t.Errorf("%s: bf16 graph products by operand dtype: %v, want all bfloat16", nrm, lowDots)
		}
		if len(ref) != len(low) || len(ref) < 20 {
			t.Fatalf("%s: %d outputs in f32, %d in bf16", nrm, len(ref), len(low))
		}
		for name, r := range ref {
			l := low[name]
			var dot, nr, nl, maxAbs, maxDiff float64
			for i := range r {
				a, b := float64(r[i]), float64(l[i])
				dot += a * b
				nr += a * a
				nl += b * b
				maxAbs = max(maxAbs, math.Abs(a))
				maxDiff = max(maxDiff, math.Abs(a-b))
			}
			if nr == 0 {
				if nl != 0 {
					t.Errorf("%s %s: zero in f32, norm %g in bf16", nrm, name, math.Sqrt(nl))
				}
				continue
			}
			cos := dot / math.Sqrt(nr*nl)
			t.Logf("%s %s: |x| %.3g (f32) %.3g (bf16), cosine %.5f, max |Δ| %.3g", nrm, name, math.Sqrt(nr), math.Sqrt(nl), cos, maxDiff)
			switch {
			case name == "mlm_logits" || name == "image_logits":
				// Relative to the largest logit: a few bfloat16 roundings (8 bits).
				if maxDiff > 0.03*maxAbs || maxDiff == 0 {
					t.Errorf("%s %s: max |Δ| %g for max |x| %g (want 0 < Δ ≤ 3%%)", nrm, name, maxDiff, maxAbs)
				}
			case strings.HasSuffix(name, "/key/dense/biases"):
				// Softmax ignores a shift shared by all keys: this gradient
				// is zero but for rounding, in either precision.
				if math.Sqrt(nl) > 1e-6 || math.Sqrt(nr) > 1e-8 {
					t.Errorf("%s gradient %s: norms %g (f32), %g (bf16), want ~0", nrm, name, math.Sqrt(nr), math.Sqrt(nl))
				}
			case cos < 0.999:
				t.Errorf("%s gradient %s: cosine %.4f between f32 and bf16 (want ≥ 0.999)", nrm, name, cos)
			}
		}
	}
}
