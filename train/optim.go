package train

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like the equations.
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
)

// DecaySchedule names the learning-rate decay that follows the warm-up.
type DecaySchedule string

const (
	// DecayCosine: half a cosine from the peak to the floor.
	DecayCosine DecaySchedule = "cosine"
	// DecayLinear: a straight line from the peak to the floor.
	DecayLinear DecaySchedule = "linear"
	// DecayConstant: stay at the peak after the warm-up.
	DecayConstant DecaySchedule = "constant"
)

// Variable paths of the optimiser state. The step counts completed updates;
// moments live under "/optimizer/m" and "/optimizer/v" followed by the path of
// the parameter they belong to.
const (
	StepVariablePath = "/optimizer/#step"
	moment1Scope     = "/optimizer/m"
	moment2Scope     = "/optimizer/v"
)

// OptimizerConfig configures AdamW with decoupled weight decay, a linear
// warm-up followed by a decay, and global-norm gradient clipping.
type OptimizerConfig struct {
	// LearningRate is the peak learning rate, reached at the end of the warm-up.
	LearningRate float64 `json:"learning_rate"`
	// MinLearningRate is the floor the decay ends at (0 decays to zero).
	MinLearningRate float64 `json:"min_learning_rate"`
	// WarmupSteps of linear warm-up: update t (0-based) uses LearningRate·(t+1)/WarmupSteps,
	// so the first update already moves the weights.
	WarmupSteps int `json:"warmup_steps"`
	// TotalSteps is the decay horizon: the learning rate reaches the floor at update TotalSteps.
	TotalSteps int `json:"total_steps"`
	// Decay after the warm-up (default cosine).
	Decay DecaySchedule `json:"decay"`
	// Beta1, Beta2, Epsilon of Adam.
	Beta1   float64 `json:"beta1"`
	Beta2   float64 `json:"beta2"`
	Epsilon float64 `json:"epsilon"`
	// WeightDecay λ, decoupled: θ ← θ − lr·λ·θ − lr·m̂/(√v̂+ε).
	WeightDecay float64 `json:"weight_decay"`
	// ClipNorm clips the global L2 norm of the (combined) gradient to this value; 0 disables clipping.
	ClipNorm float64 `json:"clip_norm"`
	// NoDecay, if set, says which parameters get no weight decay. The default
	// (DefaultNoDecay) exempts every tensor of rank ≤ 1: biases, LayerNorm gains
	// and offsets (the embedding LayerNorm included), as BERT does; weight
	// matrices and embedding tables are decayed.
	NoDecay func(v *mlmodel.Variable) bool `json:"-"`
}

// DefaultOptimizerConfig returns BERT-like defaults: peak 1e-4, cosine decay to
// 0, β = (0.9, 0.999), ε = 1e-8, λ = 0.01, gradient clipping at norm 1.
func DefaultOptimizerConfig(totalSteps int) OptimizerConfig {
	return OptimizerConfig{
		LearningRate: 1e-4,
		WarmupSteps:  totalSteps / 10,
		TotalSteps:   totalSteps,
		Decay:        DecayCosine,
		Beta1:        0.9,
		Beta2:        0.999,
		Epsilon:      1e-8,
		WeightDecay:  0.01,
		ClipNorm:     1.0,
	}
}

// DefaultNoDecay exempts tensors of rank ≤ 1 (biases, LayerNorm parameters)
// from weight decay.
func DefaultNoDecay(v *mlmodel.Variable) bool { return v.Shape().Rank() <= 1 }

// Validate checks the configuration.
func (c *OptimizerConfig) Validate() error {
	for _, f := range []struct {
		field string
		v     float64
		r     Range
	}{
		{"learning_rate", c.LearningRate, Above(0)},
		{"min_learning_rate", c.MinLearningRate, Between(0, c.LearningRate).With("at most learning_rate")},
		{"warmup_steps", float64(c.WarmupSteps), AtLeast(0)},
		{"beta1", c.Beta1, Range{Lo: 0, Hi: 1, HiOpen: true}},
		{"beta2", c.Beta2, Range{Lo: 0, Hi: 1, HiOpen: true}},
		{"epsilon", c.Epsilon, Above(0)},
		{"weight_decay", c.WeightDecay, AtLeast(0).With("0: none")},
		{"clip_norm", c.ClipNorm, AtLeast(0).With("0 disables clipping")},
	} {
		if err := f.r.Check("optimizer."+f.field, f.v); err != nil {
			return err
		}
	}
	if c.Decay != DecayConstant && c.Decay != "" && c.TotalSteps <= c.WarmupSteps {
		return &FieldError{Field: "optimizer.warmup_steps", Value: fmt.Sprint(c.WarmupSteps),
			Want: fmt.Sprintf("below total_steps (%d) for %s decay", c.TotalSteps, c.Decay)}
	}
	switch c.Decay {
	case "", DecayCosine, DecayLinear, DecayConstant:
	default:
		return fmt.Errorf("optimizer: unknown decay %q (want cosine, linear or constant)", c.Decay)
	}
	return nil
}

