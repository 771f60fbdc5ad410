package train

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
)

// The batch is split along axis 0 into contiguous, equal slices, one per
// device, and the slices put back together are the batch.
func TestDataParallelShardSplitsBatchAxis(t *testing.T) {
	dp, err := newDataParallel(2)
	if err != nil {
		t.Fatal(err)
	}
	x := tensors.FromFlatDataAndDimensions([]float32{0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32}, 4, 3)
	y := tensors.FromFlatDataAndDimensions([]int32{7, 8, 9, 6}, 4)
	px := tensors.FromFlatDataAndDimensions(make([]float32, 4*1*2*2), 4, 1, 2, 2)
	sharded, err := dp.shard([]*tensors.Tensor{x, y, px})
	if err != nil {
		t.Fatal(err)
	}
	if len(sharded) != 3 {
		t.Fatalf("%d sharded inputs, want 3", len(sharded))
	}
	wantX := [][]float32{{0, 1, 2, 10, 11, 12}, {20, 21, 22, 30, 31, 32}}
	wantY := [][]int32{{7, 8}, {9, 6}}
	for dev := range 2 {
		if got := tensors.MustCopyFlatData[float32](sharded[0].Shards()[dev]); !slices.Equal(got, wantX[dev]) {
			t.Errorf("device %d: x shard %v, want %v", dev, got, wantX[dev])
		}
		if got := sharded[0].Shards()[dev].Shape().Dimensions; !slices.Equal(got, []int{2, 3}) {
			t.Errorf("device %d: x shard shape %v, want [2 3]", dev, got)
		}
		if got := tensors.MustCopyFlatData[int32](sharded[1].Shards()[dev]); !slices.Equal(got, wantY[dev]) {
			t.Errorf("device %d: y shard %v, want %v", dev, got, wantY[dev])
		}
		if got := sharded[2].Shards()[dev].Shape().Dimensions; !slices.Equal(got, []int{2, 1, 2, 2}) {
			t.Errorf("device %d: pixel shard shape %v, want [2 1 2 2]", dev, got)
		}
	}
	if got := sharded[0].Shape().Dimensions; !slices.Equal(got, []int{4, 3}) {
		t.Errorf("logical shape %v, want [4 3]", got)
	}
	merged, err := sharded[0].Merge()
	if err != nil {
		t.Fatal(err)
	}
	if got := tensors.MustCopyFlatData[float32](merged); !slices.Equal(got, tensors.MustCopyFlatData[float32](x)) {
		t.Errorf("merged %v, want the batch back", got)
	}
	// The specs: inputs split on the mesh's only axis along tensor axis 0,
	// variables and outputs replicated.
	if dp.mesh.NumDevices() != 2 || dp.batch.NumDevicesShardingAxis(0) != 2 || dp.batch.NumDevicesShardingAxis(1) != 1 {
		t.Errorf("batch spec %s on mesh %s: want axis 0 over 2 devices, the rest replicated", dp.batch, dp.mesh)
	}
	if !dp.replicated.IsReplicated() {
		t.Errorf("variables' spec %s is not replicated", dp.replicated)
	}
}

