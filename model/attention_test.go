package model

import (
	"math"
	"slices"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers/attention"
	mlmodel "github.com/gomlx/gomlx/ml/model"
)

// goAttention must compute the values and gradients (inputs and all
// eight variables) of GoMLX's decomposed self-attention with the same
// variables, padding masked, including a text whose keys are all masked.
func TestGoAttentionMatchesSelfAttention(t *testing.T) {
	c := testConfig() // D=16, 2 heads
	backend := compute.MustNew()
	store := mlmodel.NewStore()
	const B, S = 3, 5
	D := c.Hidden
	x := make([]float32, B*S*D)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*0.37)) * 1.5
	}
	mask := []bool{
		true, true, true, false, false,
		true, true, true, true, true,
		false, false, false, false, false,
	}
	w := make([]float32, B*S*D) // weights of the scalar loss Σ w·out
	for i := range w {
		w[i] = float32(math.Cos(float64(i) * 0.11))
	}
	var names []string
	run := func(ours bool) [][]float32 {
		e := mlmodel.MustNewExec(backend, store, func(scope *mlmodel.Scope, xs, m, ws *Node) []*Node {
			g := xs.Graph()
			scope = scope.WithInitializer(func(g *Graph, shape shapes.Shape) *Node {
				// Deterministic non-zero weights and biases.
				v := Iota(g, shapes.Make(dtypes.Float32, shape.Size()), 0)
				return Reshape(MulScalar(Sin(AddScalar(MulScalar(v, 0.7), float64(shape.Rank()))), 0.3), shape.Dimensions...)
			})
			scope.SetTraining(g, true)
			var out *Node
			if ours {
				out = c.goAttention(scope.At("attention"), xs, m)
			} else {
				out = attention.SelfAttention(scope.At("attention"), xs, c.Heads, D/c.Heads).
					UseTransposedWeights(true).WithFusion(false).WithKeyMask(m).Done()
			}
			loss := ReduceAllSum(Mul(out, ws))
			wrt := []*Node{xs}
			names = names[:0]
			for v := range store.IterVariables() {
				wrt = append(wrt, v.NodeValue(g))
				names = append(names, v.Path())
			}
			return append([]*Node{out}, Gradient(loss, wrt...)...)
		})
		outs, err := e.Exec(tensors.FromFlatDataAndDimensions(x, B, S, D), tensors.FromFlatDataAndDimensions(mask, B, S),
			tensors.FromFlatDataAndDimensions(w, B, S, D))
		if err != nil {
			t.Fatal(err)
		}
		res := make([][]float32, len(outs))
		for i, o := range outs {
			res[i] = tensors.MustCopyFlatData[float32](o)
		}
		return res
	}
	want := run(false)
	nVars := store.NumVariables()
	got := run(true)
	if store.NumVariables() != nVars || nVars != 8 {
		t.Fatalf("variables: %d after GoMLX's attention (want 8), %d after ours", nVars, store.NumVariables())
	}
	if len(got) != len(want) {
		t.Fatalf("%d outputs, want %d", len(got), len(want))
	}
	label := append([]string{"output", "d/dx"}, names...)
	for i := range want {
		for j := range want[i] {
			if d := math.Abs(float64(got[i][j] - want[i][j])); d > 1e-5*(1+math.Abs(float64(want[i][j]))) {
				t.Fatalf("%s[%d]: ours %g, GoMLX %g", label[i], j, got[i][j], want[i][j])
			}
		}
	}
	// The all-masked text attends to nothing: its output is the output bias.
	out := got[0][2*S*D : 3*S*D]
	if out[0] != out[D] || out[1] != out[D+1] {
		t.Errorf("all-masked text: rows differ: %v vs %v", out[:2], out[D:D+2])
	}
}

// maskedTexts is an encoder input of three texts of six tokens (B, S = 3, 6),
// x [B, S, D] = sin(0.37·i)·scale, and their key mask: 4, 6 and 1 tokens.
func maskedTexts(B, S, D int, scale float64) ([]float32, []bool) {
	if B != 3 || S != 6 {
		panic("maskedTexts: three texts of six tokens")
	}
	x := make([]float32, B*S*D)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*0.37) * scale)
	}
	mask := []bool{
		true, true, true, true, false, false,
		true, true, true, true, true, true,
		true, false, false, false, false, false,
	}
	return x, mask
}

