package bench

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like the equations.
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/vitbert/vitbert/infer"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/pretrain"
	"github.com/vitbert/vitbert/train"
)

// Special token ids of the bert-base-uncased vocabulary.
const (
	padID  = 0
	clsID  = 101
	sepID  = 102
	maskID = 103
)

// Gradient-mask variables (see train/gradmask.go): the mask of a shared
// parameter lives at maskPrefix + its path, the switch at maskActivePath.
const (
	maskActivePath = "/gradmask/#active"
	maskRatio      = 0.5
)

// Options of one benchmark.
type Options struct {
	Steps  int   // timed steps (≥ 1)
	Warmup int   // untimed steps after the first (compiling) one
	Seed   int64 // inputs, initialisation and masks
	// Precision of the matrix products (model.PrecisionF32 when empty).
	Precision model.Precision
	// CPUProfile, if set, receives a pprof CPU profile of the timed steps.
	CPUProfile io.Writer
	// Devices and Mesh: the training modes' step runs data-parallel over
	// that many devices (train.Config.Devices, Mesh), the global batch
	// being the preset's; the inference modes always run on one device.
	Devices int
	Mesh    bool
}

// Result of one (preset, mode).
type Result struct {
	Preset        string  `json:"preset"`
	Mode          string  `json:"mode"`
	Backend       string  `json:"backend"`
	Precision     string  `json:"precision"`
	MedianMs      float64 `json:"median_ms"`
	MinMs         float64 `json:"min_ms"`
	MaxMs         float64 `json:"max_ms"`
	SamplesPerSec float64 `json:"samples_per_s"`
	GFLOP         float64 `json:"gflop_per_step"`
	GFLOPs        float64 `json:"gflop_s"`
	PeakRSSMB     float64 `json:"peak_rss_mb"`
	CompileMs     float64 `json:"compile_ms"` // first step minus the median
	// Devices the step ran on (data-parallel when > 1 or Mesh).
	Devices int  `json:"devices"`
	Mesh    bool `json:"mesh,omitempty"`
	// CPUMs is the process's CPU time (user + system) per timed step: on a
	// shared machine it is steadier than the wall-clock time.
	CPUMs   float64   `json:"cpu_ms"`
	FirstMs float64   `json:"first_ms"`
	Steps   int       `json:"steps"`
	Warmup  int       `json:"warmup"`
	TimesMs []float64 `json:"times_ms,omitempty"`
}

// Batch is one step's random inputs: the text and image inputs of the
// pre-training step.
type Batch struct {
	pretrain.HostInputs
	NumPadded, NumMaskedOK int // padding tokens; masked positions that are real tokens
}

// NewBatch draws the inputs the reference draws: ids uniform in
// [1000, 30000) (clipped to the vocabulary), [CLS] first, [SEP] last, up to
// L/8 padding tokens at the end, two segments, P masked positions per text
// among the real tokens replaced by [MASK] and labelled with the original
// ids; normal pixels and uniform image labels.
func (p *Preset) NewBatch(seed int64) *Batch {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x62656e6368))
	Bt, L, P := p.TextBatch, p.TextLen, p.Predictions()
	lo, hi := 1000, min(30000, p.Vocab)
	ids := make([]int32, Bt*L)
	seg := make([]int32, Bt*L)
	mask := make([]int32, Bt*L)
	pos := make([]int32, Bt*P)
	lab := make([]int32, Bt*P)
	w := make([]float32, Bt*P)
	b := &Batch{}
	maxPad := max(1, L/8)
	for r := range Bt {
		row := ids[r*L : (r+1)*L]
		n := L - rng.IntN(maxPad+1)
		for j := range row {
			switch {
			case j == 0:
				row[j] = clsID
			case j == n-1:
				row[j] = sepID
			case j >= n:
				row[j] = padID
			default:
				row[j] = int32(lo + rng.IntN(hi-lo))
			}
			if j < n {
				mask[r*L+j] = 1
				if j >= n/2 {
					seg[r*L+j] = 1
				}
			}
		}
		b.NumPadded += L - n
		cand := rng.Perm(n - 2)[:P]
		slices.Sort(cand)
		for k, c := range cand {
			j := 1 + c
			pos[r*P+k], lab[r*P+k], w[r*P+k] = int32(j), row[j], 1
			row[j] = maskID
			if mask[r*L+j] == 1 {
				b.NumMaskedOK++
			}
		}
	}
	px := make([]float32, p.ImageBatch*p.Channels*p.ImageSize*p.ImageSize)
	for i := range px {
		px[i] = float32(rng.NormFloat64())
	}
	il := make([]int32, p.ImageBatch)
	for i := range il {
		il[i] = int32(rng.IntN(p.Classes))
	}
	b.Text = &pretrain.TextInputs[*tensors.Tensor]{
		IDs:       tensors.FromFlatDataAndDimensions(ids, Bt, L),
		Segments:  tensors.FromFlatDataAndDimensions(seg, Bt, L),
		Mask:      tensors.FromFlatDataAndDimensions(mask, Bt, L),
		Positions: tensors.FromFlatDataAndDimensions(pos, Bt, P),
		Labels:    tensors.FromFlatDataAndDimensions(lab, Bt, P),
		Weights:   tensors.FromFlatDataAndDimensions(w, Bt, P),
	}
	b.Image = &pretrain.ImageInputs[*tensors.Tensor]{
		Pixels: tensors.FromFlatDataAndDimensions(px, p.ImageBatch, p.Channels, p.ImageSize, p.ImageSize),
		Labels: tensors.FromFlatDataAndDimensions(il, p.ImageBatch),
	}
	return b
}

