package train

import (
	"math"
	"sync"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

var testBackend = sync.OnceValue(func() compute.Backend {
	b, err := gobackend.New("")
	if err != nil {
		panic(err)
	}
	return b
})

// runGraph builds and runs fn once on the pure-Go backend.
func runGraph(t *testing.T, fn func(g *Graph, in []*Node) []*Node, args ...any) []*tensors.Tensor {
	t.Helper()
	exec, err := NewExec(testBackend(), fn)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func scalar64(t *tensors.Tensor) float64 { return float64(tensors.ToScalar[float32](t)) }

func softmax64(z []float64, tau float64) []float64 {
	mx := math.Inf(-1)
	for _, x := range z {
		mx = max(mx, x/tau)
	}
	var sum float64
	out := make([]float64, len(z))
	for i, x := range z {
		out[i] = math.Exp(x/tau - mx)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

func ce64(z []float64, label int) float64 { return -math.Log(softmax64(z, 1)[label]) }

func kl64(p, q []float64) float64 {
	var s float64
	for i := range p {
		s += p[i] * math.Log(p[i]/q[i])
	}
	return s
}

func assertClose(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol*max(1, math.Abs(want)) {
		t.Errorf("%s = %.9g, want %.9g", name, got, want)
	}
}

func TestSoftmaxCrossEntropyWeightedMeanByHand(t *testing.T) {
	logits := [][]float32{{1, 2, 3}, {1, 1, 1}}
	labels := []int32{2, 0}
	ce0 := ce64([]float64{1, 2, 3}, 2)
	ce1 := math.Log(3)
	tests := []struct {
		name    string
		weights []float32
		want    float64
	}{
		{"nil weights is the plain mean", nil, (ce0 + ce1) / 2},
		{"weights 1,3", []float32{1, 3}, (ce0 + 3*ce1) / 4},
		{"one weight zero drops the example", []float32{0, 2}, ce1},
		{"all weights zero gives zero", []float32{0, 0}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := []any{logits, labels}
			if tc.weights != nil {
				args = append(args, tc.weights)
			}
			out := runGraph(t, func(g *Graph, in []*Node) []*Node {
				var w *Node
				if len(in) > 2 {
					w = in[2]
				}
				loss := SoftmaxCrossEntropy(in[0], in[1], w)
				grad := Gradient(loss, in[0])[0]
				return []*Node{loss, ReduceAllSum(Abs(grad))}
			}, args...)
			assertClose(t, "loss", scalar64(out[0]), tc.want, 1e-6)
			if gs := scalar64(out[1]); math.IsNaN(gs) || math.IsInf(gs, 0) {
				t.Errorf("gradient not finite: %g", gs)
			}
		})
	}
}

func TestDistillationByHand(t *testing.T) {
	zs := []float64{1, 2, 0.5}
	zt := []float64{2, 0, 1}
	const label = 1
	student := [][]float32{{1, 2, 0.5}}
	teacher := [][]float32{{2, 0, 1}}
	labels := []int32{label}
	tests := []struct {
		alpha, tau float64
	}{
		{0.3, 2}, {1, 2}, {1, 1}, {0.5, 4}, {0, 3},
	}
	for _, tc := range tests {
		pt, ps := softmax64(zt, tc.tau), softmax64(zs, tc.tau)
		want := (1-tc.alpha)*ce64(zs, label) + tc.alpha*tc.tau*tc.tau*kl64(pt, ps)
		reversed := (1-tc.alpha)*ce64(zs, label) + tc.alpha*tc.tau*tc.tau*kl64(ps, pt)
		out := runGraph(t, func(g *Graph, in []*Node) []*Node {
			return []*Node{DistillationLoss(in[0], in[1], in[2], nil, tc.alpha, tc.tau)}
		}, student, teacher, labels)
		got := scalar64(out[0])
		assertClose(t, "distillation", got, want, 1e-5)
		if tc.alpha > 0 && math.Abs(got-reversed) < 1e-3 {
			t.Errorf("alpha=%g tau=%g: loss %g matches KL(student‖teacher) %g too: test numbers do not separate the directions",
				tc.alpha, tc.tau, got, reversed)
		}
	}
}

func TestDistillationAlphaZeroIsExactlyCrossEntropy(t *testing.T) {
	out := runGraph(t, func(g *Graph, in []*Node) []*Node {
		return []*Node{
			DistillationLoss(in[0], in[1], in[2], in[3], 0, 2),
			SoftmaxCrossEntropy(in[0], in[2], in[3]),
		}
	}, [][]float32{{1, 2, 0.5}, {0, -1, 3}}, [][]float32{{2, 0, 1}, {5, 5, 5}}, []int32{1, 2}, []float32{1, 0.5})
	if a, b := tensors.ToScalar[float32](out[0]), tensors.ToScalar[float32](out[1]); a != b {
		t.Errorf("alpha=0 gives %v, cross-entropy %v", a, b)
	}
}

// The gradient of α·τ²·KL(p_t‖p_s) with respect to the student logits is
// α·τ·(p_s − p_t), and the teacher gets none.
func TestDistillationGradientScaleAndFrozenTeacher(t *testing.T) {
	zs := []float64{1, 2, 0.5}
	zt := []float64{2, 0, 1}
	const tau = 2.0
	out := runGraph(t, func(g *Graph, in []*Node) []*Node {
		loss := DistillationLoss(in[0], in[1], nil, nil, 1, tau)
		grads := Gradient(loss, in[0], in[1])
		return grads
	}, [][]float32{{1, 2, 0.5}}, [][]float32{{2, 0, 1}})
	gs := tensors.MustCopyFlatData[float32](out[0])
	gt := tensors.MustCopyFlatData[float32](out[1])
	pt, ps := softmax64(zt, tau), softmax64(zs, tau)
	for i := range gs {
		assertClose(t, "student gradient", float64(gs[i]), tau*(ps[i]-pt[i]), 1e-5)
		if gt[i] != 0 {
			t.Errorf("teacher gradient[%d] = %g, want 0", i, gt[i])
		}
	}
}

func TestMeanSquaredErrorByHand(t *testing.T) {
	out := runGraph(t, func(g *Graph, in []*Node) []*Node {
		return []*Node{
			MeanSquaredError(in[0], in[1], nil),
			MeanSquaredError(in[0], in[1], in[2]),
		}
	}, []float32{1, 2, 3}, []float32{1.5, 2, 1}, []float32{2, 1, 1})
	assertClose(t, "mse", scalar64(out[0]), (0.25+0+4)/3, 1e-6)
	assertClose(t, "weighted mse", scalar64(out[1]), (2*0.25+0+4)/4, 1e-6)
}