func TestDataParallelShardErrors(t *testing.T) {
	dp, err := newDataParallel(2)
	if err != nil {
		t.Fatal(err)
	}
	ok := tensors.FromFlatDataAndDimensions([]float32{1, 2}, 2)
	cases := []struct {
		name   string
		inputs []*tensors.Tensor
		want   string
	}{
		{"odd batch", []*tensors.Tensor{ok, tensors.FromFlatDataAndDimensions([]int32{1, 2, 3}, 3, 1)},
			"input 1 has a batch of 3 (shape (Int32)[3, 1]), not divisible by 2 devices"},
		{"scalar", []*tensors.Tensor{tensors.FromScalar(float32(1))}, "input 0 is a scalar"},
		{"nil", []*tensors.Tensor{ok, nil}, "input 1 is nil"},
	}
	for _, tc := range cases {
		_, err := dp.shard(tc.inputs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := newDataParallel(0); err == nil || !strings.Contains(err.Error(), "at least 1 device") {
		t.Errorf("0 devices: error %v", err)
	}
}

func TestDataParallelFirstDevice(t *testing.T) {
	dp, err := newDataParallel(2)
	if err != nil {
		t.Fatal(err)
	}
	outs := make([]*tensors.Tensor, 6)
	for i := range outs {
		outs[i] = tensors.FromScalar(float32(i))
	}
	first, err := dp.firstDevice(outs)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 3 || tensors.ToScalar[float32](first[0]) != 0 || tensors.ToScalar[float32](first[2]) != 2 {
		t.Errorf("device 0's outputs: %v", first)
	}
	if _, err := dp.firstDevice(outs[:5]); err == nil || !strings.Contains(err.Error(), "not a multiple of 2") {
		t.Errorf("5 outputs over 2 devices: error %v", err)
	}
}

func TestConfigMeshDevices(t *testing.T) {
	for _, tc := range []struct {
		devices int
		mesh    bool
		want    int
	}{{0, false, 0}, {1, false, 0}, {0, true, 1}, {1, true, 1}, {2, false, 2}, {4, true, 4}} {
		c := Config{Devices: tc.devices, Mesh: tc.mesh}
		if got := c.MeshDevices(); got != tc.want {
			t.Errorf("devices %d, mesh %v: mesh of %d devices, want %d", tc.devices, tc.mesh, got, tc.want)
		}
	}
}

// More devices than the backend has, a negative count, and (on the pure-Go
// backend) any distributed step are refused by NewTrainer with an error.
func TestNewTrainerRefusesUnavailableDevices(t *testing.T) {
	b := testBackend() // pure Go: one device, no distributed execution
	lossFn := toyLossFn(toyOpts{text: true, image: true})
	cfg := noClipConfig()
	cfg.Devices = b.NumDevices() + 1
	_, err := NewTrainer(b, mlmodel.NewStore(), lossFn, cfg)
	if err == nil || !strings.Contains(err.Error(), "has 1 device(s)") {
		t.Errorf("devices %d: error %v", cfg.Devices, err)
	}
	cfg.Devices = -1
	if _, err := NewTrainer(b, mlmodel.NewStore(), lossFn, cfg); err == nil || !strings.Contains(err.Error(), "devices must be >= 0") {
		t.Errorf("devices -1: error %v", err)
	}
	// The pure-Go backend's builder refuses AutoSharding even on one device.
	cfg.Devices, cfg.Mesh = 1, true
	_, err = NewTrainer(b, mlmodel.NewStore(), lossFn, cfg)
	if err == nil || !strings.Contains(err.Error(), "cannot run a distributed (AutoSharding) step over 1 device(s)") {
		t.Errorf("one-device mesh on the go backend: error %v, want the distributed step refused "+
			"(if the go backend now runs it, TestDataParallelMatchesSingleDevice runs on it)", err)
	}
	// The plain step is unaffected: devices 1 without a mesh compiles nothing distributed.
	cfg.Mesh = false
	tr, err := NewTrainer(b, mlmodel.NewStore(), lossFn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if tr.Devices() != 1 || tr.dp != nil {
		t.Errorf("devices 1: %d devices, data-parallel %v; want the plain step", tr.Devices(), tr.dp != nil)
	}
}

// dpBackend is the backend of GOMLX_BACKEND when set (test binaries built
// with -tags xla have the XLA backend), else the pure-Go one. It skips the
// test where the backend has no distributed execution (the pure-Go one).
func dpBackend(t *testing.T) compute.Backend {
	t.Helper()
	var b compute.Backend
	if os.Getenv(compute.ConfigEnvVar) == "" {
		b = testBackend()
	} else {
		var err error
		if b, err = compute.New(); err != nil {
			t.Fatalf("opening %s=%q: %v", compute.ConfigEnvVar, os.Getenv(compute.ConfigEnvVar), err)
		}
	}
	if err := CheckDevices(b, 1); err != nil {
		t.Skipf("no distributed execution on this backend (the one-device mesh step cannot be compiled): %v", err)
	}
	return b
}

// initialisedToyStore returns a store holding the toy model's variables,
// initialised once on the pure-Go backend (so that every trainer compared
// starts from the same weights, whatever backend it runs on).
func initialisedToyStore(t *testing.T, lossFn LossFn, batch []*tensors.Tensor) *mlmodel.Store {
	t.Helper()
	store := mlmodel.NewStore()
	if err := store.SetRNGStateFromSeed(11); err != nil {
		t.Fatal(err)
	}
	exec, err := mlmodel.NewExec(testBackend(), store, func(scope *mlmodel.Scope, g *Graph, in []*Node) []*Node {
		l := lossFn(scope, g, in)
		return []*Node{l.Text, l.Image}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	if _, err := exec.Exec(anyArgs(batch)...); err != nil {
		t.Fatal(err)
	}
	return store
}

// trainClone trains a clone of base for steps toy steps with cfg on the
// given number of devices (as a mesh if mesh), and returns the step results
// and the trained store.
func trainClone(t *testing.T, backend compute.Backend, base *mlmodel.Store, lossFn LossFn, cfg Config, devices int, mesh bool, steps int) ([]*StepResult, *mlmodel.Store) {
	t.Helper()
	store, err := base.Clone()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Devices, cfg.Mesh = devices, mesh
	tr, err := NewTrainer(backend, store, lossFn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var res []*StepResult
	for step := range steps {
		r, err := tr.Step(toyBatchAt(step)...)
		if err != nil {
			t.Fatalf("devices %d, step %d: %v", devices, step+1, err)
		}
		res = append(res, r)
	}
	return res, store
}

// meshSizes lists the meshes the data-parallel tests compare with the
// single-device step: 1 device, and 2 and 4 where the backend has them.
func meshSizes(backend compute.Backend) []int {
	meshes := []int{1}
	for _, n := range []int{2, 4} {
		if n <= backend.NumDevices() {
			meshes = append(meshes, n)
		}
	}
	return meshes
}

// A data-parallel step over a mesh of N devices (N = 1, and 2 and 4 where
// the backend has them) gives, step after step, the losses, gradient norms,
// updated weights, AdamW moments and gradient masks of the plain
// single-device step on the same global batch, with gradient masking on and
// two mask updates inside the run.
//
// It needs a backend with distributed execution (XLA): run it with a test
// binary built with -tags xla and GOMLX_BACKEND set. On the pure-Go backend,
// which has none, it is skipped.
func TestDataParallelMatchesSingleDevice(t *testing.T) {
	backend := dpBackend(t)
	o := toyOpts{text: true, image: true}
	lossFn := toyLossFn(o)
	cfg := noClipConfig()
	cfg.Seed = 0 // the stores are seeded and initialised by initialisedToyStore
	cfg.Optimizer.ClipNorm = 1
	cfg.Mask = MaskConfig{Enabled: true, FinalSparsity: 0.5, Increment: 0.25, StartStep: 0, EndStep: 4}
	const steps = 6
	base := initialisedToyStore(t, lossFn, toyBatchAt(0))

	wantRes, wantStore := trainClone(t, backend, base, lossFn, cfg, 1, false, steps)
	if wantRes[1].MaskUpdate == nil || wantRes[3].MaskUpdate == nil {
		t.Fatalf("the mask was not updated after steps 2 and 4")
	}
	meshes := meshSizes(backend)
	t.Logf("backend %q with %d device(s): meshes of %v device(s)", backend.Name(), backend.NumDevices(), meshes)
	for _, n := range meshes {
		gotRes, gotStore := trainClone(t, backend, base, lossFn, cfg, n, true, steps)
		maxDiff := 0.0
		note := func(name string, got, want float64) {
			d := math.Abs(got - want)
			maxDiff = max(maxDiff, d)
			if d > 1e-5*max(1, math.Abs(want)) {
				t.Errorf("mesh of %d: %s = %.9g, single device %.9g", n, name, got, want)
			}
		}
		for i := range steps {
			g, w := gotRes[i], wantRes[i]
			note("loss_text", g.LossText, w.LossText)
			note("loss_image", g.LossImage, w.LossImage)
			note("grad_norm", g.GradNorm, w.GradNorm)
			if (g.MaskUpdate == nil) != (w.MaskUpdate == nil) || g.Step != w.Step {
				t.Errorf("mesh of %d, step %d: step %d, mask update %v; single device step %d, update %v",
					n, i+1, g.Step, g.MaskUpdate != nil, w.Step, w.MaskUpdate != nil)
			}
		}
		d, err := diffStores(gotStore, wantStore, 1e-5)
		if err != nil {
			t.Fatalf("mesh of %d: %v", n, err)
		}
		for _, e := range d.errors {
			t.Errorf("mesh of %d: %s", n, e)
		}
		maxDiff = max(maxDiff, d.maxDiff)
		numVars := d.floats
		if numVars < 12*3 {
			t.Errorf("compared %d float variables, want at least 36 (12 parameters and their 2 moments)", numVars)
		}
		if d.masks != toySharedParams || d.maskZeros == 0 || d.maskZeros == d.maskEntries {
			t.Errorf("compared %d masks with %d of %d entries off, want the toy's %d shared parameters' masks, neither all on nor all off",
				d.masks, d.maskZeros, d.maskEntries, toySharedParams)
		}
		t.Logf("mesh of %d device(s): %d steps, %d float variables compared, largest difference %.3g", n, steps, numVars, maxDiff)
	}
}

// toySharedParams is the number of shared-encoder parameters of the toy
// model, each with a gradient mask: two dense layers, weights and biases.
const toySharedParams = 4

// storeDiff is what diffStores found.
type storeDiff struct {
	errors                 []string
	floats, masks          int     // float variables and gradient masks compared
	maskEntries, maskZeros int     // entries of the masks compared, and how many are off (in want)
	maxDiff                float64 // largest float difference
}

// diffStores compares every variable of want with got's: the gradient
// masks (bool, or float32 0/1 from older checkpoints) exactly, entry by
// entry; the float variables within tol relative (absolute below 1).
func diffStores(got, want *mlmodel.Store, tol float64) (*storeDiff, error) {
	d := &storeDiff{}
	for v := range want.IterVariables() {
		gv := got.GetVariable(v.Path())
		if gv == nil {
			d.errors = append(d.errors, fmt.Sprintf("no variable %s", v.Path()))
			continue
		}
		mask := strings.HasPrefix(v.Path(), maskScope)
		if !mask && !v.DType().IsFloat() {
			continue
		}
		read, name := readFloat32, v.Path()
		if mask {
			read, name = readMask, "mask "+v.Path()
		} else {
			d.floats++
		}
		w, err := read(v)
		if err != nil {
			return nil, err
		}
		g, err := read(gv)
		if err != nil {
			return nil, err
		}
		if len(g) != len(w) {
			d.errors = append(d.errors, fmt.Sprintf("%s has %d entries, want %d", name, len(g), len(w)))
			continue
		}
		if mask {
			d.masks++
			for i := range w {
				d.maskEntries++
				if w[i] == 0 {
					d.maskZeros++
				}
				if g[i] != w[i] {
					d.errors = append(d.errors, fmt.Sprintf("%s[%d] = %g, want %g", name, i, g[i], w[i]))
					break
				}
			}
			continue
		}
		for i := range w {
			diff := math.Abs(float64(g[i]) - float64(w[i]))
			d.maxDiff = max(d.maxDiff, diff)
			if diff > tol*max(1, math.Abs(float64(w[i]))) {
				d.errors = append(d.errors, fmt.Sprintf("%s[%d] = %.9g, want %.9g", name, i, g[i], w[i]))
				break
			}
		}
	}
	return d, nil
}

// diffStores, which the data-parallel test relies on, sees a single
// flipped mask entry and a single changed weight, and compares every mask
// of a trained store (boolean masks, part on and part off).
func TestDiffStoresSeesMaskAndWeightChanges(t *testing.T) {
	cfg := noClipConfig()
	cfg.Mask = MaskConfig{Enabled: true, FinalSparsity: 0.5, Increment: 0.25, StartStep: 0, EndStep: 4}
	store := mlmodel.NewStore()
	tr, err := NewTrainer(testBackend(), store, toyLossFn(toyOpts{text: true, image: true}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for step := range 5 {
		if _, err := tr.Step(toyBatchAt(step)...); err != nil {
			t.Fatal(err)
		}
	}
	same, err := store.Clone()
	if err != nil {
		t.Fatal(err)
	}
	d, err := diffStores(same, store, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.errors) != 0 || d.masks != toySharedParams || d.maskZeros == 0 || d.maskZeros == d.maskEntries || d.floats < 12*3 {
		t.Fatalf("a clone: %+v, want no differences, %d masks part on and part off, at least 36 float variables", d, toySharedParams)
	}
	param := tr.Mask().Params()[1]
	if v := store.GetVariable(maskScope + param.Path()); v == nil || v.DType() != dtypes.Bool {
		t.Fatalf("mask of %s: %v, want a bool variable", param.Path(), v)
	}
	flipped, _ := store.Clone()
	m, _ := readMask(flipped.GetVariable(maskScope + param.Path()))
	m[len(m)-1] = 1 - m[len(m)-1]
	if err := writeMask(flipped.GetVariable(maskScope+param.Path()), m); err != nil {
		t.Fatal(err)
	}
	if d, _ := diffStores(flipped, store, 1e-5); len(d.errors) != 1 || !strings.Contains(d.errors[0], "mask "+maskScope+param.Path()) {
		t.Errorf("one flipped mask entry: differences %v, want one naming the mask", d.errors)
	}
	nudged, _ := store.Clone()
	w, _ := readFloat32(nudged.GetVariable(param.Path()))
	w[0] += 1e-3
	if err := nudged.GetVariable(param.Path()).SetValue(tensors.FromFlatDataAndDimensions(w, param.Shape().Dimensions...)); err != nil {
		t.Fatal(err)
	}
	if d, _ := diffStores(nudged, store, 1e-5); len(d.errors) != 1 || !strings.Contains(d.errors[0], param.Path()+"[0]") {
		t.Errorf("one changed weight: differences %v, want one naming it", d.errors)
	}
}

func mustValue(t *testing.T, v *mlmodel.Variable) *tensors.Tensor {
	t.Helper()
	x, err := v.Value()
	if err != nil {
		t.Fatal(err)
	}
	return x
}
