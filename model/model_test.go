package model

import (
	"maps"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
)

func testConfig() Config {
	c := Tiny()
	c.Hidden, c.MLP, c.Heads = 16, 32, 2
	c.VocabSize, c.MaxTextLength = 50, 12
	c.ImageSize, c.PatchSize = 8, 4
	c.AddHead(PaperHead("mlm", HeadMLM, "text", 50))
	c.AddHead(PaperHead("image_cls", HeadClassify, "image", 10))
	return c
}

// normTestConfig is testConfig with norm nrm, post-LN with BERT's
// embedding LayerNorm.
func normTestConfig(nrm string) Config {
	c := testConfig()
	c.Norm = nrm
	c.EmbeddingLayerNorm = nrm == PostNorm
	return c
}

// validStore validates c and initialises its variables (seed 1) on the
// default backend, which it returns with the store.
func validStore(t testing.TB, c *Config) (compute.Backend, *mlmodel.Store) {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	backend := compute.MustNew()
	store, err := NewStore(backend, c, 1)
	if err != nil {
		t.Fatal(err)
	}
	return backend, store
}

func TestVariablesMatchGraph(t *testing.T) {
	for _, tied := range []bool{false, true} {
		for _, nrm := range []string{PreNorm, PostNorm} {
			c := normTestConfig(nrm)
			c.TaskHeads[0].Tied = tied
			c.TaskHeads[0].HiddenNorm = tied
			backend, store := validStore(t, &c)
			nBefore := store.NumVariables()
			e := mlmodel.MustNewExec(backend, store, func(scope *mlmodel.Scope, ids, seg, mask, pos, pixels *Node) (*Node, *Node) {
				h := c.EncodeText(scope, ids, seg, mask)
				mh, _ := c.Head("mlm")
				ml := c.HeadLogits(scope, mh, GatherPositions(h, pos))
				ih, _ := c.Head("image_cls")
				il := c.HeadLogits(scope, ih, CLS(c.EncodeImage(scope, pixels)))
				return ml, il
			})
			ids := make([][]int32, 2)
			for i := range ids {
				ids[i] = make([]int32, 12)
			}
			if _, err := e.Exec(ids, ids, ids, [][]int32{{1, 2}, {3, 4}}, shapesZero(shapes.Make(dtypes.Float32, 2, 3, 8, 8))); err != nil {
				t.Fatal(err)
			}
			if store.NumVariables() != nBefore {
				t.Errorf("the graph created %d variables beyond Variables()", store.NumVariables()-nBefore)
			}
			got := map[string][]int{}
			for v := range store.IterVariables() {
				if v.Trainable {
					got[v.Path()] = v.Shape().Dimensions
				}
			}
			want := Variables(&c)
			for _, w := range want {
				dims, ok := got[w.Path]
				if !ok {
					t.Errorf("norm=%s tied=%v: Variables lists %s, the graph has no such variable", nrm, tied, w.Path)
					continue
				}
				if !slices.Equal(dims, w.Shape) {
					t.Errorf("%s: shape %v in graph, %v listed", w.Path, dims, w.Shape)
				}
				delete(got, w.Path)
			}
			for p := range got {
				t.Errorf("norm=%s tied=%v: graph variable %s missing from Variables", nrm, tied, p)
			}
		}
	}
}

func shapesZero(s shapes.Shape) any {
	return tensors.FromShape(s)
}

// The image training step's graph must not depend on the number of patches
// (no operation per patch, no shape-dependent path in graph construction):
// a 24×24 image in 2×2 patches (145 tokens) builds the same operations, type
// by type, as in 3×3 patches (65 tokens), so its cost grows with the token
// count alone. (Both token counts factor into short groups, which rowMax
// reduces in two steps; a prime count takes one. Both patch projections
// widen, 4 and 9 values to 16, over enough tokens for their weight gradients
// to take the same path in productTransposingDY.) An operation count holds
// on a loaded machine where a timing ratio would not.
func TestImageStepOpsIndependentOfPatchSize(t *testing.T) {
	backend, err := compute.NewWithConfig("go")
	if err != nil {
		t.Fatal(err)
	}
	ops := map[int]map[NodeType]int{}
	for _, p := range []int{2, 3} {
		c := testConfig()
		c.ImageSize, c.Channels, c.PatchSize = 24, 1, p
		store, err := NewStore(backend, &c, 1)
		if err != nil {
			t.Fatal(err)
		}
		count := map[NodeType]int{}
		runImageStep(t, backend, store, &c, 2, true, func(g *Graph) {
			for _, n := range g.Nodes() {
				count[n.Type()]++
			}
		})
		ops[p] = count
	}
	if len(ops[3]) == 0 {
		t.Fatal("no operations counted")
	}
	for typ, n := range ops[3] {
		if ops[2][typ] != n {
			t.Errorf("%s: %d ops with 2×2 patches, %d with 3×3", typ, ops[2][typ], n)
		}
	}
	for typ, n := range ops[2] {
		if _, ok := ops[3][typ]; !ok {
			t.Errorf("%s: %d ops with 2×2 patches, none with 3×3", typ, n)
		}
	}
}