// fusedAttentionNodes counts GoMLX's fused attention ops in g.
func fusedAttentionNodes(g *Graph) int {
	return countNodes(g, NodeTypeFusedScaledDotProductAttention, nil)
}

// countNodes counts the nodes of type t in g, of the given dimensions unless
// dims is nil.
func countNodes(g *Graph, t NodeType, dims []int) int {
	n := 0
	for _, node := range g.Nodes() {
		if node.Type() == t && (dims == nil || slices.Equal(node.Shape().Dimensions, dims)) {
			n++
		}
	}
	return n
}

// countInputs counts the nodes of type t that take a tensor of shape dims.
func countInputs(g *Graph, t NodeType, dims []int) int {
	n := 0
	for _, node := range g.Nodes() {
		if node.Type() != t {
			continue
		}
		for _, in := range node.Inputs() {
			if slices.Equal(in.Shape().Dimensions, dims) {
				n++
				break
			}
		}
	}
	return n
}

// On the pure-Go backend, inference graphs must not use GoMLX's fused
// attention op: its kernel pays an AVX-SSE transition assist per query·key
// product on Intel CPUs (ten times the CPU time of the decomposed graph on
// tiny image inference; see decomposeAttention). The test builds the
// encoder's inference graph and counts fused attention ops (an op count
// holds on a loaded machine where a timing would not), and checks that the
// decomposed attention gives the fused op's values on inputs that make
// scores very negative (softmax weights that underflow) with masked keys.
func TestGoBackendInferenceAttentionIsDecomposed(t *testing.T) {
	withProcs(t, 1) // one part: the counts below are of the whole batch's scores
	backend, err := compute.NewWithConfig("go")
	if err != nil {
		t.Fatal(err)
	}
	c := testConfig() // D=16, 2 heads
	const B, S = 3, 6
	D := c.Hidden
	x, mask := maskedTexts(B, S, D, 40) // scores of ±10^3 and more

	// The encoder's inference graph: no fused attention op.
	store, err := NewStore(backend, &c, 1)
	if err != nil {
		t.Fatal(err)
	}
	fused, adds, maxes := -1, -1, -1
	scores := []int{B, c.Heads, S, S}
	e := mlmodel.MustNewExec(backend, store, func(scope *mlmodel.Scope, xs, m *Node) *Node {
		out := c.Encode(scope, xs, m)
		g := xs.Graph()
		fused = fusedAttentionNodes(g)
		adds = countNodes(g, NodeTypeAdd, scores)
		maxes = countInputs(g, NodeTypeReduceMax, scores)
		return out
	})
	if _, err := e.Exec(tensors.FromFlatDataAndDimensions(x, B, S, D), tensors.FromFlatDataAndDimensions(mask, B, S)); err != nil {
		t.Fatal(err)
	}
	if fused != 0 {
		t.Errorf("the encoder's inference graph on the go backend has %d fused attention ops, want 0", fused)
	}
	// The key mask rides in the Q·K product, and the row max is taken in two
	// short reductions: the backend runs a bias broadcast over the scores
	// through a general index walk, and a trailing max over rows of 12 or
	// more pays an AVX-SSE transition per row on Intel CPUs (goAttention,
	// rowMax).
	if adds != 0 {
		t.Errorf("%d additions onto the %v scores in the inference graph, want 0 (the mask belongs in the product)", adds, scores)
	}
	if maxes != 0 {
		t.Errorf("%d max reductions straight over the %v scores' rows, want 0 (rowMax splits rows of %d)", maxes, scores, S)
	}

	// goAttention against GoMLX's fused attention, same variables, inference.
	store = mlmodel.NewStore()
	run := func(ours, training bool) ([]float32, int) {
		n := -1
		e := mlmodel.MustNewExec(backend, store, func(scope *mlmodel.Scope, xs, m *Node) *Node {
			scope.SetTraining(xs.Graph(), training)
			scope = scope.WithInitializer(func(g *Graph, shape shapes.Shape) *Node {
				v := Iota(g, shapes.Make(dtypes.Float32, shape.Size()), 0)
				return Reshape(MulScalar(Sin(AddScalar(MulScalar(v, 0.7), float64(shape.Rank()))), 0.3), shape.Dimensions...)
			})
			var out *Node
			if ours {
				out = c.goAttention(scope.At("attention"), xs, m)
			} else {
				out = attention.SelfAttention(scope.At("attention"), xs, c.Heads, D/c.Heads).
					UseTransposedWeights(true).WithKeyMask(m).Done()
			}
			n = fusedAttentionNodes(xs.Graph())
			return out
		})
		outs, err := e.Exec(tensors.FromFlatDataAndDimensions(x, B, S, D), tensors.FromFlatDataAndDimensions(mask, B, S))
		if err != nil {
			t.Fatal(err)
		}
		return tensors.MustCopyFlatData[float32](outs[0]), n
	}
	run(true, true) // creates the variables (inference graphs embed their values)
	want, nFused := run(false, false)
	if nFused == 0 {
		t.Fatal("GoMLX's SelfAttention built no fused attention op: the counter checks nothing")
	}
	got, nOurs := run(true, false)
	if nOurs != 0 {
		t.Fatalf("goAttention built %d fused attention ops", nOurs)
	}
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*(1+math.Abs(float64(want[i]))) || math.IsNaN(float64(got[i])) {
			t.Fatalf("output[%d]: ours %g, fused %g", i, got[i], want[i])
		}
	}
}

