package model

import (
	"fmt"
	"strings"
)

// VarSpec is one trainable variable of the model: its store path and shape.
type VarSpec struct {
	Path  string
	Shape []int
}

// Variables lists every trainable variable the model's graph creates, in a
// fixed order. Import and export walk this list, and a test checks it against
// the variables a real graph build creates.
func Variables(c *Config) []VarSpec {
	var vs []VarSpec
	add := func(shape []int, parts ...string) {
		vs = append(vs, VarSpec{Path: "/" + strings.Join(parts, "/"), Shape: shape})
	}
	D := c.Hidden
	denseVars := func(in, out int, parts ...string) {
		add([]int{out, in}, append(parts, "dense", "weights")...)
		add([]int{out}, append(parts, "dense", "biases")...)
	}
	lnVars := func(parts ...string) {
		add([]int{D}, append(parts, "layer_normalization", "gain")...)
		add([]int{D}, append(parts, "layer_normalization", "offset")...)
	}
	if c.HasText() {
		add([]int{c.VocabSize, D}, TextScope, "embeddings", "word", "embeddings")
		add([]int{c.MaxTextLength, D}, TextScope, "embeddings", "position", "embeddings")
		add([]int{c.SegmentVocab, D}, TextScope, "embeddings", "segment", "embeddings")
		if c.EmbeddingLayerNorm {
			lnVars(TextScope, "embeddings", "layer_norm")
		}
	}
	if c.HasImage() {
		P := c.PatchSize
		denseVars(c.Channels*P*P, D, ImageScope, "embeddings", "patch")
		add([]int{D}, ImageScope, "embeddings", "class_token")
		add([]int{c.NumPatches() + 1, D}, ImageScope, "embeddings", "position", "embeddings")
	}
	for i := range c.Layers {
		l := fmt.Sprintf("layer_%d", i)
		for _, p := range []string{"query", "key", "value", "output"} {
			denseVars(D, D, EncoderScope, l, "attention", "MultiHeadAttention", p)
		}
		lnVars(EncoderScope, l, "attention_norm")
		denseVars(D, c.MLP, EncoderScope, l, "mlp_in")
		denseVars(c.MLP, D, EncoderScope, l, "mlp_out")
		lnVars(EncoderScope, l, "mlp_norm")
	}
	if c.Norm == PreNorm {
		lnVars(EncoderScope, "final_norm")
	}
	for _, h := range c.TaskHeads {
		if h.Hidden {
			denseVars(D, D, HeadsScope, h.Name, "hidden")
			if h.HiddenNorm {
				lnVars(HeadsScope, h.Name, "hidden_norm")
			}
		}
		if h.Tied {
			add([]int{h.Outputs}, HeadsScope, h.Name, "output", "biases")
		} else {
			denseVars(D, h.Outputs, HeadsScope, h.Name, "output")
		}
	}
	return vs
}
