package train

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like the equations.
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
)

// Losses are what the model's loss function returns: scalar float32 losses,
// nil when that modality is absent from the step. Extra values (scalars) are
// reported as metrics, not optimised.
type Losses struct {
	Text, Image *Node
	Extra       map[string]*Node
}

// LossFn builds the losses of one training batch. inputs are the batch
// tensors in the order given to Trainer.Step (pretrain.Inputs names them).
// Variables are created under the scope: "/encoder/..." is the shared
// encoder, "/text", "/image" and "/heads/<name>" modality- and task-specific
// parts; frozen models (teachers) live under the scopes of Config.Frozen.
type LossFn func(scope *mlmodel.Scope, g *Graph, inputs []*Node) Losses

// DefaultSharedPrefix is the scope of the shared encoder.
const DefaultSharedPrefix = "/encoder"

// Config configures the Trainer.
type Config struct {
	Optimizer OptimizerConfig `json:"optimizer"`
	Mask      MaskConfig      `json:"mask"`
	// SharedPrefix is the scope of the parameters shared by both modalities
	// (default "/encoder"); gradient masking applies to them only.
	SharedPrefix string `json:"shared_prefix"`
	// Frozen lists scopes (e.g. "/teacher_text") whose variables are never
	// trained, whatever their Trainable flag: GoMLX's LayerNorm marks its
	// gain and offset trainable each time a graph uses them, so frozen
	// models kept in the same store need this.
	Frozen []string `json:"frozen,omitempty"`
	// Seed, if non-zero, seeds the random number generator the graph keeps in the store
	// (dropout) when it has no state yet, making runs reproducible. The state
	// is a store variable ("/#rngState"), saved with every checkpoint.
	Seed int64 `json:"seed"`
	// Devices is the number of devices of the backend the step runs on,
	// data-parallel (parallel.go): every batch input is split along axis 0
	// over a 1-D mesh of that many devices, every variable is replicated,
	// and the result is that of one device on the same global batch. 0 or 1
	// (without Mesh) is the plain single-device step. The global batch must
	// be divisible by Devices.
	Devices int `json:"devices,omitempty"`
	// Mesh compiles the data-parallel step even for one device (Devices 0
	// or 1: a mesh of one device), to try the distributed path where only
	// one device is present.
	Mesh bool `json:"mesh,omitempty"`
	// Combine selects the rule combining the two task gradients on the
	// shared encoder (combine.go); the zero value is sum, or mask when
	// Mask.Enabled.
	Combine CombineConfig `json:"combine"`
	// DiagnosticsEvery K > 0 makes every K-th step also measure the conflict
	// between ∇L_txt and ∇L_img on the shared encoder (conflicts.go), in
	// StepResult.Conflicts.
	DiagnosticsEvery int `json:"diagnostics_every,omitempty"`
}

// MeshDevices is the size of the device mesh of the step: 0 for the plain
// single-device step, else max(Devices, 1).
func (c *Config) MeshDevices() int {
	if c.Devices > 1 || c.Mesh {
		return max(c.Devices, 1)
	}
	return 0
}

func (c *Config) sharedPrefix() string {
	if c.SharedPrefix == "" {
		return DefaultSharedPrefix
	}
	return strings.TrimSuffix(c.SharedPrefix, "/")
}

// IsShared reports whether a parameter path belongs to the shared encoder.
func (c *Config) IsShared(path string) bool {
	return underScope(path, c.sharedPrefix())
}

// StepResult holds the outcome of one training step.
type StepResult struct {
	// Step is the number of completed steps after this one.
	Step      int
	LossText  float64 // valid when HasText
	LossImage float64 // valid when HasImage
	HasText   bool
	HasImage  bool
	// LearningRate used by this update.
	LearningRate float64
	// GradNorm is the global L2 norm of the combined gradient before clipping.
	GradNorm float64
	// Extra holds the LossFn's extra scalars.
	Extra map[string]float64
	// MaskUpdate is set when the gradient mask was updated after this step.
	MaskUpdate *MaskReport
	// Conflicts is set on the steps that measured the gradient conflict
	// (Config.DiagnosticsEvery).
	Conflicts *ConflictReport
}

