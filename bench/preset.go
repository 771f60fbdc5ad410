// Package bench times the ViT-BERT training and inference steps on fixed
// model sizes with random inputs of the right shapes, the same workload as the
// PyTorch reference in benchmarks/pytorch/bench.py.
//
// A training step is the pre-training step of the joint model as
// pretrain.NewTrainer builds it for `vitbert pretrain`: frozen text and image
// teachers (random here) run forward on the batch in the same compiled graph,
// the student's MLM and image-classification losses are distillation
// losses ((1−α)·CE + α·τ²·KL, α=0.5, τ=2), and AdamW (lr 1e-4, weight decay
// 0.01 on matrices, global-norm clipping at 1) updates the student.
//
// Modes:
//
//	joint        one backward pass of L_txt + L_img
//	gradmask     separate text and image gradients combined on the shared
//	             encoder by a fixed random 0/1 mask of ratio 0.5 (active)
//	pcgrad       separate gradients combined by PCGrad (train/combine.go)
//	cagrad       separate gradients combined by CAGrad, c = 0.4
//	infer-image  student forward to the image logits
//	infer-text   student forward to the MLM logits at the masked positions
//
// Achieved GFLOP/s counts 2·m·n·k per matrix product of the forward pass
// (attention QKᵀ and AV included, element-wise work and embedding gathers
// excluded); a training step counts the student's forward three times
// (forward + two backward products per forward product) plus one forward of
// each teacher. See FLOPs.
package bench

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/pretrain"
)

// Modes of a benchmark.
const (
	ModeJoint      = "joint"
	ModeGradMask   = "gradmask"
	ModePCGrad     = "pcgrad"
	ModeCAGrad     = "cagrad"
	ModeInferImage = "infer-image"
	ModeInferText  = "infer-text"
)

// Modes lists every mode, in report order.
var Modes = []string{ModeJoint, ModeGradMask, ModePCGrad, ModeCAGrad, ModeInferImage, ModeInferText}

// isTraining reports whether a mode times the training step.
func isTraining(mode string) bool {
	return mode == ModeJoint || mode == ModeGradMask || mode == ModePCGrad || mode == ModeCAGrad
}

// Vocab is the WordPiece vocabulary size of every preset (bert-base-uncased).
const Vocab = 30522

// Preset is one fixed benchmark size.
type Preset struct {
	Name                  string
	Layers, Hidden, Heads int
	MLP                   int
	TextLen               int // tokens per text
	ImageSize, Channels   int
	PatchSize             int
	TextBatch, ImageBatch int
	Classes               int
	Vocab                 int
}

// Presets lists the named presets in report order. "micro" exists for tests.
var Presets = []string{"tiny", "small", "base"}

// Lookup returns a preset by name: tiny, small, base (and micro, a
// one-block model for tests).
func Lookup(name string) (Preset, error) {
	switch name {
	case "tiny":
		return Preset{Name: name, Layers: 2, Hidden: 128, Heads: 4, MLP: 512, TextLen: 64,
			ImageSize: 32, Channels: 3, PatchSize: 4, TextBatch: 16, ImageBatch: 16, Classes: 10, Vocab: Vocab}, nil
	case "small":
		return Preset{Name: name, Layers: 4, Hidden: 256, Heads: 4, MLP: 1024, TextLen: 128,
			ImageSize: 32, Channels: 3, PatchSize: 4, TextBatch: 32, ImageBatch: 32, Classes: 10, Vocab: Vocab}, nil
	case "base":
		return Preset{Name: name, Layers: 12, Hidden: 768, Heads: 12, MLP: 3072, TextLen: 128,
			ImageSize: 224, Channels: 3, PatchSize: 16, TextBatch: 8, ImageBatch: 8, Classes: 1000, Vocab: Vocab}, nil
	case "micro":
		return Preset{Name: name, Layers: 1, Hidden: 16, Heads: 2, MLP: 32, TextLen: 16,
			ImageSize: 8, Channels: 3, PatchSize: 4, TextBatch: 2, ImageBatch: 2, Classes: 3, Vocab: 1200}, nil
	}
	return Preset{}, fmt.Errorf("unknown preset %q (want %s)", name, strings.Join(Presets, ", "))
}

