package train

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers"
	mlmodel "github.com/gomlx/gomlx/ml/model"
)

// The toy model follows the scope contract of the real one: a shared
// two-layer encoder under /encoder, a text and an image "tokenizer" under
// /text and /image, and one classification head per task under /heads.
//
// Inputs: xText [B,3], yText [B] int32, xImage [B,3], yImage [B] int32, and
// optionally a float32 scalar multiplying the text loss (to inject an
// infinite loss).
type toyOpts struct {
	text, image bool
	dropout     float64
}

const toyBatch, toyFeatures, toyClasses = 4, 3, 3

func toyLossFn(o toyOpts) LossFn {
	return func(scope *mlmodel.Scope, g *Graph, in []*Node) Losses {
		encoder := func(x *Node) *Node {
			enc := scope.At("encoder")
			h := Tanh(layers.Dense(enc.At("layer_0"), x, true, 4))
			if o.dropout > 0 {
				h = layers.DropoutStatic(enc.At("dropout"), h, o.dropout)
			}
			return Tanh(layers.Dense(enc.At("layer_1"), h, true, 4))
		}
		var l Losses
		l.Extra = map[string]*Node{}
		if o.text {
			e := layers.Dense(scope.At("text").At("embed"), in[0], true, 4)
			logits := layers.Dense(scope.At("heads").At("mlm"), encoder(e), true, toyClasses)
			l.Text = SoftmaxCrossEntropy(logits, in[1], nil)
			if len(in) > 4 {
				l.Text = Mul(l.Text, in[4])
			}
			l.Extra["text_logit_mean"] = ReduceAllMean(logits)
		}
		if o.image {
			e := layers.Dense(scope.At("image").At("patch"), in[2], true, 4)
			logits := layers.Dense(scope.At("heads").At("cls"), encoder(e), true, toyClasses)
			l.Image = SoftmaxCrossEntropy(logits, in[3], nil)
		}
		return l
	}
}

// toyBatchAt returns the deterministic batch number pos.
func toyBatchAt(pos int) []*tensors.Tensor {
	rng := rand.New(rand.NewPCG(uint64(pos), 7))
	mk := func() (*tensors.Tensor, *tensors.Tensor) {
		x := make([]float32, toyBatch*toyFeatures)
		y := make([]int32, toyBatch)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		for i := range y {
			y[i] = int32(rng.IntN(toyClasses))
		}
		return tensors.FromFlatDataAndDimensions(x, toyBatch, toyFeatures), tensors.FromFlatDataAndDimensions(y, toyBatch)
	}
	xt, yt := mk()
	xi, yi := mk()
	return []*tensors.Tensor{xt, yt, xi, yi}
}

// toyData is a resumable Batches over toyBatchAt. scaleAt, if set, appends
// the text-loss scale of each batch; onNext is called with the position.
type toyData struct {
	pos     int
	scaleAt func(pos int) float32
	onNext  func(pos int)
}

func (d *toyData) Next() ([]*tensors.Tensor, error) {
	if d.onNext != nil {
		d.onNext(d.pos)
	}
	b := toyBatchAt(d.pos)
	if d.scaleAt != nil {
		b = append(b, tensors.FromScalar(d.scaleAt(d.pos)))
	}
	d.pos++
	return b, nil
}

func (d *toyData) State() (json.RawMessage, error) { return json.Marshal(map[string]int{"pos": d.pos}) }

func (d *toyData) Restore(s json.RawMessage) error {
	var st struct{ Pos *int }
	if err := json.Unmarshal(s, &st); err != nil {
		return err
	}
	if st.Pos == nil {
		return fmt.Errorf("toy data state %s has no pos", s)
	}
	d.pos = *st.Pos
	return nil
}

func anyArgs(ts []*tensors.Tensor) []any {
	out := make([]any, len(ts))
	for i, t := range ts {
		out[i] = t
	}
	return out
}

// referenceGradients computes ∇L_txt and ∇L_img of the toy model in a
// separate graph that does not change any variable, keyed by parameter path.
func referenceGradients(t *testing.T, store *mlmodel.Store, lossFn LossFn, batch []*tensors.Tensor) (gt, gi map[string][]float32) {
	t.Helper()
	var paths []string
	exec, err := mlmodel.NewExec(testBackend(), store, func(scope *mlmodel.Scope, g *Graph, in []*Node) []*Node {
		// Training mode: the pure-Go backend embeds variables as constants otherwise.
		scope.SetTraining(g, true)
		l := lossFn(scope, g, in)
		params := trainableParams(store, g)
		nodes := nodesOf(g, params)
		paths = paths[:0]
		for _, p := range params {
			paths = append(paths, p.Path())
		}
		out := Gradient(l.Text, nodes...)
		return append(out, Gradient(l.Image, nodes...)...)
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Exec(anyArgs(batch)...)
	if err != nil {
		t.Fatal(err)
	}
	gt, gi = map[string][]float32{}, map[string][]float32{}
	for i, p := range paths {
		gt[p] = tensors.MustCopyFlatData[float32](out[i])
		gi[p] = tensors.MustCopyFlatData[float32](out[len(paths)+i])
	}
	return gt, gi
}

func varData(t *testing.T, store *mlmodel.Store, path string) []float32 {
	t.Helper()
	v := store.GetVariable(path)
	if v == nil {
		t.Fatalf("no variable %s", path)
	}
	if v.DType() == dtypes.Bool { // masks
		vals, err := readMask(v)
		if err != nil {
			t.Fatal(err)
		}
		return vals
	}
	return tensors.MustCopyFlatData[float32](v.MustValue())
}

func setVar(t *testing.T, store *mlmodel.Store, path string, data []float32) {
	t.Helper()
	v := store.GetVariable(path)
	if v == nil {
		t.Fatalf("no variable %s", path)
	}
	if v.DType() == dtypes.Bool { // masks
		if err := writeMask(v, data); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := v.SetValue(tensors.FromFlatDataAndDimensions(data, v.Shape().Dimensions...)); err != nil {
		t.Fatal(err)
	}
}

func filled(n int, x float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = x
	}
	return out
}

func relDiff(a, b float64) float64 {
	return math.Abs(a-b) / max(math.Abs(a), math.Abs(b), 1e-12)
}