// NonFiniteError reports a step whose loss or gradient was not finite. The
// update of that step was not applied: the store keeps its previous values.
type NonFiniteError struct {
	Step                int // the step that failed (1-based: completed steps + 1)
	LossText, LossImage float64
	HasText, HasImage   bool
	GradNorm            float64
}

func (e *NonFiniteError) Error() string {
	var parts []string
	if e.HasText {
		parts = append(parts, fmt.Sprintf("loss_text=%g", e.LossText))
	}
	if e.HasImage {
		parts = append(parts, fmt.Sprintf("loss_image=%g", e.LossImage))
	}
	parts = append(parts, fmt.Sprintf("grad_norm=%g", e.GradNorm))
	return fmt.Sprintf("non-finite loss at step %d (%s): update not applied", e.Step, strings.Join(parts, ", "))
}

// Trainer compiles one training step: the losses, their gradients (combined
// by gradient masking when enabled), global-norm clipping and the AdamW
// update, all in one graph.
type Trainer struct {
	backend compute.Backend
	store   *mlmodel.Store
	lossFn  LossFn
	cfg     Config
	// execs holds the compiled step per phase (see stepPhase), each compiled
	// on first use.
	execs map[stepKey]*mlmodel.Exec
	// nextStep caches the number of completed steps (-1: not read yet).
	nextStep int
	mask     *GradMask
	dp       *dataParallel // nil: the plain single-device step

	mu         sync.Mutex
	built      bool
	hasText    bool
	hasImage   bool
	extraNames []string
	// conflictBlocks names the rows of the diagnostics output.
	conflictBlocks []string

	// captureGrads makes the step also return the combined gradients (before
	// clipping) in lastGrads, in the order of gradParams. Tests only.
	captureGrads bool
	gradParams   []*mlmodel.Variable
	lastGrads    []*tensors.Tensor
}

// NewTrainer returns a Trainer for the variables of store and the losses of
// lossFn. Nothing is compiled until the first Step.
func NewTrainer(backend compute.Backend, store *mlmodel.Store, lossFn LossFn, cfg Config) (*Trainer, error) {
	if backend == nil || store == nil || lossFn == nil {
		return nil, errors.New("train.NewTrainer: backend, store and lossFn are required")
	}
	if err := cfg.Optimizer.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Mask.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.ValidateCombine(); err != nil {
		return nil, err
	}
	if cfg.Devices < 0 {
		return nil, fmt.Errorf("train.NewTrainer: devices must be >= 0, got %d", cfg.Devices)
	}
	t := &Trainer{backend: backend, store: store, lossFn: lossFn, cfg: cfg,
		execs: map[stepKey]*mlmodel.Exec{}, nextStep: -1}
	if n := cfg.MeshDevices(); n > 0 {
		var err error
		if t.dp, err = newDataParallel(n); err != nil {
			return nil, err
		}
		if err := t.dp.check(backend); err != nil {
			return nil, err
		}
	}
	if cfg.Mask.Enabled {
		t.mask = newGradMask(store, cfg.Mask)
	}
	if cfg.Seed != 0 && store.GetVariable("/"+mlmodel.RNGStateVariableName) == nil {
		if err := store.SetRNGStateFromSeed(cfg.Seed); err != nil {
			return nil, fmt.Errorf("seeding the random number generator: %w", err)
		}
	}
	if _, err := t.execFor(stepKey{phase: phasePlain}); err != nil {
		return nil, err
	}
	return t, nil
}

// stepPhase selects the form of the compiled step. Without gradient masking
// there is one (phasePlain). With it, the combination rule and the
// accumulation of |∇L_txt| change with the schedule; choosing the form on
// the host, instead of switching inside the graph, spares the pure-Go
// backend two passes and two allocations over the shared parameters per
// step (on the base preset, 340 MB each):
//
//   - phaseSum: before the first update, g = ∇L_txt + ∇L_img, accumulating;
//   - phaseMasked: g = M⊙∇L_txt + (1−M)⊙∇L_img, accumulating for a later update;
//   - phaseFinal: after the last update, g as in phaseMasked, no accumulation.
type stepPhase int

