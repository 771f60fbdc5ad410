package train

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like the equations.
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
)

// Gradient masking (docs/method.md, "Gradient masking"). For every parameter θ of
// the shared encoder a 0/1 mask M combines the two task gradients:
//
//	g = M ⊙ ∇θ L_txt + (1 − M) ⊙ ∇θ L_img
//
// 1 keeps the text gradient, 0 hands the entry to the image task. Before the
// first mask update the step uses the plain sum ∇L_txt + ∇L_img; the scalar
// variable "active" (0 until the first update) says which rule applies, and
// the Trainer runs the step compiled for that rule (and, after the last
// update, one that no longer accumulates |∇L_txt|). A mask of ones is
// therefore not the same as "no masking".
//
// M is built iteratively, as in iterative magnitude pruning: K = ⌈β/δ⌉ updates
// spaced evenly over [StartStep, EndStep]; update k raises the share of zeros
// to min(k·δ, β), choosing among the entries still at 1 those with the smallest
// mean |∇L_txt| since the previous update. Entries handed to images never come
// back.
//
// Masks, accumulators and the switch are non-trainable variables of the
// store, so changing them never recompiles a step and they are saved with
// every checkpoint.
const (
	maskScope      = "/gradmask/mask"    // + parameter path: the mask (bool: true keeps the text gradient; float32 0/1 in older checkpoints)
	accScope       = "/gradmask/acc"     // + parameter path: Σ|∇L_txt| since the last update
	maskActivePath = "/gradmask/#active" // float32 scalar: 0 before the first update, then 1
	maskCountPath  = "/gradmask/#count"  // float32 scalar: steps accumulated since the last update
)

// RankScope says which entries compete when the mask is updated.
type RankScope string

const (
	// RankPerTensor ranks every parameter tensor on its own: each tensor
	// reaches the target sparsity (an ablation).
	RankPerTensor RankScope = "tensor"
	// RankPerBlock ranks together the tensors of one block (see
	// MaskConfig.BlockKey): each block reaches the target (an ablation).
	RankPerBlock RankScope = "block"
	// RankGlobal ranks all shared parameters together (the default), as
	// global iterative magnitude pruning does: blocks can end at different
	// sparsities, which is what the paper's per-block sparsity plot shows;
	// the other two scopes make every tensor or block equal by construction.
	RankGlobal RankScope = "global"
)

// MaskConfig configures gradient masking.
type MaskConfig struct {
	Enabled bool `json:"enabled"`
	// FinalSparsity β: the share of zeros in the mask after the last update, in (0, 1].
	FinalSparsity float64 `json:"final_sparsity"`
	// Increment δ of sparsity per update, in (0, β].
	Increment float64 `json:"increment"`
	// StartStep and EndStep bound the part of training the updates are spread
	// over: update k of K happens after step StartStep + round(k·(EndStep−StartStep)/K),
	// so gradients are always accumulated over a full interval before an update.
	StartStep int `json:"start_step"`
	EndStep   int `json:"end_step"`
	// Ranking scope (default global).
	Ranking RankScope `json:"ranking"`
	// BlockKey maps a parameter path to its block for RankPerBlock and for the
	// per-block report; nil means DefaultBlockKey.
	BlockKey func(path string) string `json:"-"`
}

// Validate checks the configuration (only when Enabled).
func (c *MaskConfig) Validate() error {
	if !c.Enabled {
		return nil
	}
	if err := c.ValidateRanges(); err != nil {
		return err
	}
	if c.EndStep-c.StartStep < c.NumUpdates() {
		return fmt.Errorf("gradient mask: the span [%d, %d] is too short for %d updates (final_sparsity %g in increments of %g): widen it to at least %d steps, or raise the increment",
			c.StartStep, c.EndStep, c.NumUpdates(), c.FinalSparsity, c.Increment, c.NumUpdates())
	}
	return nil
}

