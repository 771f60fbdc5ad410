package train

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
)

func noClipConfig() Config {
	return Config{
		Optimizer: OptimizerConfig{LearningRate: 0.01, Decay: DecayConstant, Beta1: 0.9, Beta2: 0.999,
			Epsilon: 1e-8, WeightDecay: 0.1},
		Seed: 11,
	}
}

// newToyTrainer returns a trainer on a fresh store; captureGrads is on.
func newToyTrainer(t *testing.T, cfg Config, o toyOpts) *Trainer {
	t.Helper()
	tr, err := NewTrainer(testBackend(), mlmodel.NewStore(), toyLossFn(o), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr.captureGrads = true
	return tr
}

func capturedGrads(tr *Trainer) map[string][]float32 {
	out := map[string][]float32{}
	for i, p := range tr.gradParams {
		out[p.Path()] = tensors.MustCopyFlatData[float32](tr.lastGrads[i])
	}
	return out
}

// The combined gradient of the step against ∇L_txt and ∇L_img computed
// separately: before the first update the sum; once masking is on, entry by
// entry the text gradient where the parameter's own mask is on and the image
// gradient where it is off: with masks of ones, of zeros, and with a
// different random mask for every shared parameter (so a mask applied to the
// wrong parameter, or in the wrong layout, shows). Modality-specific
// parameters always get the sum (one of the terms is zero).
func TestMaskedGradientAlgebra(t *testing.T) {
	cfg := noClipConfig()
	cfg.Mask = MaskConfig{Enabled: true, FinalSparsity: 0.5, Increment: 0.25, StartStep: 0, EndStep: 100}
	o := toyOpts{text: true, image: true}
	tr := newToyTrainer(t, cfg, o)
	store := tr.Store()
	lossFn := toyLossFn(o)

	rng := rand.New(rand.NewPCG(3, 4))
	random := map[string][]float32{} // per shared parameter, drawn once
	maskOf := func(kind string, p *mlmodel.Variable) []float32 {
		switch kind {
		case "ones":
			return filled(p.Shape().Size(), 1)
		case "zeros":
			return filled(p.Shape().Size(), 0)
		}
		if m, ok := random[p.Path()]; ok {
			return m
		}
		m := make([]float32, p.Shape().Size())
		for {
			ones := 0
			for i := range m {
				m[i] = float32(rng.IntN(2))
				ones += int(m[i])
			}
			if ones > 0 && ones < len(m) {
				break
			}
		}
		random[p.Path()] = m
		return m
	}
	cases := []struct {
		name   string
		active float32
		mask   string
	}{
		{"inactive: sum", 0, "ones"},
		{"mask of ones: text gradient", 1, "ones"},
		{"mask of zeros: image gradient", 1, "zeros"},
		{"random masks: text gradient where on, image where off", 1, "random"},
		{"inactive with zeros: still the sum", 0, "zeros"},
		{"inactive with random masks: still the sum", 0, "random"},
	}
	for step, tc := range cases {
		batch := toyBatchAt(step)
		masks := map[string][]float32{}
		if step > 0 { // the mask variables exist once the step is compiled
			setVar(t, store, maskActivePath, []float32{tc.active})
			for _, p := range tr.Mask().Params() {
				masks[p.Path()] = maskOf(tc.mask, p)
				setVar(t, store, maskScope+p.Path(), masks[p.Path()])
			}
		}
		gt, gi := referenceGradients(t, store, lossFn, batch)
		if _, err := tr.Step(batch...); err != nil {
			t.Fatal(err)
		}
		got := capturedGrads(tr)
		if len(got) != len(gt) || len(got) != 12 {
			t.Fatalf("%s: step has %d gradients, reference %d, want 12", tc.name, len(got), len(gt))
		}
		numShared, numText, numImage := 0, 0, 0
		for path, g := range got {
			shared := strings.HasPrefix(path, "/encoder/")
			if shared {
				numShared++
			}
			masked := shared && tc.active == 1
			if masked && len(masks[path]) != len(g) {
				t.Fatalf("%s: shared parameter %s has no mask", tc.name, path)
			}
			for i := range g {
				want := gt[path][i] + gi[path][i]
				switch {
				case masked && masks[path][i] == 1:
					want = gt[path][i]
					numText++
				case masked:
					want = gi[path][i]
					numImage++
				}
				if masked && g[i] != want || !masked && math.Abs(float64(g[i]-want)) > 1e-6 {
					t.Fatalf("%s: %s[%d] = %g, want %g (text %g, image %g)", tc.name, path, i, g[i], want, gt[path][i], gi[path][i])
				}
			}
		}
		if numShared != 4 {
			t.Errorf("%d shared tensors, want 4", numShared)
		}
		if tc.active == 1 && tc.mask == "random" && (numText == 0 || numImage == 0) {
			t.Errorf("%s: %d entries took the text gradient and %d the image one, want some of each", tc.name, numText, numImage)
		}
	}
	// The two weight matrices have the same shape: their masks must differ
	// for a swap to show.
	var weights [][]float32
	for path, m := range random {
		if strings.HasSuffix(path, "/weights") {
			weights = append(weights, m)
		}
	}
	if len(weights) != 2 || slices.Equal(weights[0], weights[1]) {
		t.Errorf("random masks of the weight matrices: %v, want two different ones", weights)
	}
}

// adamFirstStep is θ − lr·(g/(|g|+ε) + λθ), the first AdamW update (m̂ = g, v̂ = g²).
func adamFirstStep(theta, g, lr, eps, decay float64) float64 {
	return theta - lr*(g/(math.Abs(g)+eps)+decay*theta)
}

// Without masking the step takes the gradient of L_txt + L_img; masking
// before its first update gives the same update.
func TestUnmaskedUpdateIsSummedGradient(t *testing.T) {
	o := toyOpts{text: true, image: true}
	plain := newToyTrainer(t, noClipConfig(), o)
	maskedCfg := noClipConfig()
	maskedCfg.Mask = MaskConfig{Enabled: true, FinalSparsity: 0.5, Increment: 0.5, StartStep: 5, EndStep: 10}
	masked := newToyTrainer(t, maskedCfg, o)

	batch := toyBatchAt(0)
	gt, gi := referenceGradients(t, plain.Store(), toyLossFn(o), batch)
	// Same seed, same initial weights in both stores.
	_, _ = referenceGradients(t, masked.Store(), toyLossFn(o), batch)
	before := map[string][]float32{}
	for path := range gt {
		before[path] = varData(t, plain.Store(), path)
		if b2 := varData(t, masked.Store(), path); !slices.Equal(before[path], b2) {
			t.Fatalf("initial weights of %s differ between the stores", path)
		}
	}
	for _, tr := range []*Trainer{plain, masked} {
		if _, err := tr.Step(batch...); err != nil {
			t.Fatal(err)
		}
	}
	cfg := noClipConfig().Optimizer
	for path, theta := range before {
		g := capturedGrads(plain)[path]
		afterPlain := varData(t, plain.Store(), path)
		afterMasked := varData(t, masked.Store(), path)
		decay := cfg.WeightDecay
		if plain.Store().GetVariable(path).Shape().Rank() <= 1 {
			decay = 0 // biases are excluded from weight decay
		}
		for i := range theta {
			sum := float64(gt[path][i]) + float64(gi[path][i])
			if math.Abs(float64(g[i])-sum) > 1e-6 {
				t.Fatalf("%s[%d]: gradient %g, ∇L_txt+∇L_img %g", path, i, g[i], sum)
			}
			want := adamFirstStep(float64(theta[i]), sum, cfg.LearningRate, cfg.Epsilon, decay)
			if math.Abs(float64(afterPlain[i])-want) > 1e-6 {
				t.Fatalf("%s[%d]: updated to %g, want %g", path, i, afterPlain[i], want)
			}
			if relDiff(float64(afterPlain[i]), float64(afterMasked[i])) > 1e-6 {
				t.Fatalf("%s[%d]: masked-before-first-update %g, plain %g", path, i, afterMasked[i], afterPlain[i])
			}
		}
	}
}

func TestSingleModalityModes(t *testing.T) {
	for _, o := range []toyOpts{{text: true}, {image: true}} {
		tr := newToyTrainer(t, noClipConfig(), o)
		batch := toyBatchAt(0)
		if o.text {
			batch = batch[:2]
		}
		var first, last float64
		for i := range 30 {
			res, err := tr.Step(batch...)
			if err != nil {
				t.Fatal(err)
			}
			if res.HasText != o.text || res.HasImage != o.image {
				t.Fatalf("result flags text=%v image=%v, want %v %v", res.HasText, res.HasImage, o.text, o.image)
			}
			loss := res.LossText
			if o.image {
				loss = res.LossImage
			}
			if i == 0 {
				first = loss
			}
			last = loss
			if res.Step != i+1 {
				t.Fatalf("step %d, want %d", res.Step, i+1)
			}
		}
		if !(last < first) {
			t.Errorf("%+v: loss did not decrease on a fixed batch: %g → %g", o, first, last)
		}
		// Parameters of the absent modality were never created.
		for v := range tr.Store().IterVariables() {
			if o.text && strings.HasPrefix(v.Path(), "/image/") || o.image && strings.HasPrefix(v.Path(), "/text/") {
				t.Errorf("unexpected variable %s", v.Path())
			}
		}
	}
}

func TestMaskingNeedsBothLosses(t *testing.T) {
	cfg := noClipConfig()
	cfg.Mask = MaskConfig{Enabled: true, FinalSparsity: 0.5, Increment: 0.5, StartStep: 0, EndStep: 4}
	tr := newToyTrainer(t, cfg, toyOpts{text: true})
	_, err := tr.Step(toyBatchAt(0)[:2]...)
	if err == nil || !strings.Contains(err.Error(), "both a text and an image loss") {
		t.Fatalf("got %v, want an error about needing both losses", err)
	}
}

func TestExtraMetricsReported(t *testing.T) {
	tr := newToyTrainer(t, noClipConfig(), toyOpts{text: true, image: true})
	res, err := tr.Step(toyBatchAt(0)...)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Extra["text_logit_mean"]; !ok || len(res.Extra) != 1 {
		t.Errorf("extras %v, want text_logit_mean only", res.Extra)
	}
}

// The gradient-mask schedule on the toy model: updates at the planned steps,
// each group at round(target·n) zeros, unchanged between updates, never
// un-masking, for the three ranking scopes.
func TestMaskScheduleOnToyModel(t *testing.T) {
	for _, ranking := range []RankScope{RankPerTensor, RankPerBlock, RankGlobal} {
		t.Run(string(ranking), func(t *testing.T) {
			cfg := noClipConfig()
			cfg.Mask = MaskConfig{Enabled: true, FinalSparsity: 0.5, Increment: 0.2, StartStep: 0, EndStep: 6, Ranking: ranking}
			tr := newToyTrainer(t, cfg, toyOpts{text: true, image: true})
			wantSteps := []int{2, 4, 6}
			if got := cfg.Mask.UpdateSteps(); !slices.Equal(got, wantSteps) {
				t.Fatalf("update steps %v, want %v", got, wantSteps)
			}
			targets := []float64{0.2, 0.4, 0.5}
			prev := map[string][]float32{}
			updates := 0
			for s := 1; s <= 8; s++ {
				res, err := tr.Step(toyBatchAt(s)...)
				if err != nil {
					t.Fatal(err)
				}
				k := updates
				if res.MaskUpdate != nil {
					if res.Step != wantSteps[updates] {
						t.Fatalf("mask update at step %d, want %d", res.Step, wantSteps[updates])
					}
					updates++
					k = updates
					if res.MaskUpdate.Update != k || res.MaskUpdate.Target != targets[k-1] {
						t.Errorf("report update %d target %g, want %d %g", res.MaskUpdate.Update, res.MaskUpdate.Target, k, targets[k-1])
					}
				} else if updates < len(wantSteps) && res.Step == wantSteps[updates] {
					t.Fatalf("no mask update at step %d", res.Step)
				}
				target := 0.0
				if k > 0 {
					target = targets[k-1]
				}
				// |∇L_txt| is accumulated since the last update, and no longer
				// after the final one: the step count and the accumulators stay 0.
				wantCount, wantPhase := 0, phaseFinal
				if res.Step < 6 {
					wantCount, wantPhase = res.Step%2, phaseMasked
				}
				if res.Step < 2 {
					wantPhase = phaseSum
				}
				if got := varData(t, tr.Store(), maskCountPath)[0]; got != float32(wantCount) {
					t.Errorf("step %d: %g accumulated steps, want %d", res.Step, got, wantCount)
				}
				if ph, err := tr.phase(); err != nil || ph != wantPhase {
					t.Errorf("after step %d: next phase %v (%v), want %v", res.Step, ph, err, wantPhase)
				}
				for _, p := range tr.Mask().Params() {
					acc := varData(t, tr.Store(), accScope+p.Path())
					nonZero := slices.ContainsFunc(acc, func(x float32) bool { return x != 0 })
					if nonZero != (wantCount > 0) {
						t.Errorf("step %d: accumulator of %s non-zero: %v, want %v", res.Step, p.Path(), nonZero, wantCount > 0)
					}
				}
				masks := map[string][]float32{}
				groupN, groupZ := map[string]int{}, map[string]int{}
				for _, p := range tr.Mask().Params() {
					m := varData(t, tr.Store(), maskScope+p.Path())
					masks[p.Path()] = m
					key := p.Path()
					switch ranking {
					case RankPerBlock:
						key = DefaultBlockKey(p.Path())
					case RankGlobal:
						key = "all"
					}
					groupN[key] += len(m)
					for i, x := range m {
						if x == 0 {
							groupZ[key]++
						} else if x != 1 {
							t.Fatalf("mask value %g", x)
						}
						if prev[p.Path()] != nil && prev[p.Path()][i] == 0 && x != 0 {
							t.Fatalf("step %d: %s[%d] un-masked", res.Step, p.Path(), i)
						}
					}
				}
				if ranking == RankPerBlock && len(groupN) != 2 {
					t.Fatalf("blocks %v, want 2", groupN)
				}
				for key, n := range groupN {
					want := int(math.Round(target * float64(n)))
					if groupZ[key] != want {
						t.Errorf("step %d: %s has %d zeros of %d, want %d (target %g)", res.Step, key, groupZ[key], n, want, target)
					}
				}
				prev = masks
			}
			if updates != 3 {
				t.Errorf("%d mask updates, want 3", updates)
			}
			rep, err := tr.Mask().Report(8)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.PerTensor) != 4 || len(rep.PerBlock) != 2 {
				t.Errorf("report has %d tensors and %d blocks, want 4 and 2", len(rep.PerTensor), len(rep.PerBlock))
			}
		})
	}
}

