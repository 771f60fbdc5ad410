// Package model is ViT-BERT: a ViT-style image patch tokenizer and a BERT-style
// text embedding feeding one shared Transformer encoder, with task heads.
//
// The graph-building functions take a GoMLX scope rooted at the model; the
// variables they create are laid out so that the training code can tell the
// shared encoder from the modality-specific parts by path alone:
//
//	/encoder/...           shared Transformer blocks (and the final LayerNorm)
//	/text/embeddings/...   word, position and segment embeddings
//	/image/embeddings/...  patch projection, class token, positions
//	/heads/<name>/...      task heads (MLM, image classes, downstream tasks)
package model

import (
	"fmt"
	"math"
)

// Norm placement in each encoder block.
const (
	PreNorm  = "pre"  // ViT: x + f(LN(x)), with a final LayerNorm.
	PostNorm = "post" // BERT: LN(x + f(x)).
)

// Head kinds.
const (
	HeadClassify = "classify" // logits over Outputs classes from the [CLS] embedding.
	HeadRegress  = "regress"  // one real value from the [CLS] embedding (STS-B).
	HeadMLM      = "mlm"      // vocabulary logits at chosen token positions.
)

// HeadConfig describes one task head. The paper's head is a 2-layer MLP with
// GELU whose hidden size is the encoder's: Hidden=true, Activation="gelu".
// Imported checkpoints need the variants: BERT's pooler is tanh, its MLM
// transform adds a LayerNorm and ties the decoder to the word embeddings, and
// ViT's classifier is a single linear layer.
type HeadConfig struct {
	Name       string   `json:"name"`
	Kind       string   `json:"kind"`
	Outputs    int      `json:"outputs"`               // classes, vocabulary size or 1
	Hidden     bool     `json:"hidden"`                // a D→D layer before the output layer
	Activation string   `json:"activation,omitempty"`  // of the hidden layer: gelu, tanh, relu
	HiddenNorm bool     `json:"hidden_norm,omitempty"` // LayerNorm after the hidden activation (BERT MLM)
	Tied       bool     `json:"tied,omitempty"`        // MLM output weights are the word embeddings
	Modality   string   `json:"modality"`              // "text" or "image": which input it reads
	Labels     []string `json:"labels,omitempty"`
}

// Config is every size and switch of the model.
type Config struct {
	Hidden       int     `json:"hidden_size"`
	Layers       int     `json:"num_layers"`
	Heads        int     `json:"num_heads"`
	MLP          int     `json:"mlp_size"`
	Norm         string  `json:"norm"` // PreNorm or PostNorm
	LayerNormEps float64 `json:"layer_norm_eps"`
	Dropout      float64 `json:"dropout"`
	AttnDropout  float64 `json:"attention_dropout"`
	Activation   string  `json:"activation"` // gelu (exact), gelu_tanh, relu
	// InitRange is the standard deviation of the normal initialisation of
	// every weight and embedding (Hugging Face's initializer_range); 0 means
	// BERT's and ViT's 0.02. It matters only for variables drawn fresh: a
	// model trained from scratch, a new task head.
	InitRange float64 `json:"initializer_range,omitempty"`

	// Image tokenizer. ImageSize 0 means the model has no image side.
	ImageSize int `json:"image_size"`
	Channels  int `json:"channels"`
	PatchSize int `json:"patch_size"`

	// Text embedding. VocabSize 0 means the model has no text side.
	VocabSize          int  `json:"vocab_size"`
	MaxTextLength      int  `json:"max_text_length"`
	SegmentVocab       int  `json:"segment_vocab"`
	EmbeddingLayerNorm bool `json:"embedding_layer_norm"`

	TaskHeads []HeadConfig `json:"heads"`
}

// Tiny is a laptop-sized unified model: 2 blocks, D=128, 4 heads, 32×32×3
// images in 4×4 patches, texts of up to 64 WordPiece tokens.
func Tiny() Config {
	return Config{
		Hidden: 128, Layers: 2, Heads: 4, MLP: 512, Norm: PreNorm, LayerNormEps: 1e-12,
		Activation: "gelu",
		ImageSize:  32, Channels: 3, PatchSize: 4,
		VocabSize: 30522, MaxTextLength: 64, SegmentVocab: 2,
	}
}

// Base is BERT-base / ViT-B/16 sized.
func Base() Config {
	return Config{
		Hidden: 768, Layers: 12, Heads: 12, MLP: 3072, Norm: PreNorm, LayerNormEps: 1e-12,
		Activation: "gelu", Dropout: 0.1,
		ImageSize: 224, Channels: 3, PatchSize: 16,
		VocabSize: 30522, MaxTextLength: 128, SegmentVocab: 2,
	}
}