// ValidateRanges checks each field's range, masking enabled or not (so that
// a configuration can refuse a value typed on purpose even when it is unused).
func (c *MaskConfig) ValidateRanges() error {
	if err := (Range{Lo: 0, Hi: 1, LoOpen: true}).Check("gradient_mask.final_sparsity", c.FinalSparsity); err != nil {
		return err
	}
	if err := (Range{Lo: 0, Hi: c.FinalSparsity, LoOpen: true, Note: "at most final_sparsity"}).Check("gradient_mask.increment", c.Increment); err != nil {
		return err
	}
	if err := AtLeast(0).Check("gradient_mask.start_step", float64(c.StartStep)); err != nil {
		return err
	}
	switch c.Ranking {
	case "", RankPerTensor, RankPerBlock, RankGlobal:
		return nil
	}
	return fmt.Errorf("gradient mask: unknown ranking %q (want tensor, block or global)", c.Ranking)
}

func (c *MaskConfig) ranking() RankScope {
	if c.Ranking == "" {
		return RankGlobal
	}
	return c.Ranking
}

func (c *MaskConfig) blockKey(path string) string {
	if c.BlockKey != nil {
		return c.BlockKey(path)
	}
	return DefaultBlockKey(path)
}

// NumUpdates is K = ⌈β/δ⌉ (with a small tolerance for 0.3/0.1-style rounding).
func (c *MaskConfig) NumUpdates() int {
	if !(c.Increment > 0) {
		return 0
	}
	return int(math.Ceil(c.FinalSparsity/c.Increment - 1e-9))
}

// UpdateSteps returns the steps (counted as completed updates) after which
// the mask is updated, in order.
func (c *MaskConfig) UpdateSteps() []int {
	k := c.NumUpdates()
	steps := make([]int, k)
	span := c.EndStep - c.StartStep
	for i := 1; i <= k; i++ {
		steps[i-1] = c.StartStep + (i*span+k/2)/k
	}
	return steps
}

// TargetSparsity of update k (1-based): min(k·δ, β).
func (c *MaskConfig) TargetSparsity(k int) float64 {
	if k >= c.NumUpdates() {
		return c.FinalSparsity
	}
	return min(float64(k)*c.Increment, c.FinalSparsity)
}

// UpdatesDoneAt returns how many mask updates have happened once step steps are complete.
func (c *MaskConfig) UpdatesDoneAt(step int) int {
	n := 0
	for _, s := range c.UpdateSteps() {
		if s <= step {
			n++
		}
	}
	return n
}

var numberedScope = regexp.MustCompile(`^[A-Za-z]*[_-]?[0-9]+$`)

// DefaultBlockKey maps a parameter path to its block: the path up to the
// first numbered scope after the root ("/encoder/layer_3/attention/query/weights"
// → "/encoder/layer_3"); paths without one map to their first two scopes
// ("/encoder/final_norm/gain" → "/encoder/final_norm").
func DefaultBlockKey(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i := 1; i < len(parts)-1; i++ {
		if numberedScope.MatchString(parts[i]) {
			return "/" + strings.Join(parts[:i+1], "/")
		}
	}
	if len(parts) >= 3 {
		return "/" + strings.Join(parts[:2], "/")
	}
	return "/" + parts[0]
}

// MaskReport is the state of the mask after an update (or at any time):
// shares of zeros overall, per tensor and per block. Maps are keyed by
// parameter path and block key.
type MaskReport struct {
	Step      int                `json:"step"`
	Update    int                `json:"update"` // 1-based index of the update; 0 for a plain reading
	Target    float64            `json:"target,omitempty"`
	Ranking   RankScope          `json:"ranking"`
	Sparsity  float64            `json:"sparsity"`
	PerTensor map[string]float64 `json:"per_tensor"`
	PerBlock  map[string]float64 `json:"per_block"`
}

// GradMask holds the masks of the shared parameters and performs the host
// side of the schedule. It is created by the Trainer when masking is enabled.
type GradMask struct {
	cfg    MaskConfig
	store  *mlmodel.Store
	params []*mlmodel.Variable // shared parameters, in store order

	// sparsity caches the overall share of zeros: it changes only at updates.
	sparsity      float64
	sparsityKnown bool
}

func newGradMask(store *mlmodel.Store, cfg MaskConfig) *GradMask {
	return &GradMask{cfg: cfg, store: store}
}

// Config returns the mask configuration.
func (m *GradMask) Config() MaskConfig { return m.cfg }

// Params returns the shared parameters the masks belong to (known after the
// first step is compiled).
func (m *GradMask) Params() []*mlmodel.Variable { return slices.Clone(m.params) }

