package model

import (
	"math"
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
)

// The training graph adds the dense biases outside the fused product (or, for
// large layers, uses a plain product) and, on the pure-Go backend, uses the
// decomposed attention; it must read the same variables and compute the same
// logits (padding masked) as inference, with the products fused and plain.
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
	defer func(limit int) { fusedGradMaxElems = limit }(fusedGradMaxElems)
	for _, limit := range []int{math.MaxInt, 0} { // every product fused, none
		fusedGradMaxElems = limit
		trainLogits := run(true)
		if store.NumVariables() != nBefore {
			t.Errorf("the training graph created %d new variables", store.NumVariables()-nBefore)
		}
		for i := range inferLogits {
			if math.Abs(float64(inferLogits[i]-trainLogits[i])) > 1e-5 {
				t.Fatalf("fused below %d elements: logit %d: inference %g, training %g", limit, i, inferLogits[i], trainLogits[i])
			}
		}
	}
}
