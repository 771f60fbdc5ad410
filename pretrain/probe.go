package pretrain

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/vitbert/vitbert/atomicfs"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/safetensors"
	"github.com/vitbert/vitbert/train"
)

// ProbeDir holds a run's probes: activation maps at chosen steps and the
// gradient masks at every mask update.
const ProbeDir = "probes"

// Activations is the mean |activation| of every MLP neuron of every block,
// over the tokens of a fixed probe batch: Text[layer][neuron], Image[layer][neuron].
type Activations struct {
	Step  int         `json:"step"`
	Text  [][]float32 `json:"text,omitempty"`
	Image [][]float32 `json:"image,omitempty"`
}

// ActivationsFile and MasksFile name the probe files of a step / update.
func ActivationsFile(step int) string { return fmt.Sprintf("activations-step-%07d.json", step) }
func MasksFile(update int) string     { return fmt.Sprintf("masks-update-%02d.safetensors", update) }

// prober takes the probes of a run.
type prober struct {
	s     *Setup
	dir   string
	steps map[int]bool
	in    []*tensors.Tensor // probe inputs: text ids, segments, mask; pixels
}

func newProber(s *Setup, outDir string, steps []int) (*prober, error) {
	p := &prober{s: s, dir: filepath.Join(outDir, ProbeDir), steps: map[int]bool{}}
	for _, st := range steps {
		p.steps[st] = true
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, err
	}
	if s.Stream.Text != nil {
		tb, err := s.Stream.Text.Batcher.Batch(0, 0)
		if err != nil {
			return nil, err
		}
		ids, seg, mask, _, _, _ := s.Stream.Text.textInputs(tb)
		p.in = append(p.in, i32(ids), i32(seg), i32(mask))
	}
	if s.Stream.Images != nil {
		ib, err := s.Stream.Images.Batch(0, 0)
		if err != nil {
			return nil, err
		}
		p.in = append(p.in, tensors.FromFlatDataAndDimensions(ib.Pixels, ib.B, ib.C, ib.H, ib.W))
	}
	return p, nil
}

// meanAbs reduces activations [B, S, M] to [M], over the real tokens.
func meanAbs(a, mask *graph.Node) *graph.Node {
	abs := graph.Abs(a)
	if mask == nil {
		return graph.ReduceMean(abs, 0, 1)
	}
	w := graph.ConvertDType(graph.InsertAxes(mask, -1), a.DType())
	return graph.Div(graph.ReduceSum(graph.Mul(abs, w), 0, 1), graph.ReduceSum(w, 0, 1))
}

// activations runs the probe batch through a copy of the current weights (a
// fresh store, so no executor sees stale values) and writes the map.
func (p *prober) activations(step int) error {
	c := &p.s.Config
	w, err := checkpoint.Weights(p.s.Store, &c.Model)
	if err != nil {
		return err
	}
	store := mlmodel.NewStore()
	if err := checkpoint.Fill(store, &c.Model, w); err != nil {
		return err
	}
	if err := store.InitializeVariables(p.s.Backend, nil); err != nil {
		return err
	}
	e, err := mlmodel.NewExec(p.s.Backend, store, func(scope *mlmodel.Scope, in []*graph.Node) []*graph.Node {
		var out []*graph.Node
		i := 0
		if p.s.Stream.Text != nil {
			_, acts := c.Model.EncodeProbe(scope, c.Model.TextEmbed(scope, in[0], in[1]), graph.NotEqual(in[2], graph.ZerosLike(in[2])))
			for _, a := range acts {
				out = append(out, meanAbs(a, in[2]))
			}
			i = 3
		}
		if p.s.Stream.Images != nil {
			_, acts := c.Model.EncodeProbe(scope, c.Model.ImageEmbed(scope, in[i]), nil)
			for _, a := range acts {
				out = append(out, meanAbs(a, nil))
			}
		}
		return out
	})
	if err != nil {
		return err
	}
	args := make([]any, len(p.in))
	for i, t := range p.in {
		args[i] = t
	}
	outs, err := e.Exec(args...)
	if err != nil {
		return fmt.Errorf("activation probe: %w", err)
	}
	rec := Activations{Step: step}
	L := c.Model.Layers
	for k, o := range outs {
		v, err := tensors.CopyFlatData[float32](o)
		if err != nil {
			return err
		}
		if p.s.Stream.Text != nil && k < L {
			rec.Text = append(rec.Text, v)
		} else {
			rec.Image = append(rec.Image, v)
		}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return atomicfs.WriteBytes(filepath.Join(p.dir, ActivationsFile(step)), b)
}

// masks writes every shared parameter's gradient mask after an update.
func (p *prober) masks(rep *train.MaskReport) error {
	gm := p.s.Trainer.Mask()
	var ts []*safetensors.Tensor
	for _, param := range gm.Params() {
		v, err := gm.MaskValues(param)
		if err != nil {
			return err
		}
		ts = append(ts, safetensors.NewF32(param.Path(), param.Shape().Dimensions, v))
	}
	meta := map[string]string{"step": fmt.Sprint(rep.Step), "update": fmt.Sprint(rep.Update), "sparsity": fmt.Sprint(rep.Sparsity)}
	return safetensors.WriteFile(filepath.Join(p.dir, MasksFile(rep.Update)), ts, meta)
}

func (p *prober) onStep(res *train.StepResult) error {
	if res.MaskUpdate != nil {
		if err := p.masks(res.MaskUpdate); err != nil {
			return err
		}
	}
	if p.steps[res.Step] {
		return p.activations(res.Step)
	}
	return nil
}

// ProbeSteps spreads n probe steps over a run of the given length, the first
// at step 0 (before training).
func ProbeSteps(steps, n int) []int {
	out := []int{0}
	for k := 1; k < n; k++ {
		out = append(out, int(math.Round(float64(k)*float64(steps)/float64(n-1))))
	}
	return out
}