// MaskVariable returns the mask variable of a shared parameter (nil before
// the step is compiled).
func (m *GradMask) MaskVariable(param *mlmodel.Variable) *mlmodel.Variable {
	return m.store.GetVariable(maskScope + param.Path())
}

// maskVariable returns the mask variable at fullPath, creating it all true
// (every entry keeps the text gradient) when missing. Masks restored from
// older checkpoints may be float32 0/1: both dtypes work.
func (m *GradMask) maskVariable(fullPath string, dims []int) *mlmodel.Variable {
	v := m.store.GetVariable(fullPath)
	if v == nil {
		ones := make([]bool, shapes.Make(dtypes.Bool, dims...).Size())
		for i := range ones {
			ones[i] = true
		}
		v = m.store.VariableWithValue(fullPath, tensors.FromFlatDataAndDimensions(ones, dims...))
	}
	if !slices.Equal(v.Shape().Dimensions, dims) {
		panic(fmt.Errorf("mask variable %q has shape %s, want dimensions %v", fullPath, v.Shape(), dims))
	}
	if d := v.DType(); d != dtypes.Bool && d != dtypes.Float32 {
		panic(fmt.Errorf("mask variable %q has dtype %s, want bool (or float32 0/1)", fullPath, d))
	}
	return v.SetTrainable(false)
}

// MaskValues returns the mask of a shared parameter as 0/1 values (1 keeps
// the text gradient).
func (m *GradMask) MaskValues(param *mlmodel.Variable) ([]float32, error) {
	v := m.MaskVariable(param)
	if v == nil {
		return nil, fmt.Errorf("gradient mask: no mask variable for %s", param.Path())
	}
	return readMask(v)
}

// SetMaskValues sets the mask of a shared parameter from 0/1 values.
func (m *GradMask) SetMaskValues(param *mlmodel.Variable, values []float32) error {
	v := m.MaskVariable(param)
	if v == nil {
		return fmt.Errorf("gradient mask: no mask variable for %s", param.Path())
	}
	return writeMask(v, values)
}

func readMask(v *mlmodel.Variable) ([]float32, error) {
	if v.DType() != dtypes.Bool {
		return readFloat32(v)
	}
	b, err := readFlat[bool](v)
	if err != nil {
		return nil, err
	}
	out := make([]float32, len(b))
	for i, x := range b {
		if x {
			out[i] = 1
		}
	}
	return out, nil
}

func writeMask(v *mlmodel.Variable, values []float32) error {
	dims := v.Shape().Dimensions
	if len(values) != v.Shape().Size() {
		return fmt.Errorf("mask of %s: %d values for shape %v", v.Path(), len(values), dims)
	}
	var t *tensors.Tensor
	if v.DType() == dtypes.Bool {
		b := make([]bool, len(values))
		for i, x := range values {
			b[i] = x != 0
		}
		t = tensors.FromFlatDataAndDimensions(b, dims...)
	} else {
		t = tensors.FromFlatDataAndDimensions(slices.Clone(values), dims...)
	}
	if err := v.SetValue(t); err != nil {
		return fmt.Errorf("writing %s: %w", v.Path(), err)
	}
	return nil
}

// combineGraph builds g = M⊙gt + (1−M)⊙gi when masked, else gt + gi, for the
// shared parameters params, whose text and image gradients are gt and gi.
// It declares the masks and the switch either way.
func (m *GradMask) combineGraph(g *Graph, params []*mlmodel.Variable, gt, gi []*Node, masked bool) []*Node {
	m.params = slices.Clone(params)
	m.sparsityKnown = false
	zerosVariable(m.store, maskActivePath, shapes.Make(dtypes.Float32))
	out := make([]*Node, len(params))
	for i, p := range params {
		maskVar := m.maskVariable(maskScope+p.Path(), p.Shape().Dimensions)
		if !masked {
			out[i] = Add(gt[i], gi[i])
			continue
		}
		// M⊙gt + (1−M)⊙gi for a 0/1 mask is a select: exact, and one pass
		// over the tensor.
		keep := maskVar.NodeValue(g)
		if keep.DType() != dtypes.Bool {
			keep = NotEqual(keep, ScalarZero(g, keep.DType()))
		}
		out[i] = Where(keep, gt[i], gi[i])
	}
	return out
}