// Teachers are the frozen, randomly initialised text and image teachers of
// the training modes.
func (p *Preset) Teachers() (pretrain.Teachers, error) {
	sc, tc, ic := p.ModelConfig(), p.TextTeacherConfig(), p.ImageTeacherConfig()
	tt, err := pretrain.NewTeacher(&tc, &sc, "text", p.Vocab)
	if err != nil {
		return pretrain.Teachers{}, err
	}
	it, err := pretrain.NewTeacher(&ic, &sc, "image", p.Classes)
	if err != nil {
		return pretrain.Teachers{}, err
	}
	return pretrain.Teachers{Text: tt, Image: it}, nil
}

// NewStore holds the student (at the root) and the given teachers under
// pretrain.TextTeacherScope and pretrain.ImageTeacherScope.
func (p *Preset) NewStore(backend compute.Backend, t pretrain.Teachers, seed int64) (*mlmodel.Store, error) {
	sc := p.ModelConfig()
	store := mlmodel.NewStore()
	if err := store.SetRNGStateFromSeed(seed); err != nil {
		return nil, err
	}
	if err := model.CreateVariables(store, &sc); err != nil {
		return nil, err
	}
	if t.Text != nil {
		if err := pretrain.AddTeacher(store, pretrain.TextTeacherScope, t.Text, nil); err != nil {
			return nil, err
		}
	}
	if t.Image != nil {
		if err := pretrain.AddTeacher(store, pretrain.ImageTeacherScope, t.Image, nil); err != nil {
			return nil, err
		}
	}
	if err := store.InitializeVariables(backend, nil); err != nil {
		return nil, fmt.Errorf("initialising the benchmark model: %w", err)
	}
	return store, nil
}

// stepper runs one step and waits for its result.
type stepper interface {
	step() error
	close()
}

type trainStepper struct {
	tr   *train.Trainer
	args []*tensors.Tensor
}

func (s *trainStepper) step() error {
	_, err := s.tr.Step(s.args...)
	return err
}
func (s *trainStepper) close() { s.tr.Close() }

type inferStepper struct {
	exec    *mlmodel.Exec
	args    []any
	release *infer.Releaser
}

func (s *inferStepper) step() error {
	outs, err := s.exec.Exec(s.args...)
	if err != nil {
		return err
	}
	// Reading the one-element output (the first logit) waits for the result
	// on asynchronous backends without copying the logits to the host.
	_, err = tensors.CopyFlatData[float32](outs[1])
	// Done with the logits: their buffer serves the next step's.
	s.release.Release(outs...)
	return err
}
func (s *inferStepper) close() { s.exec.Finalize() }

// withFirst returns the logits and their first element, sliced from the
// logits in place: reshaping them to one axis first would copy all of them
// (an output is not the reshape's to reuse), which the timed step does not
// need.
func withFirst(logits *Node) []*Node {
	first := make([]SliceAxisSpec, logits.Rank())
	for i := range first {
		first[i] = AxisRange(0, 1)
	}
	return []*Node{logits, Reshape(Slice(logits, first...), 1)}
}