// linearLossFn has a known gradient: L = Σ c⊙w + Σ d⊙b, so ∇w = c, ∇b = d.
func linearLossFn(c [][]float32, d []float32) LossFn {
	return func(scope *mlmodel.Scope, g *Graph, in []*Node) Losses {
		s := scope.At("heads").At("lin")
		w := s.VariableWithValue("w", [][]float32{{1, -2}, {0.5, 3}}).NodeValue(g)
		b := s.VariableWithValue("b", []float32{0.25, -1}).NodeValue(g)
		loss := Add(ReduceAllSum(Mul(w, Const(g, c))), ReduceAllSum(Mul(b, Const(g, d))))
		return Losses{Text: Mul(loss, in[0])}
	}
}

// Two AdamW steps against the recurrences computed by hand, with and
// without excluding the bias from weight decay, and with warm-up.
func TestAdamWTwoStepsByHand(t *testing.T) {
	c := [][]float32{{0.5, -1}, {2, 0}}
	d := []float32{-0.3, 0.1}
	for _, excludeBias := range []bool{true, false} {
		opt := OptimizerConfig{LearningRate: 0.1, WarmupSteps: 2, TotalSteps: 10, Decay: DecayLinear,
			Beta1: 0.9, Beta2: 0.99, Epsilon: 1e-3, WeightDecay: 0.5}
		if !excludeBias {
			opt.NoDecay = func(*mlmodel.Variable) bool { return false }
		}
		tr, err := NewTrainer(testBackend(), mlmodel.NewStore(), linearLossFn(c, d), Config{Optimizer: opt})
		if err != nil {
			t.Fatal(err)
		}
		theta := []float64{1, -2, 0.5, 3, 0.25, -1}
		grad := []float64{0.5, -1, 2, 0, -0.3, 0.1}
		m := make([]float64, 6)
		v := make([]float64, 6)
		for step := 1; step <= 2; step++ {
			res, err := tr.Step(tensors.FromScalar(float32(1)))
			if err != nil {
				t.Fatal(err)
			}
			lr := 0.1 * float64(step) / 2 // warm-up (t+1)/W
			assertClose(t, "lr", res.LearningRate, lr, 1e-6)
			for i := range theta {
				m[i] = 0.9*m[i] + 0.1*grad[i]
				v[i] = 0.99*v[i] + 0.01*grad[i]*grad[i]
				mHat := m[i] / (1 - math.Pow(0.9, float64(step)))
				vHat := v[i] / (1 - math.Pow(0.99, float64(step)))
				decay := 0.5
				if i >= 4 && excludeBias {
					decay = 0
				}
				theta[i] -= lr * (mHat/(math.Sqrt(vHat)+1e-3) + decay*theta[i])
			}
			got := append(varData(t, tr.Store(), "/heads/lin/w"), varData(t, tr.Store(), "/heads/lin/b")...)
			for i := range theta {
				if math.Abs(float64(got[i])-theta[i]) > 1e-6 {
					t.Errorf("exclude=%v step %d: θ[%d] = %.8f, want %.8f", excludeBias, step, i, got[i], theta[i])
				}
			}
		}
		if s, _ := tr.CurrentStep(); s != 2 {
			t.Errorf("step variable %d, want 2", s)
		}
	}
}

