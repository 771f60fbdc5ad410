package train

import (
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// addGradients skips adding the structural zero that Gradient returns for a
// parameter the loss does not reach, and still adds real gradients.
func TestAddGradientsSkipsStructuralZeros(t *testing.T) {
	out := runGraph(t, func(g *Graph, in []*Node) []*Node {
		x, y := in[0], in[1]
		gx := Gradient(ReduceAllSum(Square(x)), x, y) // 2x, zero for y
		gy := Gradient(ReduceAllSum(Mul(y, y)), x, y) // zero for x, 2y
		if !isZeroGradient(gx[1]) || !isZeroGradient(gy[0]) {
			t.Error("unreached parameters' gradients not recognised as zero")
		}
		if isZeroGradient(gx[0]) || isZeroGradient(ZerosLike(x)) == false {
			t.Error("isZeroGradient misjudges a real gradient or ZerosLike")
		}
		if isZeroGradient(BroadcastLike(ScalarOne(g, x.DType()), x)) {
			t.Error("a broadcast one taken for zero")
		}
		sum := addGradients(gx[0], gy[0])
		if sum != gx[0] {
			t.Error("addGradients did not return the non-zero side")
		}
		return []*Node{sum, addGradients(gx[0], gx[0])}
	}, []float32{1, 2}, []float32{3, 4})
	if got := tensors.MustCopyFlatData[float32](out[0]); got[0] != 2 || got[1] != 4 {
		t.Errorf("gradient %v, want [2 4]", got)
	}
	if got := tensors.MustCopyFlatData[float32](out[1]); got[0] != 4 || got[1] != 8 {
		t.Errorf("sum of real gradients %v, want [4 8]", got)
	}
}