// OptimizerConfig is the reference's AdamW: lr 1e-4 constant, β=(0.9, 0.999),
// ε=1e-8, weight decay 0.01 on matrices only, clipping at global norm 1.
func OptimizerConfig() train.OptimizerConfig {
	c := train.DefaultOptimizerConfig(1 << 30)
	c.WarmupSteps, c.Decay = 0, train.DecayConstant
	return c
}

// NewStep builds (without compiling) the step of a mode.
func (p *Preset) newStepper(backend compute.Backend, mode string, opt Options) (stepper, *train.Trainer, error) {
	seed, precision := opt.Seed, opt.Precision
	if err := p.Validate(); err != nil {
		return nil, nil, err
	}
	if precision == "" {
		precision = model.PrecisionF32
	}
	b := p.NewBatch(seed + 1)
	switch mode {
	case ModeJoint, ModeGradMask, ModePCGrad, ModeCAGrad:
		teachers, err := p.Teachers()
		if err != nil {
			return nil, nil, err
		}
		store, err := p.NewStore(backend, teachers, seed)
		if err != nil {
			return nil, nil, err
		}
		model.SetPrecision(store, precision)
		c := p.PretrainConfig()
		c.Devices, c.Mesh = opt.Devices, opt.Mesh
		if mode == ModeGradMask {
			// Updates scheduled far away: the step accumulates |∇L_txt| as in
			// training, and the mask set by ForceMask is used as it is.
			c.Mask = train.MaskConfig{Enabled: true, FinalSparsity: maskRatio, Increment: maskRatio,
				StartStep: 1 << 29, EndStep: 1 << 30}
		}
		switch mode {
		case ModePCGrad:
			c.Combine.Rule = train.CombinePCGrad
		case ModeCAGrad:
			c.Combine.Rule, c.Combine.C = train.CombineCAGrad, 0.4
		}
		tr, err := pretrain.NewTrainer(backend, store, &c, teachers)
		if err != nil {
			return nil, nil, err
		}
		return &trainStepper{tr: tr, args: b.Flatten()}, tr, nil
	case ModeInferImage, ModeInferText:
		store, err := p.NewStore(backend, pretrain.Teachers{}, seed)
		if err != nil {
			return nil, nil, err
		}
		model.SetPrecision(store, precision)
		c := p.ModelConfig()
		var exec *mlmodel.Exec
		var args []any
		if mode == ModeInferImage {
			h, _ := c.Head(pretrain.ImageHead)
			exec, err = mlmodel.NewExec(backend, store, func(scope *mlmodel.Scope, px *Node) []*Node {
				return withFirst(c.HeadLogits(scope, h, model.CLS(c.EncodeImage(scope, px))))
			})
			args = []any{b.Image.Pixels}
		} else {
			h, _ := c.Head(pretrain.MLMHead)
			exec, err = mlmodel.NewExec(backend, store, func(scope *mlmodel.Scope, ids, seg, mask, pos *Node) []*Node {
				return withFirst(c.HeadLogits(scope, h, model.GatherPositions(c.EncodeText(scope, ids, seg, mask), pos)))
			})
			args = []any{b.Text.IDs, b.Text.Segments, b.Text.Mask, b.Text.Positions}
		}
		if err != nil {
			return nil, nil, err
		}
		return &inferStepper{exec: exec, args: args, release: infer.NewReleaser(backend)}, nil, nil
	}
	return nil, nil, fmt.Errorf("unknown mode %q (want %s)", mode, strings.Join(Modes, ", "))
}

// ForceMask sets every shared parameter's gradient mask to a random 0/1
// tensor with a share ratio of zeros and switches masking on, as if the
// schedule had made its updates. Call it after the first step has compiled
// the graph (which creates the mask variables).
func ForceMask(tr *train.Trainer, ratio float64, seed int64) error {
	m := tr.Mask()
	if m == nil {
		return fmt.Errorf("gradient masking is not enabled in this trainer")
	}
	params := m.Params()
	if len(params) == 0 {
		return fmt.Errorf("gradient mask: no shared parameters (step not compiled yet?)")
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6d61736b))
	for _, p := range params {
		data := make([]float32, p.Shape().Size())
		for i := range data {
			if rng.Float64() >= ratio {
				data[i] = 1
			}
		}
		if err := m.SetMaskValues(p, data); err != nil {
			return fmt.Errorf("setting the mask of %s: %w", p.Path(), err)
		}
	}
	active := tr.Store().GetVariable(maskActivePath)
	if active == nil {
		return fmt.Errorf("gradient mask: no switch variable %s", maskActivePath)
	}
	if err := active.SetValue(tensors.FromScalar(float32(1))); err != nil {
		return fmt.Errorf("switching the gradient mask on: %w", err)
	}
	return nil
}