// Clipping scales the gradient to the configured global norm: the norm is
// reported before clipping, and the second moment sees the clipped gradient.
func TestGlobalNormClipping(t *testing.T) {
	c := [][]float32{{3, 0}, {0, 0}}
	d := []float32{0, 4} // global norm 5
	opt := OptimizerConfig{LearningRate: 0.1, Decay: DecayConstant, Beta1: 0.9, Beta2: 0.99, Epsilon: 1e-8, ClipNorm: 1}
	tr, err := NewTrainer(testBackend(), mlmodel.NewStore(), linearLossFn(c, d), Config{Optimizer: opt})
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Step(tensors.FromScalar(float32(1)))
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, "grad norm", res.GradNorm, 5, 1e-6)
	scale := 1 / (5 + 1e-6)
	v := varData(t, tr.Store(), moment2Scope+"/heads/lin/w")
	assertClose(t, "v[0]", float64(v[0]), 0.01*math.Pow(3*scale, 2), 1e-6)
	vb := varData(t, tr.Store(), moment2Scope+"/heads/lin/b")
	assertClose(t, "v_b[1]", float64(vb[1]), 0.01*math.Pow(4*scale, 2), 1e-6)
	m := varData(t, tr.Store(), moment1Scope+"/heads/lin/b")
	assertClose(t, "m_b[1]", float64(m[1]), 0.1*4*scale, 1e-6)
}