// ParseList splits a comma-separated list and checks every item against allowed.
func ParseList(s string, allowed []string, what string) ([]string, error) {
	var out []string
	for _, x := range strings.Split(s, ",") {
		x = strings.TrimSpace(x)
		if x == "" {
			continue
		}
		if !slices.Contains(allowed, x) {
			return nil, fmt.Errorf("unknown %s %q (want %s)", what, x, strings.Join(allowed, ", "))
		}
		out = append(out, x)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no %s given", what)
	}
	return out, nil
}

// Predictions is the number of MLM positions per text: round(0.15·L).
func (p *Preset) Predictions() int { return max(1, int(0.15*float64(p.TextLen)+0.5)) }

// NumPatches is N = (H/P)².
func (p *Preset) NumPatches() int { n := p.ImageSize / p.PatchSize; return n * n }

// Validate checks that the sizes are consistent.
func (p *Preset) Validate() error {
	switch {
	case p.Layers <= 0 || p.Hidden <= 0 || p.Heads <= 0 || p.MLP <= 0:
		return fmt.Errorf("preset %s: layers, hidden, heads and mlp must be positive", p.Name)
	case p.Hidden%p.Heads != 0:
		return fmt.Errorf("preset %s: hidden %d is not a multiple of heads %d", p.Name, p.Hidden, p.Heads)
	case p.TextLen < 4 || p.TextBatch <= 0 || p.ImageBatch <= 0:
		return fmt.Errorf("preset %s: texts need at least 4 tokens and batches must be positive", p.Name)
	case p.PatchSize <= 0 || p.ImageSize%p.PatchSize != 0:
		return fmt.Errorf("preset %s: image size %d is not a multiple of patch size %d", p.Name, p.ImageSize, p.PatchSize)
	case p.Classes <= 0 || p.Vocab <= maskID || p.Channels <= 0:
		return fmt.Errorf("preset %s: classes, channels and vocabulary must be positive (vocabulary > %d)", p.Name, maskID)
	case p.Predictions() > p.TextLen-2-p.TextLen/8:
		return fmt.Errorf("preset %s: %d MLM positions do not fit in texts of %d tokens", p.Name, p.Predictions(), p.TextLen)
	}
	return nil
}

// ModelConfig is the student: both tokenizers, the shared pre-LN encoder
// and the paper's two heads (MLM over the vocabulary, image classes); no
// dropout, as in the reference.
func (p *Preset) ModelConfig() model.Config {
	c := model.Config{
		Hidden: p.Hidden, Layers: p.Layers, Heads: p.Heads, MLP: p.MLP,
		Norm: model.PreNorm, LayerNormEps: 1e-12, Activation: "gelu",
		ImageSize: p.ImageSize, Channels: p.Channels, PatchSize: p.PatchSize,
		VocabSize: p.Vocab, MaxTextLength: p.TextLen, SegmentVocab: 2,
	}
	c.AddHead(model.PaperHead(pretrain.MLMHead, model.HeadMLM, "text", p.Vocab))
	c.AddHead(model.PaperHead(pretrain.ImageHead, model.HeadClassify, "image", p.Classes))
	return c
}

// TextTeacherConfig is the frozen text teacher: text side, encoder, MLM head.
func (p *Preset) TextTeacherConfig() model.Config {
	c := p.ModelConfig()
	c.ImageSize, c.Channels, c.PatchSize = 0, 0, 0
	c.TaskHeads = c.TaskHeads[:1]
	return c
}

// ImageTeacherConfig is the frozen image teacher: image side, encoder, image head.
func (p *Preset) ImageTeacherConfig() model.Config {
	c := p.ModelConfig()
	c.VocabSize, c.MaxTextLength, c.SegmentVocab = 0, 0, 0
	c.TaskHeads = c.TaskHeads[1:]
	return c
}

// PretrainConfig is the pre-training configuration whose step the benchmark
// runs (pretrain.NewTrainer, with the teachers of Teachers): joint mode,
// distillation on both tasks (α=0.5, τ=2), the reference's optimiser.
func (p *Preset) PretrainConfig() pretrain.Config {
	return pretrain.Config{
		Mode: pretrain.ModeJoint, Preset: p.Name, Model: p.ModelConfig(), Steps: 1 << 30,
		TextBatch: p.TextBatch, ImageBatch: p.ImageBatch, Seed: 1, Optimizer: OptimizerConfig(),
		DistillText:  pretrain.Distill{Alpha: 0.5, Tau: 2},
		DistillImage: pretrain.Distill{Alpha: 0.5, Tau: 2},
		Data:         pretrain.Data{MaskProb: 0.15},
	}
}