// isActive reports whether masking is on (after the first update): the
// value of the switch variable, false before it exists.
func (m *GradMask) isActive() (bool, error) {
	v := m.store.GetVariable(maskActivePath)
	if v == nil {
		return false, nil
	}
	t, err := v.Value()
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", maskActivePath, err)
	}
	return tensors.ToScalar[float32](t) > 0, nil
}

// accumulateGraph adds |∇L_txt| to the accumulators and 1 to the step count,
// when ok (bool scalar) holds. With accumulate false (no update ahead) it
// only declares the variables.
func (m *GradMask) accumulateGraph(ok *Node, params []*mlmodel.Variable, gt []*Node, accumulate bool) {
	g := ok.Graph()
	countVar := zerosVariable(m.store, maskCountPath, shapes.Make(dtypes.Float32))
	if !accumulate {
		for _, p := range params {
			zerosVariable(m.store, accScope+p.Path(), float32Shape(p))
		}
		return
	}
	count := countVar.NodeValue(g)
	countVar.SetNodeValue(Where(ok, AddScalar(count, 1.0), count))
	for i, p := range params {
		accVar := zerosVariable(m.store, accScope+p.Path(), float32Shape(p))
		acc := accVar.NodeValue(g)
		accVar.SetNodeValue(Where(ok, Add(acc, ConvertDType(Abs(gt[i]), dtypes.Float32)), acc))
	}
}

func float32Shape(v *mlmodel.Variable) shapes.Shape {
	s := v.Shape().Clone()
	s.DType = dtypes.Float32
	return s
}

// rankGroup is a set of tensors competing for zeros in one update.
type rankGroup struct {
	name    string
	members []int // indices into params
}

func (m *GradMask) groups() []rankGroup {
	switch m.cfg.ranking() {
	case RankGlobal:
		all := make([]int, len(m.params))
		for i := range all {
			all[i] = i
		}
		return []rankGroup{{name: "global", members: all}}
	case RankPerBlock:
		return blockGroups(m.params, m.cfg.blockKey)
	default:
		out := make([]rankGroup, len(m.params))
		for i, p := range m.params {
			out[i] = rankGroup{name: p.Path(), members: []int{i}}
		}
		return out
	}
}

func readFloat32(v *mlmodel.Variable) ([]float32, error) { return readFlat[float32](v) }

// readFlat copies a variable's value to the host as a flat slice.
func readFlat[T bool | float32](v *mlmodel.Variable) ([]T, error) {
	t, err := v.Value()
	if err == nil {
		var data []T
		if data, err = tensors.CopyFlatData[T](t); err == nil {
			return data, nil
		}
	}
	return nil, fmt.Errorf("reading %s: %w", v.Path(), err)
}

func (m *GradMask) readMasks() ([][]float32, error) {
	masks := make([][]float32, len(m.params))
	for i, p := range m.params {
		var err error
		if masks[i], err = m.MaskValues(p); err != nil {
			return nil, err
		}
	}
	return masks, nil
}

// update performs mask update k (1-based) after step: every rank group
// reaches round(target·n) zeros, the new zeros taken among the entries still
// at 1 with the smallest accumulated |∇L_txt| (ties: first in store order,
// then flat index). Accumulators are reset and masking becomes active.
func (m *GradMask) update(k, step int) (*MaskReport, error) {
	if len(m.params) == 0 {
		return nil, fmt.Errorf("gradient mask update %d at step %d: no shared parameters (none under the shared prefix?)", k, step)
	}
	target := m.cfg.TargetSparsity(k)
	masks, err := m.readMasks()
	if err != nil {
		return nil, err
	}
	accs := make([][]float32, len(m.params))
	for i, p := range m.params {
		av := m.store.GetVariable(accScope + p.Path())
		if av == nil {
			return nil, fmt.Errorf("gradient mask: no accumulator for %s", p.Path())
		}
		if accs[i], err = readFloat32(av); err != nil {
			return nil, err
		}
	}
	// The mean is Σ|g|/count with one count for all entries, so ranking the
	// sums ranks the means.
	for _, grp := range m.groups() {
		selectZeros(grp.members, masks, accs, target)
	}
	for i, p := range m.params {
		dims := p.Shape().Dimensions
		if err := writeMask(m.MaskVariable(p), masks[i]); err != nil {
			return nil, err
		}
		accShape := shapes.Make(dtypes.Float32, dims...)
		if err := m.store.GetVariable(accScope + p.Path()).SetValue(tensors.FromShape(accShape)); err != nil {
			return nil, fmt.Errorf("resetting accumulator of %s: %w", p.Path(), err)
		}
	}
	if err := m.store.GetVariable(maskCountPath).SetValue(tensors.FromScalar(float32(0))); err != nil {
		return nil, fmt.Errorf("resetting mask step count: %w", err)
	}
	if err := m.store.GetVariable(maskActivePath).SetValue(tensors.FromScalar(float32(1))); err != nil {
		return nil, fmt.Errorf("activating the mask: %w", err)
	}
	rep := m.report(masks, step)
	rep.Update, rep.Target = k, target
	m.sparsity, m.sparsityKnown = rep.Sparsity, true
	return rep, nil
}