// runImageStep builds and runs once, on a batch of B zero images, the image
// classifier's loss Σ logits² and, when training, its gradients with respect
// to every trainable variable; inspect sees the built graph.
func runImageStep(t *testing.T, backend compute.Backend, store *mlmodel.Store, c *Config, B int, training bool, inspect func(*Graph)) {
	t.Helper()
	e := mlmodel.MustNewExec(backend, store, func(scope *mlmodel.Scope, px *Node) []*Node {
		g := px.Graph()
		scope.SetTraining(g, training)
		h, _ := c.Head("image_cls")
		logits := c.HeadLogits(scope, h, CLS(c.EncodeImage(scope, px)))
		outs := []*Node{ReduceAllSum(Mul(logits, logits))}
		if training {
			var wrt []*Node
			for v := range store.IterVariables() {
				if v.Trainable {
					wrt = append(wrt, v.NodeValue(g))
				}
			}
			outs = append(outs, Gradient(outs[0], wrt...)...)
		}
		inspect(g)
		return outs
	})
	if _, err := e.Exec(tensors.FromShape(shapes.Make(dtypes.Float32, B, c.Channels, c.ImageSize, c.ImageSize))); err != nil {
		t.Fatal(err)
	}
}

// TestInitRange checks that fresh weights are drawn with the configured
// standard deviation (BERT's 0.02 when unset) and that a bad value is refused.
func TestInitRange(t *testing.T) {
	for _, tc := range []struct{ set, want float64 }{{0, 0.02}, {0.09, 0.09}} {
		c := testConfig()
		c.InitRange = tc.set
		store, err := NewStore(compute.MustNew(), &c, 1)
		if err != nil {
			t.Fatal(err)
		}
		path := "/" + TextScope + "/embeddings/word/embeddings"
		v := store.GetVariable(path)
		if v == nil {
			t.Fatalf("%s not in the store", path)
		}
		x := tensors.MustCopyFlatData[float32](v.MustValue())
		var ss float64
		for _, f := range x {
			ss += float64(f) * float64(f)
		}
		got := math.Sqrt(ss / float64(len(x)))
		if math.Abs(got-tc.want) > 0.1*tc.want {
			t.Errorf("initializer_range %g: %s has std %.4f over %d values, want %g", tc.set, path, got, len(x), tc.want)
		}
	}
	for _, bad := range []float64{-0.01, math.NaN(), math.Inf(1)} {
		c := testConfig()
		c.InitRange = bad
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "initializer_range") {
			t.Errorf("initializer_range %g: Validate gave %v, want an error naming initializer_range", bad, err)
		}
	}
}

// withProcs sets GOMAXPROCS to n for the rest of the test: inference graphs
// on the pure-Go backend split their batch by it (inferenceParts).
func withProcs(t *testing.T, n int) {
	t.Helper()
	old := runtime.GOMAXPROCS(n)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })
}

// An inference graph's encoder on the pure-Go backend runs its batch as one
// independent part per core (inferenceParts): the test builds the encoder
// over 3 masked texts with 1, 2 and 3 cores, checks the parts by the shapes
// of the attention exponentials (one per layer and part, of the part's
// examples), and checks that every split gives the unsplit values, each
// example with its own mask. A training graph stays whole.
func TestInferenceSplitsBatchByCores(t *testing.T) {
	for _, tc := range []struct {
		training, goBackend bool
		B, procs, want      int
	}{
		{false, true, 16, 2, 2}, {false, true, 3, 8, 3}, {false, true, 64, 64, MaxGoExecutors},
		{false, true, 1, 2, 1}, {false, true, 16, 1, 1}, {true, true, 16, 2, 1}, {false, false, 16, 2, 1},
	} {
		if got := inferenceParts(tc.training, tc.goBackend, tc.B, tc.procs); got != tc.want {
			t.Errorf("inferenceParts(training %v, go %v, B %d, procs %d) = %d, want %d", tc.training, tc.goBackend, tc.B, tc.procs, got, tc.want)
		}
	}

	backend, err := compute.NewWithConfig("go")
	if err != nil {
		t.Fatal(err)
	}
	c := testConfig() // D=16, 2 heads
	c.Layers = 2
	const B, S = 3, 6
	D := c.Hidden
	x, mask := maskedTexts(B, S, D, 1)
	store, err := NewStore(backend, &c, 1)
	if err != nil {
		t.Fatal(err)
	}
	run := func(procs int, training bool) ([]float32, map[int]int) {
		withProcs(t, procs)
		exps := map[int]int{} // examples of the scores → exponentials
		e := mlmodel.MustNewExec(backend, store, func(scope *mlmodel.Scope, xs, m *Node) *Node {
			scope.SetTraining(xs.Graph(), training)
			out := c.Encode(scope, xs, m)
			for _, node := range xs.Graph().Nodes() {
				if dims := node.Shape().Dimensions; node.Type() == NodeTypeExp && len(dims) == 4 {
					exps[dims[0]]++
				}
			}
			return out
		})
		outs, err := e.Exec(tensors.FromFlatDataAndDimensions(x, B, S, D), tensors.FromFlatDataAndDimensions(mask, B, S))
		if err != nil {
			t.Fatal(err)
		}
		return tensors.MustCopyFlatData[float32](outs[0]), exps
	}
	want, exps := run(1, false)
	if !maps.Equal(exps, map[int]int{B: c.Layers}) {
		t.Fatalf("one core: attention exponentials by batch size %v, want {%d: %d}", exps, B, c.Layers)
	}
	for procs, parts := range map[int]map[int]int{2: {1: c.Layers, 2: c.Layers}, 3: {1: 3 * c.Layers}} {
		got, exps := run(procs, false)
		if !maps.Equal(exps, parts) {
			t.Errorf("%d cores: attention exponentials by batch size %v, want %v", procs, exps, parts)
		}
		for i := range want {
			if d := math.Abs(float64(got[i] - want[i])); d > 1e-5 {
				t.Fatalf("%d cores: output[%d] = %g, unsplit %g", procs, i, got[i], want[i])
			}
		}
	}
	if _, exps := run(2, true); !maps.Equal(exps, map[int]int{B: c.Layers}) {
		t.Errorf("training graph on 2 cores: attention exponentials by batch size %v, want {%d: %d} (not split)", exps, B, c.Layers)
	}
}