// On the pure-Go backend, attention's softmax must not be GoMLX's fused
// softmax op: its row kernel costs 0.7–2.4 µs per row on an AVX-512 Xeon,
// 2.4–5× the decomposed softmax on rows of 17–65 keys, and in training the
// decomposed twin is evaluated for the gradient anyway (see rowSoftmax).
// The test builds an image model's training step (loss and gradients) and
// its inference graph, and counts the softmax ops on the [B, H, S, S]
// scores: no fused softmax, and one exponential per layer (the softmax is
// evaluated once). It then checks rowSoftmax against the fused op on rows of
// 17, 50, 64 and 65 (split and whole row maxima) with masked (lowest float32) entries.
func TestGoBackendAttentionSoftmaxIsDecomposed(t *testing.T) {
	withProcs(t, 1) // one part: the counts below are of the whole batch's scores
	backend, err := compute.NewWithConfig("go")
	if err != nil {
		t.Fatal(err)
	}
	c := testConfig() // 8×8 images in 4×4 patches: S = 5
	c.Layers = 2
	const B = 3
	S := c.NumPatches() + 1
	scores := []int{B, c.Heads, S, S}
	store, err := NewStore(backend, &c, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, training := range []bool{true, false} {
		fused, exps := -1, -1
		runImageStep(t, backend, store, &c, B, training, func(g *Graph) {
			fused = countNodes(g, NodeTypeFusedSoftmax, nil)
			exps = countNodes(g, NodeTypeExp, scores)
		})
		if fused != 0 {
			t.Errorf("training=%v: %d fused softmax ops in the graph, want 0", training, fused)
		}
		if exps != c.Layers {
			t.Errorf("training=%v: %d exponentials of %v scores, want one per layer (%d)", training, exps, scores, c.Layers)
		}
	}

	for _, n := range []int{17, 50, 64, 65} {
		x := make([]float32, 4*n)
		for i := range x {
			x[i] = float32(math.Sin(float64(i)*0.91)) * 30
			if i%7 == 3 {
				x[i] = -math.MaxFloat32 // a masked key
			}
		}
		e := MustNewExec(backend, func(x *Node) []*Node { return []*Node{rowSoftmax(x), Softmax(x, -1)} })
		outs := e.MustExec(tensors.FromFlatDataAndDimensions(x, 4, n))
		got, want := tensors.MustCopyFlatData[float32](outs[0]), tensors.MustCopyFlatData[float32](outs[1])
		for i := range want {
			if d := math.Abs(float64(got[i] - want[i])); d > 1e-6 || (x[i] == -math.MaxFloat32 && got[i] != 0) {
				t.Fatalf("rows of %d: p[%d] = %g, fused softmax %g", n, i, got[i], want[i])
			}
		}
	}
}
