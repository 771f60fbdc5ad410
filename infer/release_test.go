package infer

import (
	"runtime"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// TestReleaseReusesBuffers runs a pass with a 4 MB output in a loop twice:
// finalizing its outputs, every call allocates them afresh; releasing them,
// the backend reuses their buffers, and each call still computes its own
// answer.
func TestReleaseReusesBuffers(t *testing.T) {
	backend := compute.MustNew()
	const n, calls = 1 << 20, 16
	e, err := graph.NewExec(backend, func(x *graph.Node) *graph.Node {
		return graph.Mul(graph.Iota(x.Graph(), shapes.Make(dtypes.Float32, n), 0), x)
	})
	if err != nil {
		t.Fatal(err)
	}
	r := NewReleaser(backend)
	run := func(done func(*tensors.Tensor)) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range calls {
			x := float32(i + 1)
			outs, err := e.Exec(x)
			if err != nil {
				t.Fatal(err)
			}
			outs[0].ConstFlatData(func(flat any) {
				got := flat.([]float32)
				if got[0] != 0 || got[1] != x || got[n-1] != x*(n-1) {
					t.Fatalf("call %d: got %v … %v, want [0 %v] … %v", i, got[:2], got[n-1], x, x*(n-1))
				}
			})
			done(outs[0])
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	release := func(o *tensors.Tensor) { r.Release(o) }
	run(release) // compiles the sink
	finalized := run(func(o *tensors.Tensor) { o.FinalizeAll() })
	released := run(release)
	t.Logf("allocated over %d calls: %d KB finalizing, %d KB releasing", calls, finalized>>10, released>>10)
	if finalized < calls*n*4*9/10 {
		t.Fatalf("finalizing allocated only %d bytes over %d calls of 4 MB outputs: the test measures nothing", finalized, calls)
	}
	if released > finalized/4 {
		t.Errorf("releasing allocated %d bytes, finalizing %d: released outputs are not reused", released, finalized)
	}
}