func (c *OptimizerConfig) decay() DecaySchedule {
	if c.Decay == "" {
		return DecayCosine
	}
	return c.Decay
}

// LearningRateAt returns the learning rate of update t (0-based: the first
// update is t = 0). It is the host twin of the schedule computed in the graph, used for
// logging and tests.
func (c *OptimizerConfig) LearningRateAt(t int) float64 {
	peak, floor := c.LearningRate, c.MinLearningRate
	if t < c.WarmupSteps {
		return peak * float64(t+1) / float64(c.WarmupSteps)
	}
	switch c.decay() {
	case DecayConstant:
		return peak
	}
	p := float64(t-c.WarmupSteps) / float64(c.TotalSteps-c.WarmupSteps)
	p = min(max(p, 0), 1)
	if c.decay() == DecayLinear {
		return floor + (peak-floor)*(1-p)
	}
	return floor + (peak-floor)*0.5*(1+math.Cos(math.Pi*p))
}

// learningRateGraph builds the schedule in the graph from the step (int64
// scalar, completed updates); computed in float64, returned as float64.
func (c *OptimizerConfig) learningRateGraph(step *Node) *Node {
	g := step.Graph()
	t := ConvertDType(step, dtypes.Float64)
	peak := Scalar(g, dtypes.Float64, c.LearningRate)
	floor := Scalar(g, dtypes.Float64, c.MinLearningRate)
	var decayed *Node
	switch c.decay() {
	case DecayConstant:
		decayed = peak
	default:
		p := DivScalar(AddScalar(t, -float64(c.WarmupSteps)), float64(c.TotalSteps-c.WarmupSteps))
		p = MinScalar(MaxScalar(p, 0.0), 1.0)
		var frac *Node
		if c.decay() == DecayLinear {
			frac = OneMinus(p)
		} else {
			frac = MulScalar(AddScalar(Cos(MulScalar(p, math.Pi)), 1.0), 0.5)
		}
		decayed = Add(floor, Mul(Sub(peak, floor), frac))
	}
	if c.WarmupSteps <= 0 {
		return decayed
	}
	warm := MulScalar(AddScalar(t, 1.0), c.LearningRate/float64(c.WarmupSteps))
	return Where(LessThan(t, Scalar(g, dtypes.Float64, float64(c.WarmupSteps))), warm, decayed)
}

// globalNorm returns sqrt(Σ g²) over all gradients, in float32.
func globalNorm(grads []*Node) *Node {
	var total *Node
	for _, gr := range grads {
		s := ReduceAllSum(Square(ConvertDType(gr, dtypes.Float32)))
		if total == nil {
			total = s
		} else {
			total = Add(total, s)
		}
	}
	return Sqrt(total)
}

// clipScale is min(1, clip/(norm+1e-6)) (as PyTorch's clip_grad_norm_): the
// factor every gradient is multiplied by.
func clipScale(norm *Node, clip float64) *Node {
	g := norm.Graph()
	scale := Div(Scalar(g, dtypes.Float32, clip), AddScalar(norm, 1e-6))
	return MinScalar(scale, 1.0)
}

// zerosVariable returns the non-trainable variable at fullPath, creating it
// with zeros of the given shape if needed.
func zerosVariable(store *mlmodel.Store, fullPath string, shape shapes.Shape) *mlmodel.Variable {
	v := store.GetVariable(fullPath)
	if v == nil {
		v = store.VariableWithValue(fullPath, tensors.FromShape(shape))
	}
	if !v.Shape().Equal(shape) {
		panic(fmt.Errorf("variable %q has shape %s, want %s", fullPath, v.Shape(), shape))
	}
	return v.SetTrainable(false)
}