// Run times one (preset, mode) on backend: a first step (graph building and
// compilation included), opt.Warmup untimed steps, then opt.Steps timed ones.
func Run(backend compute.Backend, p Preset, mode string, opt Options) (res *Result, err error) {
	if opt.Steps < 1 || opt.Warmup < 0 {
		return nil, fmt.Errorf("steps must be >= 1 and warm-up >= 0 (got %d, %d)", opt.Steps, opt.Warmup)
	}
	if opt.Devices < 0 {
		return nil, fmt.Errorf("devices must be >= 0, got %d", opt.Devices)
	}
	if n := opt.Devices; n > 1 && isTraining(mode) && (p.TextBatch%n != 0 || p.ImageBatch%n != 0) {
		return nil, fmt.Errorf("benchmark %s/%s: the batches (text %d, image %d) must be divisible by devices %d",
			p.Name, mode, p.TextBatch, p.ImageBatch, n)
	}
	var runErr error
	err = exceptions.TryCatch[error](func() {
		res, runErr = run(backend, p, mode, opt)
	})
	if err == nil {
		err = runErr
	}
	if err != nil {
		return nil, fmt.Errorf("benchmark %s/%s: %w", p.Name, mode, err)
	}
	return res, nil
}

func run(backend compute.Backend, p Preset, mode string, opt Options) (*Result, error) {
	if opt.Precision == "" {
		opt.Precision = model.PrecisionF32
	}
	s, tr, err := p.newStepper(backend, mode, opt)
	if err != nil {
		return nil, err
	}
	defer s.close()
	t0 := time.Now()
	if err := s.step(); err != nil {
		return nil, err
	}
	first := time.Since(t0)
	if mode == ModeGradMask {
		if err := ForceMask(tr, maskRatio, opt.Seed+2); err != nil {
			return nil, err
		}
	}
	for range opt.Warmup {
		if err := s.step(); err != nil {
			return nil, err
		}
	}
	if opt.CPUProfile != nil {
		if err := pprof.StartCPUProfile(opt.CPUProfile); err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	cpu0 := cpuTime()
	times := make([]float64, opt.Steps)
	for i := range times {
		t := time.Now()
		if err := s.step(); err != nil {
			return nil, err
		}
		times[i] = float64(time.Since(t).Microseconds()) / 1e3
	}
	cpu := cpuTime() - cpu0
	sorted := slices.Clone(times)
	sort.Float64s(sorted)
	med := median(sorted)
	flops := p.FLOPs(mode)
	devices, mesh := 1, false
	if tr != nil {
		cfg := tr.Config()
		devices, mesh = tr.Devices(), cfg.MeshDevices() > 0
	}
	firstMs := float64(first.Microseconds()) / 1e3
	return &Result{
		Preset: p.Name, Mode: mode, Backend: backend.Name(), Precision: string(opt.Precision),
		MedianMs: round3(med), MinMs: sorted[0], MaxMs: sorted[len(sorted)-1],
		SamplesPerSec: round3(float64(p.SamplesPerStep(mode)) / (med / 1e3)),
		GFLOP:         round3(flops / 1e9),
		GFLOPs:        round3(flops / (med / 1e3) / 1e9),
		PeakRSSMB:     PeakRSSMB(),
		CompileMs:     round3(max(0, firstMs-med)),
		CPUMs:         round3(cpu.Seconds() * 1e3 / float64(opt.Steps)),
		FirstMs:       firstMs,
		Devices:       devices, Mesh: mesh,
		Steps: opt.Steps, Warmup: opt.Warmup, TimesMs: times,
	}, nil
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }

// PeakRSSMB is the process's peak resident memory in MiB: VmHWM from
// /proc/self/status, or getrusage's maxrss where that is missing.
func PeakRSSMB() float64 {
	if f, err := os.Open("/proc/self/status"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
				fields := strings.Fields(rest)
				if len(fields) >= 1 {
					if kb, err := strconv.ParseFloat(fields[0], 64); err == nil {
						return round1(kb / 1024)
					}
				}
			}
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		return round1(float64(ru.Maxrss) / 1024) // kilobytes on Linux
	}
	return 0
}

// cpuTime is the process's user + system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func round1(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }
