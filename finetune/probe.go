package finetune

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/gomlx/compute"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/metrics"
	"github.com/vitbert/vitbert/model"
	"gonum.org/v1/gonum/floats"
)

// ProbeConfig configures a linear probe: a softmax classifier on the frozen
// [CLS] features of the encoder, fitted to convergence by L-BFGS for each
// L2 penalty, the penalty chosen on the validation split.
type ProbeConfig struct {
	// L2 are the penalties λ tried: the loss is the mean cross-entropy plus
	// λ/2·‖W‖² (bias unpenalised) on features standardised with the
	// training split's mean and standard deviation.
	L2 []float64 `json:"l2"`
	// MaxIter bounds the L-BFGS iterations per penalty; Tol stops them
	// when the largest gradient entry is below it.
	MaxIter int     `json:"max_iter"`
	Tol     float64 `json:"tol"`
}

// DefaultProbe tries λ from 1 down to 1e-4, up to 1,000 L-BFGS iterations
// each, to a largest gradient entry below 1e-4 (scikit-learn's lbfgs
// default tolerance). A fit that stops at MaxIter is reported as not
// converged.
func DefaultProbe() *ProbeConfig {
	return &ProbeConfig{L2: []float64{1, 1e-1, 1e-2, 1e-3, 1e-4}, MaxIter: 1000, Tol: 1e-4}
}

func (p *ProbeConfig) check() error {
	if len(p.L2) == 0 {
		return fmt.Errorf("probe: no L2 penalty (--l2) to try")
	}
	for _, l := range p.L2 {
		if !(l >= 0) || math.IsInf(l, 0) {
			return fmt.Errorf("probe: L2 penalty (--l2) %g is not a finite value ≥ 0", l)
		}
	}
	if p.MaxIter <= 0 || !(p.Tol > 0) {
		return fmt.Errorf("probe: max_iter (%d) and tol (%g) must be positive", p.MaxIter, p.Tol)
	}
	return nil
}

// ProbeFit records a linear probe's fits: the chosen penalty and, per
// penalty tried, its validation score and how its fit ended.
type ProbeFit struct {
	L2   float64      `json:"l2"`
	Fits []ProbePoint `json:"fits"`
}

// ProbePoint is one penalty's fit.
type ProbePoint struct {
	L2         float64 `json:"l2"`
	Validation float64 `json:"validation"` // the main metric on the validation split
	Iterations int     `json:"iterations"`
	Converged  bool    `json:"converged"`
	Loss       float64 `json:"loss"` // the training objective at the end
}

// LinearProbe fits a linear classifier on the frozen encoder of c.Model
// (c.Probe, or DefaultProbe): features are extracted once per split, the
// classifier is fitted on the training split (or its few-shot subset) for
// every L2 penalty, the penalty with the best validation score is kept, and
// the test split is scored once with it. OUT/best holds the encoder with
// the linear head (Hidden false), so Evaluate scores it like any
// fine-tuned model. Steps, Epochs and the optimizer are not used.
func LinearProbe(ctx context.Context, backend compute.Backend, c Config, opt Options) (*Result, error) {
	if c.Probe == nil {
		c.Probe = DefaultProbe()
	}
	return Run(ctx, backend, c, opt)
}