// stepVariable returns the int64 scalar counting completed updates.
func stepVariable(store *mlmodel.Store) *mlmodel.Variable {
	return zerosVariable(store, StepVariablePath, shapes.Make(dtypes.Int64))
}

// adamWUpdate applies one AdamW update to params with grads multiplied by
// scale (a float32 scalar, the clipping factor; nil for 1). ok (bool scalar)
// gates every write: when false the parameters, moments and step keep their
// values exactly. It returns the learning rate used (float32).
//
// The update is the textbook one,
//
//	m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²
//	θ ← θ − lr·λ·θ − lr·m̂/(√v̂ + ε),  m̂ = m/(1−β1ᵗ),  v̂ = v/(1−β2ᵗ),
//
// written so that every per-element operation has scalar coefficients
// computed once per step: the clipping factor is folded into (1−β1) and
// (1−β2), the bias corrections into the step size and ε
// (m̂/(√v̂+ε) = c·m/(√v + ε·√(1−β2ᵗ)) with c = √(1−β2ᵗ)/(1−β1ᵗ)), and the
// ok gate into the coefficients (β = 1, lr = 0 when false) and one select on
// the gradient. On the pure-Go backend every element-wise operation is a
// pass over memory, and the optimiser touches every parameter.
func (c *OptimizerConfig) adamWUpdate(params []*mlmodel.Variable, grads []*Node, scale, ok *Node) *Node {
	g := ok.Graph()
	store := mlmodel.GetStore(g)
	stepVar := stepVariable(store)
	step := stepVar.NodeValue(g)
	lr64 := c.learningRateGraph(step)
	newStep := AddScalar(step, int64(1))
	stepVar.SetNodeValue(Where(ok, newStep, step))

	f64 := func(x float64) *Node { return Scalar(g, dtypes.Float64, x) }
	// Bias corrections with t the new step count, in float64.
	t := ConvertDType(newStep, dtypes.Float64)
	bc1 := OneMinus(Pow(f64(c.Beta1), t))           // 1−β1ᵗ
	sqrtBC2 := Sqrt(OneMinus(Pow(f64(c.Beta2), t))) // √(1−β2ᵗ)
	s64 := f64(1)
	if scale != nil {
		s64 = ConvertDType(scale, dtypes.Float64)
	}
	gate := func(on, off *Node) *Node { return Where(ok, on, off) }
	beta1 := gate(f64(c.Beta1), f64(1))
	beta2 := gate(f64(c.Beta2), f64(1))
	coef1 := gate(MulScalar(s64, 1-c.Beta1), f64(0))
	coef2 := gate(MulScalar(Square(s64), 1-c.Beta2), f64(0))
	lrOn := gate(lr64, f64(0))
	stepSize := Div(Mul(lrOn, sqrtBC2), bc1) // lr·√(1−β2ᵗ)/(1−β1ᵗ)
	eps := MulScalar(sqrtBC2, c.Epsilon)
	decay := OneMinus(MulScalar(lrOn, c.WeightDecay))

	noDecay := c.NoDecay
	if noDecay == nil {
		noDecay = DefaultNoDecay
	}
	for i, v := range params {
		dtype := v.DType()
		as := func(x *Node) *Node { return ConvertDType(x, dtype) }
		grad := ConvertDType(grads[i], dtype)
		grad = Where(ok, grad, ZerosLike(grad))
		m1Var := zerosVariable(store, moment1Scope+v.Path(), v.Shape())
		m2Var := zerosVariable(store, moment2Scope+v.Path(), v.Shape())
		m1Old, m2Old := m1Var.NodeValue(g), m2Var.NodeValue(g)
		m1 := Add(Mul(m1Old, as(beta1)), Mul(grad, as(coef1)))
		m2 := Add(Mul(m2Old, as(beta2)), Mul(Square(grad), as(coef2)))
		theta := v.NodeValue(g)
		step := Mul(Div(m1, Add(Sqrt(m2), as(eps))), as(stepSize))
		if c.WeightDecay > 0 && !noDecay(v) {
			theta = Mul(theta, as(decay))
		}
		m1Var.SetNodeValue(m1)
		m2Var.SetNodeValue(m2)
		v.SetNodeValue(Sub(theta, step))
	}
	return ConvertDType(lr64, dtypes.Float32)
}
