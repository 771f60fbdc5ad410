package train

import (
	"fmt"
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/distributed"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like the equations.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/core/tensors/dtensor"
	"github.com/gomlx/gomlx/support/exceptions"
)

// Data-parallel training over the devices of one backend (Config.Devices).
//
// The step is compiled once with GoMLX's AutoSharding strategy over a 1-D
// device mesh with axis DataAxis: the graph is the single-device graph, on
// the global shapes, and XLA's partitioner (Shardy) splits it. Every batch
// input (axis 0 is the batch: texts, masks, pixels, labels)
// is sharded along axis 0, one contiguous slice of the global batch per
// device; every store variable — weights, AdamW moments, gradient masks and
// their accumulators, the step counter, the random number generator state —
// is replicated, and so is every output. Because the graph computes the
// losses over the global batch, the partitioner inserts the all-reduce of
// the gradients (and of the loss sums and the |∇L_txt| accumulation) itself:
// the update is the one a single device computes on the same global batch,
// up to the order of floating-point additions, and the replicated variables
// stay identical on every device. The mask update runs on the host from the
// replicated accumulators and is set back as one value, replicated again at
// the next step.
//
// The pure-Go backend has no distributed execution (its builder refuses
// AutoSharding, even on one device): NewTrainer reports that before
// anything is compiled.

// DataAxis is the name of the device mesh's only axis.
const DataAxis = "data"

// dataParallel holds the mesh and sharding specs of a data-parallel step.
type dataParallel struct {
	n          int
	mesh       *distributed.DeviceMesh
	batch      *distributed.ShardingSpec // axis 0 over DataAxis, the other axes replicated
	replicated *distributed.ShardingSpec
}

// newDataParallel builds the 1-D mesh of n devices and its specs. It does
// not look at any backend.
func newDataParallel(n int) (*dataParallel, error) {
	if n < 1 {
		return nil, fmt.Errorf("data parallelism needs at least 1 device, got %d", n)
	}
	mesh, err := distributed.NewDeviceMesh([]int{n}, []string{DataAxis})
	if err != nil {
		return nil, fmt.Errorf("device mesh of %d devices: %w", n, err)
	}
	batch, err := distributed.NewShardingSpec(mesh, distributed.AxisSpec{DataAxis})
	if err != nil {
		return nil, fmt.Errorf("batch sharding spec: %w", err)
	}
	return &dataParallel{n: n, mesh: mesh, batch: batch, replicated: distributed.NewReplicatedShardingSpec(mesh)}, nil
}

// CheckDevices reports whether backend can run a data-parallel step over n
// devices: it has at least n devices and runs a distributed (AutoSharding)
// computation — a sum over a vector sharded over the n devices, whose
// result every device must hold. Nothing is kept compiled afterwards.
func CheckDevices(backend compute.Backend, n int) error {
	if backend == nil {
		return fmt.Errorf("data parallelism: no backend")
	}
	dp, err := newDataParallel(n)
	if err != nil {
		return err
	}
	return dp.check(backend)
}

func (dp *dataParallel) check(backend compute.Backend) error {
	if have := backend.NumDevices(); have < dp.n {
		return fmt.Errorf("data parallelism over %d devices: backend %q has %d device(s)", dp.n, backend.Name(), have)
	}
	want := float32(dp.n * (dp.n + 1) / 2)
	err := exceptions.TryCatch[error](func() {
		// Ask the builder first: a backend without distributed execution
		// says so here with an error, where a graph would panic while
		// compiling (and leave its executor waiting for that compilation).
		if err := backend.Builder("data_parallel_check").DistributedAutoSharding(dp.mesh.ToBackendsMesh()); err != nil {
			panic(err)
		}
		exec, err := NewExec(backend, func(x *Node) *Node { return ReduceAllSum(x) })
		if err != nil {
			panic(err)
		}
		exec.AutoSharding(dp.mesh).WithInputShardingSpecs(dp.batch).WithOutputShardingSpecs(dp.replicated)
		x := make([]float32, dp.n)
		for i := range x {
			x[i] = float32(i + 1)
		}
		sharded, err := dtensor.ShardTensor(dp.batch, tensors.FromFlatDataAndDimensions(x, dp.n))
		if err != nil {
			panic(err)
		}
		outs, err := exec.Exec(sharded)
		if err != nil {
			panic(err)
		}
		_ = sharded.FinalizeAll()
		if len(outs) != dp.n {
			exceptions.Panicf("got %d results, want one per device (%d)", len(outs), dp.n)
		}
		for i, o := range outs {
			if got := tensors.ToScalar[float32](o); got != want {
				exceptions.Panicf("device %d holds the sum %g, want %g", i, got, want)
			}
			_ = o.FinalizeAll()
		}
		// Finalize only after a clean run: after a failed compilation it
		// would wait for that compilation forever.
		exec.Finalize()
	})
	if err != nil {
		return fmt.Errorf("backend %q cannot run a distributed (AutoSharding) step over %d device(s): %w "+
			"(data parallelism needs the XLA backend, docs/gpu.md)", backend.Name(), dp.n, err)
	}
	return nil
}

// shard splits every input along axis 0 into dp.n equal contiguous slices,
// one per device. Inputs must have a batch axis divisible by dp.n.
func (dp *dataParallel) shard(inputs []*tensors.Tensor) ([]*dtensor.Tensor, error) {
	out := make([]*dtensor.Tensor, 0, len(inputs))
	release := func() {
		for _, d := range out {
			_ = d.FinalizeAll()
		}
	}
	for i, x := range inputs {
		if x == nil {
			release()
			return nil, fmt.Errorf("input %d is nil", i)
		}
		s := x.Shape()
		if s.Rank() == 0 {
			release()
			return nil, fmt.Errorf("input %d is a scalar (%s): data parallelism shards every input along its batch axis 0",
				i, s)
		}
		if b := s.Dimensions[0]; b%dp.n != 0 {
			release()
			return nil, fmt.Errorf("input %d has a batch of %d (shape %s), not divisible by %d devices", i, b, s, dp.n)
		}
		d, err := dtensor.ShardTensor(dp.batch, x)
		if err != nil {
			release()
			return nil, fmt.Errorf("sharding input %d (shape %s): %w", i, s, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// firstDevice returns the outputs of device 0 (every output is replicated)
// and releases the copies of the other devices.
func (dp *dataParallel) firstDevice(outputs []*tensors.Tensor) ([]*tensors.Tensor, error) {
	if len(outputs)%dp.n != 0 {
		return nil, fmt.Errorf("got %d outputs, not a multiple of %d devices", len(outputs), dp.n)
	}
	k := len(outputs) / dp.n
	for _, o := range outputs[k:] {
		_ = o.FinalizeAll()
	}
	return slices.Clip(outputs[:k]), nil
}