func runProbe(ctx context.Context, backend compute.Backend, p *prepared, opt *Options) (*Result, error) {
	c, def := &p.c, p.def
	if def.Kind != model.HeadClassify {
		return nil, fmt.Errorf("a linear probe needs a classification task; %s is a regression", def.Name)
	}
	store, err := p.newStore(backend)
	if err != nil {
		return nil, err
	}
	ev, err := newEvaluator(backend, store, &p.mc, def)
	if err != nil {
		return nil, err
	}
	if p.trainTS != nil {
		seqs, err := encodeTexts(p.tok, p.trainTS, def.Pair, p.L)
		if err != nil {
			return nil, err
		}
		if err := ev.addText("train", "", seqs, c.EvalBatch, p.L, p.tok.PAD()); err != nil {
			return nil, err
		}
	} else if err := ev.addImages("train", "", p.trainDS, c.EvalBatch); err != nil {
		return nil, err
	}
	nVal, err := prepareEval(ev, p.td, []string{def.ValSplit}, p.tok, p.L, c.EvalBatch, c.AdaptImages, opt)
	if err != nil {
		return nil, err
	}
	x, y, err := ev.features()
	if err != nil {
		return nil, err
	}
	k := len(p.td.classes)
	xtr, xval := toFloat64(x[0]), toFloat64(x[1])
	mean, std := standardise(xtr)
	applyStandard(xval, mean, std)

	fit := &ProbeFit{}
	var best *softmaxModel
	var bestVal Metrics
	main := def.mainMetric()
	theta := make([]float64, k*len(mean)+k) // warm start along the path
	for _, l2 := range c.Probe.L2 {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("linear probe interrupted: %w", err)
		}
		sm := &softmaxModel{k: k, d: len(mean), l2: l2}
		it, conv, loss := sm.fit(theta, xtr, y[0], c.Probe.MaxIter, c.Probe.Tol)
		theta = sm.theta
		if !conv {
			opt.logf("linear probe: λ=%g did not converge in %d iterations (loss %.6g)", l2, it, loss)
		}
		m := Metrics{}
		pred := sm.predict(xval)
		for _, name := range def.Metrics {
			if m[name], err = metrics.Classification(name, pred, y[1]); err != nil {
				return nil, err
			}
		}
		fit.Fits = append(fit.Fits, ProbePoint{L2: l2, Validation: m[main], Iterations: it, Converged: conv, Loss: loss})
		if best == nil || better(m[main], bestVal[main]) {
			best, bestVal, fit.L2 = sm, m, l2
			best.theta = append([]float64(nil), sm.theta...)
		}
	}

	// OUT/best: the frozen encoder with the linear head on raw features.
	w, err := checkpoint.Weights(store, &p.mc)
	if err != nil {
		return nil, err
	}
	hw, hb := best.raw(mean, std)
	for name, v := range map[string][]float32{"weights": hw, "biases": hb} {
		path := "/" + model.HeadsScope + "/" + HeadName + "/output/dense/" + name
		if len(w[path]) != len(v) {
			return nil, fmt.Errorf("linear probe: the head variable %s has %d values, the fit %d", path, len(w[path]), len(v))
		}
		w[path] = v
	}
	if err := p.saveModel(w, 0, bestVal); err != nil {
		return nil, err
	}
	res := p.result(0, bestVal, nVal)
	res.Probe = fit
	return res, p.scoreTest(backend, res, opt)
}

func toFloat64(x [][]float32) [][]float64 {
	out := make([][]float64, len(x))
	for i, r := range x {
		out[i] = make([]float64, len(r))
		for j, v := range r {
			out[i][j] = float64(v)
		}
	}
	return out
}

// standardise centres and scales the columns of x in place to mean 0 and
// standard deviation 1 (a constant column is only centred) and returns the
// statistics it used.
func standardise(x [][]float64) (mean, std []float64) {
	d := len(x[0])
	mean, std = make([]float64, d), make([]float64, d)
	for _, r := range x {
		for j, v := range r {
			mean[j] += v
		}
	}
	for j := range mean {
		mean[j] /= float64(len(x))
	}
	for _, r := range x {
		for j, v := range r {
			std[j] += (v - mean[j]) * (v - mean[j])
		}
	}
	for j := range std {
		if std[j] = math.Sqrt(std[j] / float64(len(x))); std[j] == 0 {
			std[j] = 1
		}
	}
	applyStandard(x, mean, std)
	return mean, std
}

func applyStandard(x [][]float64, mean, std []float64) {
	for _, r := range x {
		for j := range r {
			r[j] = (r[j] - mean[j]) / std[j]
		}
	}
}

// softmaxModel is multinomial logistic regression: theta holds W [k, d]
// row-major, then the k biases.
type softmaxModel struct {
	k, d  int
	l2    float64
	theta []float64
}

// loss returns the objective at theta and writes its gradient into grad.
// The examples are shared out over the CPUs; each part's sums are added in
// a fixed order, so the result does not depend on scheduling.
func (m *softmaxModel) loss(theta, grad []float64, x [][]float64, y []int) float64 {
	k, d := m.k, m.d
	parts := max(1, min(runtime.GOMAXPROCS(0), len(x)/256))
	totals := make([]float64, parts)
	grads := make([][]float64, parts)
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := p*len(x)/parts, (p+1)*len(x)/parts
		grads[p] = make([]float64, len(grad))
		wg.Add(1)
		go func() {
			defer wg.Done()
			totals[p] = m.partLoss(theta, grads[p], x[lo:hi], y[lo:hi])
		}()
	}
	wg.Wait()
	clear(grad)
	total := 0.0
	for p := range parts {
		total += totals[p]
		axpy(1, grads[p], grad)
	}
	n := float64(len(x))
	total /= n
	for i := range grad {
		grad[i] /= n
	}
	for i := range k * d {
		total += m.l2 / 2 * theta[i] * theta[i]
		grad[i] += m.l2 * theta[i]
	}
	return total
}

// partLoss adds the summed cross-entropy gradient of examples x into grad
// and returns their summed cross-entropy.
func (m *softmaxModel) partLoss(theta, grad []float64, x [][]float64, y []int) float64 {
	k, d := m.k, m.d
	z := make([]float64, k)
	total := 0.0
	for i, r := range x {
		mx := math.Inf(-1)
		for c := range k {
			s := theta[k*d+c] + dot(theta[c*d:(c+1)*d], r)
			z[c] = s
			mx = max(mx, s)
		}
		sum := 0.0
		for c := range k {
			z[c] = math.Exp(z[c] - mx)
			sum += z[c]
		}
		total += math.Log(sum) - math.Log(z[y[i]])
		for c := range k {
			g := z[c] / sum
			if c == y[i] {
				g--
			}
			if g == 0 {
				continue
			}
			axpy(g, r, grad[c*d:(c+1)*d])
			grad[k*d+c] += g
		}
	}
	return total
}