const (
	phasePlain stepPhase = iota
	phaseSum
	phaseMasked
	phaseFinal
)

func (p stepPhase) String() string {
	return [...]string{"TrainStep", "TrainStepSum", "TrainStepMasked", "TrainStepFinal"}[p]
}

// stepKey selects a compiled step: the phase, and whether it also measures
// the gradient conflict (conflicts.go).
type stepKey struct {
	phase stepPhase
	diag  bool
}

// execFor returns the compiled step of a phase, creating it on first use.
func (t *Trainer) execFor(key stepKey) (*mlmodel.Exec, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.execs[key]; e != nil {
		return e, nil
	}
	exec, err := mlmodel.NewExec(t.backend, t.store, func(scope *mlmodel.Scope, g *Graph, inputs []*Node) []*Node {
		return t.stepGraph(scope, g, inputs, key)
	})
	if err != nil {
		return nil, fmt.Errorf("creating the training step: %w", err)
	}
	name := key.phase.String()
	if key.diag {
		name += "Diagnostics"
	}
	exec = exec.WithName(name)
	if t.dp != nil {
		exec.AutoSharding(t.dp.mesh).WithInputShardingSpecs(t.dp.batch).WithOutputShardingSpecs(t.dp.replicated)
	}
	t.execs[key] = exec
	return exec, nil
}

// phase returns the phase of the next step.
func (t *Trainer) phase() (stepPhase, error) {
	if t.mask == nil {
		return phasePlain, nil
	}
	active, err := t.mask.isActive()
	if err != nil {
		return 0, err
	}
	if !active {
		return phaseSum, nil
	}
	if t.nextStep < 0 {
		if t.nextStep, err = t.CurrentStep(); err != nil {
			return 0, err
		}
	}
	steps := t.cfg.Mask.UpdateSteps()
	if len(steps) > 0 && t.nextStep < steps[len(steps)-1] {
		return phaseMasked, nil
	}
	return phaseFinal, nil
}

// Devices returns the number of devices the step runs on (1 for the plain step).
func (t *Trainer) Devices() int {
	if t.dp == nil {
		return 1
	}
	return t.dp.n
}

// Store returns the variables' store.
func (t *Trainer) Store() *mlmodel.Store { return t.store }

// Config returns the configuration.
func (t *Trainer) Config() Config { return t.cfg }

// Mask returns the gradient mask, or nil when masking is disabled.
func (t *Trainer) Mask() *GradMask { return t.mask }

// CurrentStep returns the number of completed steps (0 before the first).
func (t *Trainer) CurrentStep() (int, error) {
	v := t.store.GetVariable(StepVariablePath)
	if v == nil {
		return 0, nil
	}
	val, err := v.Value()
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", StepVariablePath, err)
	}
	return int(tensors.ToScalar[int64](val)), nil
}

// trainableParams lists, in store order, the float variables marked
// trainable and used by the graph. Internal variables ("#..."), such as the
// random number generator state, are never trained.
func trainableParams(store *mlmodel.Store, g *Graph, frozen ...string) []*mlmodel.Variable {
	var out []*mlmodel.Variable
	for v := range store.IterVariables() {
		if v.Trainable && v.DType().IsFloat() && !strings.HasPrefix(v.Name(), "#") && v.InUseByGraph(g) &&
			!slices.ContainsFunc(frozen, func(p string) bool { return underScope(v.Path(), p) }) {
			out = append(out, v)
		}
	}
	return out
}

// underScope reports whether path is scope or inside it.
func underScope(path, scope string) bool {
	scope = strings.TrimSuffix(scope, "/")
	return path == scope || strings.HasPrefix(path, scope+"/")
}