// selectZeros sets to 0 the entries of the group needed to reach the target
// sparsity. It never sets an entry back to 1.
func selectZeros(members []int, masks, accs [][]float32, target float64) {
	n, zeros := 0, 0
	for _, i := range members {
		n += len(masks[i])
		for _, x := range masks[i] {
			if x == 0 {
				zeros++
			}
		}
	}
	need := int(math.Round(target*float64(n))) - zeros
	if need <= 0 {
		return
	}
	key := func(x float32) float32 {
		if x != x { // NaN ranks last: it is not evidence of a small gradient.
			return float32(math.Inf(1))
		}
		return x
	}
	var vals []float32
	for _, i := range members {
		for j, x := range masks[i] {
			if x != 0 {
				vals = append(vals, key(accs[i][j]))
			}
		}
	}
	slices.Sort(vals)
	threshold := vals[need-1]
	// Strictly smaller entries first, then entries equal to the threshold in
	// order, until exactly need entries are zeroed.
	for _, i := range members {
		for j, x := range masks[i] {
			if x != 0 && key(accs[i][j]) < threshold {
				masks[i][j] = 0
				need--
			}
		}
	}
	for _, i := range members {
		for j, x := range masks[i] {
			if need == 0 {
				return
			}
			if x != 0 && key(accs[i][j]) == threshold {
				masks[i][j] = 0
				need--
			}
		}
	}
}

func (m *GradMask) report(masks [][]float32, step int) *MaskReport {
	rep := &MaskReport{
		Step:      step,
		Ranking:   m.cfg.ranking(),
		PerTensor: map[string]float64{},
		PerBlock:  map[string]float64{},
	}
	blockZeros, blockSize := map[string]int{}, map[string]int{}
	totalZeros, total := 0, 0
	for i, p := range m.params {
		zeros := 0
		for _, x := range masks[i] {
			if x == 0 {
				zeros++
			}
		}
		rep.PerTensor[p.Path()] = float64(zeros) / float64(len(masks[i]))
		key := m.cfg.blockKey(p.Path())
		blockZeros[key] += zeros
		blockSize[key] += len(masks[i])
		totalZeros += zeros
		total += len(masks[i])
	}
	for key, size := range blockSize {
		rep.PerBlock[key] = float64(blockZeros[key]) / float64(size)
	}
	if total > 0 {
		rep.Sparsity = float64(totalZeros) / float64(total)
	}
	return rep
}

// Report reads the current masks and returns their sparsity.
func (m *GradMask) Report(step int) (*MaskReport, error) {
	masks, err := m.readMasks()
	if err != nil {
		return nil, err
	}
	return m.report(masks, step), nil
}

// Sparsity returns the overall share of zeros of the masks (cached between
// updates).
func (m *GradMask) Sparsity() (float64, error) {
	if m.sparsityKnown {
		return m.sparsity, nil
	}
	rep, err := m.Report(0)
	if err != nil {
		return 0, err
	}
	m.sparsity, m.sparsityKnown = rep.Sparsity, true
	return m.sparsity, nil
}

// invalidate forgets cached values after the variables were restored.
func (m *GradMask) invalidate() { m.sparsityKnown = false }