// fit minimises the objective from theta0 by L-BFGS (memory 10, Armijo
// backtracking) until the largest gradient entry is below tol or maxIter
// iterations. gonum's optimize package would do this, but it imports
// golang.org/x/tools, a dependency out of proportion to 60 lines.
func (m *softmaxModel) fit(theta0 []float64, x [][]float64, y []int, maxIter int, tol float64) (iters int, converged bool, f float64) {
	n := len(theta0)
	theta := append([]float64(nil), theta0...)
	g := make([]float64, n)
	f = m.loss(theta, g, x, y)
	const mem = 10
	var ss, ys [][]float64
	var rhos []float64
	dir, next, gNext := make([]float64, n), make([]float64, n), make([]float64, n)
	alpha := make([]float64, mem)
	for iters = 0; iters < maxIter; iters++ {
		if maxAbs(g) < tol {
			m.theta = theta
			return iters, true, f
		}
		// Two-loop recursion: dir = −H·g.
		copy(dir, g)
		for i := len(ss) - 1; i >= 0; i-- {
			alpha[i] = rhos[i] * dot(ss[i], dir)
			axpy(-alpha[i], ys[i], dir)
		}
		gamma := 1 / math.Max(1, math.Sqrt(dot(g, g)))
		if len(ss) > 0 {
			l := len(ss) - 1
			gamma = dot(ss[l], ys[l]) / dot(ys[l], ys[l])
		}
		for i := range dir {
			dir[i] *= gamma
		}
		for i := range ss {
			b := rhos[i] * dot(ys[i], dir)
			axpy(alpha[i]-b, ss[i], dir)
		}
		for i := range dir {
			dir[i] = -dir[i]
		}
		slope := dot(g, dir)
		if slope >= 0 { // not a descent direction: restart from the gradient
			ss, ys, rhos = nil, nil, nil
			for i := range dir {
				dir[i] = -g[i]
			}
			slope = -dot(g, g)
		}
		step, fNext := 1.0, 0.0
		for {
			for i := range next {
				next[i] = theta[i] + step*dir[i]
			}
			fNext = m.loss(next, gNext, x, y)
			if fNext <= f+1e-4*step*slope || step < 1e-12 {
				break
			}
			step /= 2
		}
		if fNext > f { // no progress possible at this precision
			m.theta = theta
			return iters, maxAbs(g) < tol, f
		}
		s, yy := make([]float64, n), make([]float64, n)
		for i := range s {
			s[i], yy[i] = next[i]-theta[i], gNext[i]-g[i]
		}
		if sy := dot(s, yy); sy > 1e-12 {
			ss, ys, rhos = append(ss, s), append(ys, yy), append(rhos, 1/sy)
			if len(ss) > mem {
				ss, ys, rhos = ss[1:], ys[1:], rhos[1:]
			}
		}
		copy(theta, next)
		copy(g, gNext)
		f = fNext
	}
	m.theta = theta
	return iters, maxAbs(g) < tol, f
}

// predict returns the arg-max class of every row of x.
func (m *softmaxModel) predict(x [][]float64) []int {
	out := make([]int, len(x))
	for i, r := range x {
		best, bestZ := 0, math.Inf(-1)
		for c := range m.k {
			s := m.theta[m.k*m.d+c]
			w := m.theta[c*m.d : (c+1)*m.d]
			for j, v := range r {
				s += w[j] * v
			}
			if s > bestZ {
				best, bestZ = c, s
			}
		}
		out[i] = best
	}
	return out
}

// raw folds the standardisation into the weights: W' = W/std and
// b' = b − W'·mean, so the head reads unstandardised features. W' is
// [k, d] (the dense layer's outputs × inputs layout).
func (m *softmaxModel) raw(mean, std []float64) (w, b []float32) {
	w, b = make([]float32, m.k*m.d), make([]float32, m.k)
	for c := range m.k {
		bias := m.theta[m.k*m.d+c]
		for j := range m.d {
			wj := m.theta[c*m.d+j] / std[j]
			w[c*m.d+j] = float32(wj)
			bias -= wj * mean[j]
		}
		b[c] = float32(bias)
	}
	return w, b
}

// dot and axpy use gonum's vectorised kernels: the objective's inner loops
// are these two, over every example at every evaluation.
func dot(a, b []float64) float64 { return floats.Dot(a, b) }

func axpy(a float64, x, y []float64) { floats.AddScaled(y, a, x) }

func maxAbs(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, math.Abs(x))
	}
	return m
}