// InitStd is the standard deviation of the normal initialisation: InitRange,
// or DefaultInitRange when it is 0.
func (c *Config) InitStd() float64 {
	if c.InitRange > 0 {
		return c.InitRange
	}
	return DefaultInitRange
}

// HasText and HasImage tell which tokenizers the model has.
func (c *Config) HasText() bool  { return c.VocabSize > 0 }
func (c *Config) HasImage() bool { return c.ImageSize > 0 }

// NumPatches is N = (H/P)·(W/P).
func (c *Config) NumPatches() int {
	if c.PatchSize == 0 {
		return 0
	}
	n := c.ImageSize / c.PatchSize
	return n * n
}

// Head returns the head of that name.
func (c *Config) Head(name string) (*HeadConfig, bool) {
	for i := range c.TaskHeads {
		if c.TaskHeads[i].Name == name {
			return &c.TaskHeads[i], true
		}
	}
	return nil, false
}

// AddHead adds or replaces a head.
func (c *Config) AddHead(h HeadConfig) {
	for i := range c.TaskHeads {
		if c.TaskHeads[i].Name == h.Name {
			c.TaskHeads[i] = h
			return
		}
	}
	c.TaskHeads = append(c.TaskHeads, h)
}

// PaperHead is the paper's 2-layer GELU MLP head.
func PaperHead(name, kind, modality string, outputs int) HeadConfig {
	return HeadConfig{Name: name, Kind: kind, Outputs: outputs, Hidden: true, Activation: "gelu", Modality: modality}
}

// Validate reports the first inconsistency in the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Hidden <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.MLP <= 0:
		return fmt.Errorf("model config: hidden_size, num_layers, num_heads and mlp_size must be positive (got %d, %d, %d, %d)", c.Hidden, c.Layers, c.Heads, c.MLP)
	case c.Hidden%c.Heads != 0:
		return fmt.Errorf("model config: hidden_size %d is not a multiple of num_heads %d", c.Hidden, c.Heads)
	case c.Norm != PreNorm && c.Norm != PostNorm:
		return fmt.Errorf("model config: norm must be %q or %q, got %q", PreNorm, PostNorm, c.Norm)
	case !(c.InitRange >= 0) || math.IsInf(c.InitRange, 0):
		return fmt.Errorf("model config: initializer_range must be a finite value ≥ 0 (0: BERT's %g), got %g", DefaultInitRange, c.InitRange)
	case c.LayerNormEps <= 0:
		return fmt.Errorf("model config: layer_norm_eps must be positive, got %g", c.LayerNormEps)
	case c.Dropout < 0 || c.Dropout >= 1 || c.AttnDropout < 0 || c.AttnDropout >= 1:
		return fmt.Errorf("model config: dropout rates must be in [0,1)")
	case !c.HasText() && !c.HasImage():
		return fmt.Errorf("model config: neither an image side (image_size) nor a text side (vocab_size)")
	}
	if _, err := activationType(c.Activation); err != nil {
		return fmt.Errorf("model config: %w", err)
	}
	if c.HasImage() {
		if c.PatchSize <= 0 || c.ImageSize%c.PatchSize != 0 {
			return fmt.Errorf("model config: image_size %d is not a multiple of patch_size %d", c.ImageSize, c.PatchSize)
		}
		if c.Channels <= 0 {
			return fmt.Errorf("model config: channels must be positive, got %d", c.Channels)
		}
	}
	if c.HasText() && (c.MaxTextLength <= 0 || c.SegmentVocab <= 0) {
		return fmt.Errorf("model config: max_text_length and segment_vocab must be positive for a text model")
	}
	seen := map[string]bool{}
	for _, h := range c.TaskHeads {
		if seen[h.Name] || h.Name == "" {
			return fmt.Errorf("model config: head name %q empty or repeated", h.Name)
		}
		seen[h.Name] = true
		switch h.Kind {
		case HeadClassify, HeadRegress, HeadMLM:
		default:
			return fmt.Errorf("model config: head %q: unknown kind %q", h.Name, h.Kind)
		}
		if h.Outputs <= 0 {
			return fmt.Errorf("model config: head %q: outputs must be positive", h.Name)
		}
		if h.Modality != "text" && h.Modality != "image" {
			return fmt.Errorf("model config: head %q: modality must be text or image, got %q", h.Name, h.Modality)
		}
		if h.Kind == HeadMLM && (h.Modality != "text" || !c.HasText()) {
			return fmt.Errorf("model config: MLM head %q needs the text side", h.Name)
		}
		if h.Tied && h.Outputs != c.VocabSize {
			return fmt.Errorf("model config: tied head %q must have vocab_size outputs", h.Name)
		}
		if h.Hidden {
			if _, err := activationType(h.Activation); err != nil {
				return fmt.Errorf("model config: head %q: %w", h.Name, err)
			}
		}
	}
	return nil
}