func TestLearningRateSchedule(t *testing.T) {
	cosine := OptimizerConfig{LearningRate: 1, MinLearningRate: 0.1, WarmupSteps: 4, TotalSteps: 12, Decay: DecayCosine}
	linear := cosine
	linear.Decay = DecayLinear
	constant := cosine
	constant.Decay = DecayConstant
	tests := []struct {
		cfg  OptimizerConfig
		step int
		want float64
	}{
		{cosine, 0, 0.25}, {cosine, 1, 0.5}, {cosine, 3, 1}, {cosine, 4, 1},
		{cosine, 6, 0.1 + 0.45*(1+math.Sqrt2/2)}, {cosine, 8, 0.55}, {cosine, 12, 0.1}, {cosine, 50, 0.1},
		{linear, 6, 0.775}, {linear, 8, 0.55}, {linear, 11, 0.1 + 0.9/8}, {linear, 12, 0.1},
		{constant, 2, 0.75}, {constant, 100, 1},
	}
	for _, tc := range tests {
		assertClose(t, string(tc.cfg.Decay), tc.cfg.LearningRateAt(tc.step), tc.want, 1e-12)
	}
	// The in-graph schedule agrees with the host one.
	for _, cfg := range []OptimizerConfig{cosine, linear, constant} {
		steps := make([]int64, 20)
		for i := range steps {
			steps[i] = int64(i)
		}
		out := runGraph(t, func(g *Graph, in []*Node) []*Node {
			return []*Node{cfg.learningRateGraph(in[0])}
		}, steps)
		got := tensors.MustCopyFlatData[float64](out[0])
		for i, lr := range got {
			assertClose(t, "in-graph "+string(cfg.Decay), lr, cfg.LearningRateAt(i), 1e-12)
		}
	}
}