func nodesOf(g *Graph, vars []*mlmodel.Variable) []*Node {
	out := make([]*Node, len(vars))
	for i, v := range vars {
		out[i] = v.NodeValue(g)
	}
	return out
}

// stepOutputs are the results of the compiled step, by name: T is *Node
// in the graph and *tensors.Tensor after it ran. flatten and
// unflattenStepOutputs fix their order in this one place.
type stepOutputs[T any] struct {
	LossText, LossImage T   // float32 scalars (0 for a missing modality)
	LearningRate        T   // float32: the rate of this update
	GradNorm            T   // float32: global norm before clipping
	OK                  T   // float32 0/1: the loss and gradient were finite
	Step                T   // int64: completed steps after this one
	Extra               []T // the LossFn's extras, in sorted name order
	Diag                []T // none, or the conflict statistics per block (conflicts.go)
	Grads               []T // the combined gradients before clipping (tests only)
}

const numFixedOutputs = 6

func (o stepOutputs[T]) flatten() []T {
	out := []T{o.LossText, o.LossImage, o.LearningRate, o.GradNorm, o.OK, o.Step}
	return append(append(append(out, o.Extra...), o.Diag...), o.Grads...)
}

// unflattenStepOutputs is the inverse of flatten, given the number of
// extras and of diagnostics outputs.
func unflattenStepOutputs[T any](flat []T, numExtra, numDiag int) (stepOutputs[T], error) {
	if len(flat) < numFixedOutputs+numExtra+numDiag {
		return stepOutputs[T]{}, fmt.Errorf("got %d outputs, want at least %d", len(flat), numFixedOutputs+numExtra+numDiag)
	}
	e, d := numFixedOutputs+numExtra, numFixedOutputs+numExtra+numDiag
	return stepOutputs[T]{LossText: flat[0], LossImage: flat[1], LearningRate: flat[2], GradNorm: flat[3],
		OK: flat[4], Step: flat[5], Extra: flat[numFixedOutputs:e], Diag: flat[e:d], Grads: flat[d:]}, nil
}

