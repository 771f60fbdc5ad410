// Package testmodel builds the small models that tests of exporters and
// runtimes compare against vitbert's own forward pass.
package testmodel

import (
	"math/rand/v2"
	"strings"

	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/model"
)

// Joint is a small pre-LN unified model with a tied MLM head, a text
// classifier and an image classifier (the paper's 2-layer heads), with
// random weights large enough that every part moves the logits.
// With norm "post" it is BERT-like instead: post-LN, an embedding LayerNorm
// and tanh-GELU.
func Joint(norm string) (*checkpoint.Model, error) {
	c := model.Config{Hidden: 16, Layers: 2, Heads: 4, MLP: 24, Norm: model.PreNorm, LayerNormEps: 1e-6, Activation: "gelu",
		ImageSize: 8, Channels: 3, PatchSize: 4, VocabSize: 40, MaxTextLength: 12, SegmentVocab: 2}
	if norm == model.PostNorm {
		c.Norm, c.EmbeddingLayerNorm, c.Activation = model.PostNorm, true, "gelu_tanh"
	}
	c.AddHead(model.HeadConfig{Name: "mlm", Kind: model.HeadMLM, Outputs: 40, Hidden: true, Activation: "gelu", HiddenNorm: true, Tied: true, Modality: "text"})
	c.AddHead(model.PaperHead("sst2", model.HeadClassify, "text", 2))
	c.AddHead(model.PaperHead("classes", model.HeadClassify, "image", 5))
	if err := c.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	w := map[string][]float32{}
	for _, v := range model.Variables(&c) {
		n := 1
		for _, d := range v.Shape {
			n *= d
		}
		vals := make([]float32, n)
		for i := range vals {
			vals[i] = float32(rng.NormFloat64() * 0.3)
			if strings.HasSuffix(v.Path, "/gain") {
				vals[i] += 1
			}
		}
		w[v.Path] = vals
	}
	return &checkpoint.Model{Config: c, Weights: w, Source: "test", Arch: checkpoint.ModelTypeVitbert}, nil
}
