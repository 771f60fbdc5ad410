package model

import (
	"math"
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
)

// The training graph uses plain products with their own weight gradient and
// broadcast biases and, on the pure-Go backend, the decomposed attention; it
// must read the same variables and compute the same logits (padding masked)
// as inference, whose dense layers are GoMLX's fused op.
func TestTrainingAndInferenceDenseAgree(t *testing.T) {
	c := testConfig()
	backend := compute.MustNew()
	store, err := NewStore(backend, &c, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Non-zero biases, so that a bias left out would show.
	for v := range store.IterVariables() {
		if v.Shape().Rank() == 1 && len(v.Path()) > 7 && v.Path()[len(v.Path())-7:] == "/biases" {
			data := make([]float32, v.Shape().Size())
			for i := range data {
				data[i] = 0.01 * float32(i%7-3)
			}
			if err := v.SetValue(tensors.FromFlatDataAndDimensions(data, v.Shape().Dimensions...)); err != nil {
				t.Fatal(err)
			}
		}
	}
	nBefore := store.NumVariables()
	run := func(training bool) []float32 {
		e := mlmodel.MustNewExec(backend, store, func(scope *mlmodel.Scope, ids, seg, mask, pos *Node) *Node {
			scope.SetTraining(ids.Graph(), training)
			h, _ := c.Head("mlm")
			return c.HeadLogits(scope, h, GatherPositions(c.EncodeText(scope, ids, seg, mask), pos))
		})
		ids := [][]int32{{2, 7, 9, 11, 3, 0, 0, 0, 0, 0, 0, 0}, {2, 5, 5, 8, 13, 21, 34, 3, 0, 0, 0, 0}}
		mask := [][]int32{{1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0}, {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}}
		seg := make([][]int32, 2)
		for i := range seg {
			seg[i] = make([]int32, 12)
		}
		out, err := e.Exec(ids, seg, mask, [][]int32{{1, 3}, {2, 6}})
		if err != nil {
			t.Fatal(err)
		}
		return tensors.MustCopyFlatData[float32](out[0])
	}
	inferLogits := run(false)
	trainLogits := run(true)
	if store.NumVariables() != nBefore {
		t.Errorf("the training graph created %d new variables", store.NumVariables()-nBefore)
	}
	for i := range inferLogits {
		if math.Abs(float64(inferLogits[i]-trainLogits[i])) > 1e-5 {
			t.Fatalf("logit %d: inference %g, training %g", i, inferLogits[i], trainLogits[i])
		}
	}
}

// TestProductTransposingDYGradient: the product with its own weight gradient
// has the gradients GoMLX's DotGeneral has, for a weight used by two products
// (as the shared encoder's by the text and image sides) and for gradients
// taken separately (as the masked step does) and of the summed loss; with 6
// inputs and 3 outputs the weight gradient transposes dy, with 2 and 9 (and
// 4 or 5 tokens) it transposes x and the result.
func TestProductTransposingDYGradient(t *testing.T) {
	for _, dims := range [][2]int{{6, 3}, {2, 9}} {
		in, out := dims[0], dims[1]
		backend := compute.MustNew()
		e := MustNewExec(backend, func(x1, x2, w, r *Node) []*Node {
			plain := func(x *Node) *Node { return Dot(x, w).General([]int{1}, nil, []int{1}, nil) }
			losses := func(prod func(x *Node) *Node) (*Node, *Node) {
				return ReduceAllSum(Mul(prod(x1), r)), ReduceAllSum(Square(prod(x2)))
			}
			var outs []*Node
			for _, prod := range []func(x *Node) *Node{func(x *Node) *Node { return productTransposingDY(x, w) }, plain} {
				l1, l2 := losses(prod)
				outs = append(outs, prod(x1))
				outs = append(outs, Gradient(l1, x1, w)...)
				outs = append(outs, Gradient(l2, x2, w)...)
				outs = append(outs, Gradient(Add(l1, l2), x1, x2, w)...)
			}
			return outs
		})
		values := func(n, seed int) []float32 {
			v := make([]float32, n)
			for i := range v {
				v[i] = float32((i*seed+3)%11)/5 - 1
			}
			return v
		}
		x1 := tensors.FromFlatDataAndDimensions(values(5*in, 7), 5, in)
		x2 := tensors.FromFlatDataAndDimensions(values(4*in, 5), 4, in)
		w := tensors.FromFlatDataAndDimensions(values(out*in, 3), out, in)
		r := tensors.FromFlatDataAndDimensions(values(5*out, 13), 5, out)
		outs, err := e.Exec(x1, x2, w, r)
		if err != nil {
			t.Fatal(err)
		}
		half := len(outs) / 2
		names := []string{"product", "∂l1/∂x1", "∂l1/∂w", "∂l2/∂x2", "∂l2/∂w", "∂(l1+l2)/∂x1", "∂(l1+l2)/∂x2", "∂(l1+l2)/∂w"}
		for i := range half {
			got, want := tensors.MustCopyFlatData[float32](outs[i]), tensors.MustCopyFlatData[float32](outs[half+i])
			if len(got) != len(want) {
				t.Fatalf("in %d, out %d: %s: %d values, want %d", in, out, names[i], len(got), len(want))
			}
			for j := range got {
				if math.Abs(float64(got[j]-want[j])) > 1e-5 {
					t.Fatalf("in %d, out %d: %s[%d] = %g, GoMLX's product gives %g", in, out, names[i], j, got[j], want[j])
				}
			}
		}
	}
}