// stepGraph builds the training step; its outputs are a stepOutputs.
func (t *Trainer) stepGraph(scope *mlmodel.Scope, g *Graph, inputs []*Node, key stepKey) []*Node {
	phase := key.phase
	scope.SetTraining(g, true)
	losses := t.lossFn(scope, g, inputs)
	for name, l := range map[string]*Node{"text": losses.Text, "image": losses.Image} {
		if l != nil && !l.Shape().IsScalar() {
			exceptions.Panicf("the %s loss must be a scalar, got %s", name, l.Shape())
		}
	}
	hasText, hasImage := losses.Text != nil, losses.Image != nil
	if !hasText && !hasImage {
		exceptions.Panicf("the loss function returned neither a text nor an image loss")
	}
	params := trainableParams(t.store, g, t.cfg.Frozen...)
	if len(params) == 0 {
		exceptions.Panicf("no trainable variables are used by the losses")
	}
	paramNodes := nodesOf(g, params)
	masking := t.mask != nil
	rule := t.cfg.combineRule()
	separate := rule.separateGradients() || key.diag
	if separate && !(hasText && hasImage) {
		exceptions.Panicf("combine rule %s (or the diagnostics) needs both a text and an image loss in every step (text: %v, image: %v)",
			rule, hasText, hasImage)
	}

	f32 := func(n *Node) *Node { return ConvertDType(n, dtypes.Float32) }
	var total *Node
	switch {
	case hasText && hasImage:
		total = Add(f32(losses.Text), f32(losses.Image))
	case hasText:
		total = f32(losses.Text)
	default:
		total = f32(losses.Image)
	}

	var grads, gradText []*Node
	var sharedParams []*mlmodel.Variable
	var sharedIdx []int
	var diag *Node
	var diagBlocks []string
	if separate {
		gradText = Gradient(losses.Text, paramNodes...)
		gradImage := Gradient(losses.Image, paramNodes...)
		grads = make([]*Node, len(params))
		var gtShared, giShared []*Node
		for i, p := range params {
			if t.cfg.IsShared(p.Path()) {
				sharedParams = append(sharedParams, p)
				sharedIdx = append(sharedIdx, i)
				gtShared = append(gtShared, gradText[i])
				giShared = append(giShared, gradImage[i])
			} else {
				// Modality-specific parameters take the gradient of whichever
				// loss touches them (the other one is zero).
				grads[i] = t.cfg.Combine.combineOwn(rule, gradText[i], gradImage[i])
			}
		}
		if key.diag {
			groups := blockGroups(sharedParams, t.cfg.Mask.blockKey)
			if len(groups) == 0 {
				exceptions.Panicf("gradient-conflict diagnostics: no shared parameters under %q", t.cfg.sharedPrefix())
			}
			diag = conflictGraph(groups, gtShared, giShared)
			for _, grp := range groups {
				diagBlocks = append(diagBlocks, grp.name)
			}
		}
		var combined []*Node
		if masking {
			combined = t.mask.combineGraph(g, sharedParams, gtShared, giShared, phase != phaseSum)
		} else {
			combined = t.cfg.Combine.combineShared(rule, gtShared, giShared)
		}
		for j, i := range sharedIdx {
			grads[i] = combined[j]
		}
		gradText = gtShared
	} else {
		// One backward pass of the summed (or weighted) loss:
		// ∇(L_txt+L_img) = ∇L_txt + ∇L_img.
		grads = Gradient(t.cfg.Combine.weightedLoss(rule, losses.Text, losses.Image), paramNodes...)
	}

	norm := globalNorm(grads)
	ok := LogicalAnd(IsFinite(total), IsFinite(norm))
	if masking {
		t.mask.accumulateGraph(ok, sharedParams, gradText, phase != phaseFinal)
	}
	preClip := grads
	var scale *Node
	if t.cfg.Optimizer.ClipNorm > 0 {
		scale = clipScale(norm, t.cfg.Optimizer.ClipNorm)
	}
	lr := t.cfg.Optimizer.adamWUpdate(params, grads, scale, ok)
	newStep := stepVariable(t.store).NodeValue(g)

	zero := ScalarZero(g, dtypes.Float32)
	lossText, lossImage := zero, zero
	if hasText {
		lossText = f32(losses.Text)
	}
	if hasImage {
		lossImage = f32(losses.Image)
	}
	out := stepOutputs[*Node]{LossText: lossText, LossImage: lossImage, LearningRate: lr, GradNorm: norm,
		OK: f32(ok), Step: newStep}
	if diag != nil {
		out.Diag = []*Node{diag}
	}
	extraNames := slices.Sorted(maps.Keys(losses.Extra))
	for _, name := range extraNames {
		x := losses.Extra[name]
		if x == nil || !x.Shape().IsScalar() {
			exceptions.Panicf("extra metric %q must be a scalar", name)
		}
		out.Extra = append(out.Extra, f32(StopGradient(x)))
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.built && (t.hasText != hasText || t.hasImage != hasImage || !slices.Equal(t.extraNames, extraNames)) {
		exceptions.Panicf("the loss function returned different losses for a new input shape " +
			"(compile one Trainer per set of losses)")
	}
	t.built, t.hasText, t.hasImage, t.extraNames = true, hasText, hasImage, extraNames
	if diag != nil {
		t.conflictBlocks = diagBlocks
	}
	if t.captureGrads {
		t.gradParams = params
		out.Grads = preClip
	}
	return out.flatten()
}

// isZeroGradient reports whether n is the zero tensor that Gradient returns
// for a parameter the loss does not reach: a broadcast scalar 0 constant.
func isZeroGradient(n *Node) bool {
	if n.Type() != NodeTypeBroadcastInDim || len(n.Inputs()) != 1 {
		return false
	}
	c := n.Inputs()[0].ConstantValue()
	if c == nil || c.Shape().Size() != 1 {
		return false
	}
	v, err := tensors.CopyFlatData[float32](c)
	return err == nil && v[0] == 0
}

// addGradients is a + b, skipping the addition (a pass over the tensor, which
// for the vocabulary-sized embedding and MLM weights costs more than the
// masking of the encoder) when one side is a structural zero.
func addGradients(a, b *Node) *Node {
	switch {
	case isZeroGradient(a) && a.DType() == b.DType():
		return b
	case isZeroGradient(b) && a.DType() == b.DType():
		return a
	}
	return Add(a, b)
}

// Step runs one training step on a batch and, when the gradient-mask
// schedule says so, updates the mask afterwards. A non-finite loss or
// gradient returns a *NonFiniteError and leaves every variable as it was.
func (t *Trainer) Step(inputs ...*tensors.Tensor) (*StepResult, error) {
	args := make([]any, len(inputs))
	if t.dp != nil {
		sharded, err := t.dp.shard(inputs)
		if err != nil {
			return nil, fmt.Errorf("training step on %d devices: %w", t.dp.n, err)
		}
		defer func() {
			for _, d := range sharded {
				_ = d.FinalizeAll()
			}
		}()
		for i, d := range sharded {
			args[i] = d
		}
	} else {
		for i, x := range inputs {
			args[i] = x
		}
	}
	phase, err := t.phase()
	if err != nil {
		return nil, fmt.Errorf("training step: %w", err)
	}
	diag, err := t.diagnosticsDue()
	if err != nil {
		return nil, fmt.Errorf("training step: %w", err)
	}
	exec, err := t.execFor(stepKey{phase: phase, diag: diag})
	if err != nil {
		return nil, err
	}
	var outputs []*tensors.Tensor
	err = exceptions.TryCatch[error](func() {
		var err error
		outputs, err = exec.Exec(args...)
		if err != nil {
			panic(err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("training step: %w", err)
	}
	if t.dp != nil {
		if outputs, err = t.dp.firstDevice(outputs); err != nil {
			return nil, fmt.Errorf("training step: %w", err)
		}
	}
	t.mu.Lock()
	numExtra := len(t.extraNames)
	extraNames := t.extraNames
	hasText, hasImage := t.hasText, t.hasImage
	t.mu.Unlock()
	numDiag := 0
	if diag {
		numDiag = 1
	}
	out, err := unflattenStepOutputs(outputs, numExtra, numDiag)
	if err != nil {
		return nil, fmt.Errorf("training step: %w", err)
	}
	scalar := func(x *tensors.Tensor) float64 { return float64(tensors.ToScalar[float32](x)) }
	res := &StepResult{
		LossText:     scalar(out.LossText),
		LossImage:    scalar(out.LossImage),
		HasText:      hasText,
		HasImage:     hasImage,
		LearningRate: scalar(out.LearningRate),
		GradNorm:     scalar(out.GradNorm),
		Step:         int(tensors.ToScalar[int64](out.Step)),
		Extra:        make(map[string]float64, numExtra),
	}
	t.nextStep = res.Step
	for i, name := range extraNames {
		res.Extra[name] = scalar(out.Extra[i])
	}
	if t.captureGrads {
		t.lastGrads = out.Grads
	}
	if diag {
		if res.Conflicts, err = t.conflictReport(res.Step, out.Diag[0]); err != nil {
			return res, fmt.Errorf("step %d: %w", res.Step, err)
		}
	}
	if scalar(out.OK) == 0 {
		return res, &NonFiniteError{Step: res.Step + 1, LossText: res.LossText, LossImage: res.LossImage,
			HasText: hasText, HasImage: hasImage, GradNorm: res.GradNorm}
	}
	if t.mask != nil {
		steps := t.cfg.Mask.UpdateSteps()
		if k := slices.Index(steps, res.Step); k >= 0 {
			rep, err := t.mask.update(k+1, res.Step)
			if err != nil {
				return res, fmt.Errorf("step %d: %w", res.Step, err)
			}
			res.MaskUpdate = rep
		}
	}
	return res, nil
}

// Close releases the compiled steps. The store is left alone.
func (t *Trainer) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.execs {
		e.Finalize()
	}
}
