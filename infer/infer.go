// Package infer runs a loaded model forward: final hidden states and head
// logits for text and image batches.
package infer

import (
	"fmt"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/model"
)

// Predictor holds a model's weights on a backend and its compiled forward
// passes (one per head and input shape, compiled on first use). It is safe
// for concurrent use: the map of passes is guarded by mu, and each pass keeps
// its compiled shapes under its own lock.
type Predictor struct {
	Config  model.Config
	backend compute.Backend
	store   *mlmodel.Store
	mu      sync.Mutex
	execs   map[string]*mlmodel.Exec
	release *Releaser
}

// New loads m's weights onto backend.
func New(backend compute.Backend, m *checkpoint.Model) (*Predictor, error) {
	store, err := m.NewStore(backend)
	if err != nil {
		return nil, err
	}
	return &Predictor{Config: m.Config, backend: backend, store: store, execs: map[string]*mlmodel.Exec{},
		release: NewReleaser(backend)}, nil
}

// Output is one forward pass: Hidden is [B, S, D] row-major, Logits the head
// output ([B, K], or [B, P, V] for MLM; nil without a head).
type Output struct {
	Hidden      []float32
	HiddenShape []int
	Logits      []float32
	LogitsShape []int
}

func (p *Predictor) head(name, modality string) (*model.HeadConfig, error) {
	if name == "" {
		return nil, nil
	}
	h, ok := p.Config.Head(name)
	if !ok {
		return nil, fmt.Errorf("the model has no head %q", name)
	}
	if h.Modality != modality {
		return nil, fmt.Errorf("head %q reads %s, not %s", name, h.Modality, modality)
	}
	return h, nil
}

// Text runs a text batch (ids, segments, attention mask: [B, L]) and, with a
// head, its logits — at positions [B, P] for an MLM head.
func (p *Predictor) Text(headName string, ids, segments, mask, positions [][]int32) (*Output, error) {
	c := &p.Config
	if !c.HasText() {
		return nil, fmt.Errorf("the model has no text side")
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("empty text batch")
	}
	if L := len(ids[0]); L > c.MaxTextLength {
		return nil, fmt.Errorf("text of %d tokens is longer than the model's position table (%d)", L, c.MaxTextLength)
	}
	for _, row := range ids {
		for _, id := range row {
			if id < 0 || int(id) >= c.VocabSize {
				return nil, fmt.Errorf("token id %d outside the vocabulary of %d", id, c.VocabSize)
			}
		}
	}
	h, err := p.head(headName, "text")
	if err != nil {
		return nil, err
	}
	if h != nil && h.Kind == model.HeadMLM {
		if positions == nil {
			return nil, fmt.Errorf("MLM head %q needs token positions", headName)
		}
		for _, row := range positions {
			for _, pos := range row {
				if pos < 0 || int(pos) >= len(ids[0]) {
					return nil, fmt.Errorf("MLM position %d outside the text of %d tokens", pos, len(ids[0]))
				}
			}
		}
	}
	e, err := p.exec("text/"+headName, func() (*mlmodel.Exec, error) {
		return mlmodel.NewExec(p.backend, p.store, func(scope *mlmodel.Scope, ids, seg, mask, pos *graph.Node) []*graph.Node {
			hidden := c.EncodeText(scope, ids, seg, mask)
			if h == nil {
				return []*graph.Node{hidden}
			}
			x := model.CLS(hidden)
			if h.Kind == model.HeadMLM {
				x = model.GatherPositions(hidden, pos)
			}
			return []*graph.Node{hidden, c.HeadLogits(scope, h, x)}
		})
	})
	if err != nil {
		return nil, err
	}
	if positions == nil {
		positions = make([][]int32, len(ids))
		for i := range positions {
			positions[i] = []int32{0}
		}
	}
	outs, err := e.Exec(ids, segments, mask, positions)
	if err != nil {
		return nil, err
	}
	return p.toOutput(outs)
}

// Image runs pixels [B, C, H, W] (flat, normalised) and, with a head, its logits.
func (p *Predictor) Image(headName string, pixels []float32, batch int) (*Output, error) {
	c := &p.Config
	if !c.HasImage() {
		return nil, fmt.Errorf("the model has no image side")
	}
	if want := batch * c.Channels * c.ImageSize * c.ImageSize; len(pixels) != want || batch <= 0 {
		return nil, fmt.Errorf("got %d pixel values for %d images, the model wants %d×%d×%d each", len(pixels), batch, c.Channels, c.ImageSize, c.ImageSize)
	}
	h, err := p.head(headName, "image")
	if err != nil {
		return nil, err
	}
	e, err := p.exec("image/"+headName, func() (*mlmodel.Exec, error) {
		return mlmodel.NewExec(p.backend, p.store, func(scope *mlmodel.Scope, px *graph.Node) []*graph.Node {
			hidden := c.EncodeImage(scope, px)
			if h == nil {
				return []*graph.Node{hidden}
			}
			return []*graph.Node{hidden, c.HeadLogits(scope, h, model.CLS(hidden))}
		})
	})
	if err != nil {
		return nil, err
	}
	t := tensors.FromFlatDataAndDimensions(pixels, batch, c.Channels, c.ImageSize, c.ImageSize)
	outs, err := e.Exec(t)
	if err != nil {
		return nil, err
	}
	return p.toOutput(outs)
}

// exec returns the pass stored under key, building it with build on first use.
func (p *Predictor) exec(key string, build func() (*mlmodel.Exec, error)) (*mlmodel.Exec, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.execs[key]; ok {
		return e, nil
	}
	e, err := build()
	if err != nil {
		return nil, err
	}
	// No cap on the compiled shapes: predict runs one, and the server
	// compiles its fixed set of batch and length buckets before serving.
	e.SetMaxCache(-1)
	p.execs[key] = e
	return e, nil
}

// toOutput copies the pass's outputs to the host and releases them.
func (p *Predictor) toOutput(outs []*tensors.Tensor) (*Output, error) {
	defer p.release.Release(outs...)
	o := &Output{}
	var err error
	if o.Hidden, err = tensors.CopyFlatData[float32](outs[0]); err != nil {
		return nil, err
	}
	o.HiddenShape = outs[0].Shape().Dimensions
	if len(outs) > 1 {
		if o.Logits, err = tensors.CopyFlatData[float32](outs[1]); err != nil {
			return nil, err
		}
		o.LogitsShape = outs[1].Shape().Dimensions
	}
	return o, nil
}
