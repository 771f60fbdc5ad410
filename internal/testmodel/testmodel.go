// Package testmodel builds the small models that tests of exporters and
// runtimes compare against vitbert's own forward pass, and the model
// directories that tests of fine-tuning start from.
package testmodel

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/model"
)

// Joint is a small pre-LN unified model with a tied MLM head, a text
// classifier and an image classifier (the paper's 2-layer heads), with
// random weights large enough that every part moves the logits.
// With norm "post" it is BERT-like instead: post-LN, an embedding LayerNorm
// and tanh-GELU. An invalid configuration fails t.
func Joint(t testing.TB, norm string) *checkpoint.Model {
	t.Helper()
	c := model.Config{Hidden: 16, Layers: 2, Heads: 4, MLP: 24, Norm: model.PreNorm, LayerNormEps: 1e-6, Activation: "gelu",
		ImageSize: 8, Channels: 3, PatchSize: 4, VocabSize: 40, MaxTextLength: 12, SegmentVocab: 2}
	if norm == model.PostNorm {
		c.Norm, c.EmbeddingLayerNorm, c.Activation = model.PostNorm, true, "gelu_tanh"
	}
	c.AddHead(model.HeadConfig{Name: "mlm", Kind: model.HeadMLM, Outputs: 40, Hidden: true, Activation: "gelu", HiddenNorm: true, Tied: true, Modality: "text"})
	c.AddHead(model.PaperHead("sst2", model.HeadClassify, "text", 2))
	c.AddHead(model.PaperHead("classes", model.HeadClassify, "image", 5))
	if err := c.Validate(); err != nil {
		t.Fatal(err)
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
	return &checkpoint.Model{Config: c, Weights: w, Source: "test", Arch: checkpoint.ModelTypeVitbert}
}

// SaveFresh initialises c's variables with seed on the default backend and
// saves the model as a checkpoint directory under t.TempDir(), as vitbert
// pretrain's OUT/model would hold it. It returns the directory and the
// weights saved.
func SaveFresh(t testing.TB, c *model.Config, seed int64) (string, map[string][]float32) {
	t.Helper()
	backend, err := compute.New()
	if err != nil {
		t.Fatal(err)
	}
	store, err := model.NewStore(backend, c, seed)
	if err != nil {
		t.Fatal(err)
	}
	w, err := checkpoint.Weights(store, c)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := checkpoint.SaveDir(dir, c, w); err != nil {
		t.Fatal(err)
	}
	return dir, w
}