func TestOptimizerConfigValidate(t *testing.T) {
	good := DefaultOptimizerConfig(100)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(c *OptimizerConfig){
		func(c *OptimizerConfig) { c.LearningRate = 0 },
		func(c *OptimizerConfig) { c.TotalSteps = c.WarmupSteps },
		func(c *OptimizerConfig) { c.Beta2 = 1 },
		func(c *OptimizerConfig) { c.Decay = "step" },
		func(c *OptimizerConfig) { c.MinLearningRate = 1 },
	}
	for i, mutate := range bad {
		c := DefaultOptimizerConfig(100)
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("case %d: no error", i)
		}
	}
}

// A non-finite loss returns a NonFiniteError naming the step, and leaves
// every variable (weights, moments, step) as it was.
func TestNonFiniteStepIsNotApplied(t *testing.T) {
	tr := newToyTrainer(t, noClipConfig(), toyOpts{text: true, image: true})
	withScale := func(pos int, s float32) []*tensors.Tensor {
		return append(toyBatchAt(pos), tensors.FromScalar(s))
	}
	if _, err := tr.Step(withScale(0, 1)...); err != nil {
		t.Fatal(err)
	}
	before := map[string]*tensors.Tensor{}
	for v := range tr.Store().IterVariables() {
		if v.DType() == dtypes.Float32 || v.DType() == dtypes.Int64 {
			c, err := v.MustValue().LocalClone()
			if err != nil {
				t.Fatal(err)
			}
			before[v.Path()] = c
		}
	}
	_, err := tr.Step(withScale(1, float32(math.Inf(1)))...)
	var nf *NonFiniteError
	if !errors.As(err, &nf) || nf.Step != 2 || !strings.Contains(err.Error(), "step 2") || !strings.Contains(err.Error(), "loss_text=+Inf") {
		t.Fatalf("got %v, want a NonFiniteError at step 2 with loss_text=+Inf", err)
	}
	for path, want := range before {
		if got := tr.Store().GetVariable(path).MustValue(); !got.Equal(want) {
			t.Errorf("%s changed by the non-finite step", path)
		}
	}
}

// Masks restored from older checkpoints are float32 0/1: the step selects
// with them exactly as with the bool masks it creates.
func TestFloat32MaskFromOlderCheckpoint(t *testing.T) {
	cfg := noClipConfig()
	cfg.Mask = MaskConfig{Enabled: true, FinalSparsity: 0.5, Increment: 0.25, StartStep: 0, EndStep: 100}
	o := toyOpts{text: true, image: true}
	probe := newToyTrainer(t, cfg, o)
	if _, err := probe.Step(toyBatchAt(0)...); err != nil {
		t.Fatal(err)
	}
	tr := newToyTrainer(t, cfg, o)
	store := tr.Store()
	masks := map[string][]float32{}
	for _, p := range probe.Mask().Params() {
		if probe.Mask().MaskVariable(p).DType() != dtypes.Bool {
			t.Fatalf("new mask of %s is %s, want bool", p.Path(), probe.Mask().MaskVariable(p).DType())
		}
		m := make([]float32, p.Shape().Size())
		for i := range m {
			m[i] = float32(i % 2)
		}
		masks[p.Path()] = m
		if _, err := store.CreateVariable(maskScope+p.Path(), tensors.FromFlatDataAndDimensions(m, p.Shape().Dimensions...)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.CreateVariable(maskActivePath, tensors.FromScalar(float32(1))); err != nil {
		t.Fatal(err)
	}
	batch := toyBatchAt(1)
	gt, gi := referenceGradients(t, store, toyLossFn(o), batch)
	if _, err := tr.Step(batch...); err != nil {
		t.Fatal(err)
	}
	got := capturedGrads(tr)
	for path, m := range masks {
		if tr.Mask().MaskVariable(tr.store.GetVariable(path)).DType() != dtypes.Float32 {
			t.Fatalf("mask of %s was replaced", path)
		}
		for i, keep := range m {
			want := gi[path][i]
			if keep == 1 {
				want = gt[path][i]
			}
			if got[path][i] != want {
				t.Fatalf("%s[%d] = %g, want %g (mask %g)", path, i, got[path][i], want, keep)
			}
		}
	}
	if len(masks) != 4 {
		t.Errorf("%d masks, want 4", len(masks))
	}
}

// Variables under Config.Frozen are not trained even when marked trainable.
func TestFrozenScopesAreNotTrained(t *testing.T) {
	o := toyOpts{text: true, image: true}
	all := newToyTrainer(t, noClipConfig(), o)
	if _, err := all.Step(toyBatchAt(0)...); err != nil {
		t.Fatal(err)
	}
	var frozenScope string
	for path := range capturedGrads(all) {
		if !strings.HasPrefix(path, "/encoder/") {
			frozenScope = path[:strings.Index(path[1:], "/")+1]
			break
		}
	}
	if frozenScope == "" {
		t.Fatal("the toy model has no variable outside /encoder")
	}
	cfg := noClipConfig()
	cfg.Frozen = []string{frozenScope}
	tr := newToyTrainer(t, cfg, o)
	if _, err := tr.Step(toyBatchAt(0)...); err != nil { // creates the variables
		t.Fatal(err)
	}
	before := map[string][]float32{}
	for v := range tr.Store().IterVariables() {
		if underScope(v.Path(), frozenScope) {
			before[v.Path()] = varData(t, tr.Store(), v.Path())
		}
	}
	if _, err := tr.Step(toyBatchAt(1)...); err != nil {
		t.Fatal(err)
	}
	got := capturedGrads(tr)
	if len(got) == 0 || len(got) >= len(capturedGrads(all)) {
		t.Fatalf("%d trained tensors with %s frozen, %d without", len(got), frozenScope, len(capturedGrads(all)))
	}
	for path := range got {
		if underScope(path, frozenScope) {
			t.Errorf("%s is under the frozen scope %s but was trained", path, frozenScope)
		}
	}
	if len(before) == 0 {
		t.Fatalf("no variables under %s", frozenScope)
	}
	for path, b := range before {
		if !slices.Equal(b, varData(t, tr.Store(), path)) {
			t.Errorf("frozen %s changed", path)
		}
	}
}
