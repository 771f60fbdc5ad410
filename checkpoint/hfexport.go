package checkpoint

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/safetensors"
)

// ModelTypeExported is the model_type of models exported with their own
// modelling file (ExportHFCustom).
const ModelTypeExported = "vitbert_hf"

// ModelingFile is the PyTorch modelling file written beside an exported model.
const ModelingFile = "modeling_vitbert.py"

//go:embed hf_modeling_vitbert.py
var modelingSource []byte

// layerIndex matches an encoder block's scope, layer_N.
var layerIndex = regexp.MustCompile(`^layer_(\d+)$`)

// torchName is the PyTorch parameter name of one of our variables in the
// exported modelling file: the GoMLX layer scopes (dense,
// layer_normalization, MultiHeadAttention) are dropped, layer_N becomes
// layers.N, weights/gain become weight and biases/offset bias; embedding
// tables are an nn.Embedding's weight.
func torchName(path string) string {
	var out []string
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i, p := range parts {
		last := i == len(parts)-1
		switch {
		case p == "dense" || p == "layer_normalization" || p == "MultiHeadAttention":
		case last && (p == "weights" || p == "gain" || p == "embeddings" && i > 2):
			out = append(out, "weight")
		case last && (p == "biases" || p == "offset"):
			out = append(out, "bias")
		case layerIndex.MatchString(p):
			out = append(out, "layers", layerIndex.FindStringSubmatch(p)[1])
		default:
			out = append(out, p)
		}
	}
	return strings.Join(out, ".")
}

// SideConfig is c restricted to one modality ("text" or "image"): the other
// side's embeddings and heads are dropped, the shared encoder is kept.
func SideConfig(c *model.Config, modality string) (model.Config, error) {
	s := *c
	s.TaskHeads = nil
	switch modality {
	case "text":
		if !c.HasText() {
			return s, fmt.Errorf("the model has no text side")
		}
		s.ImageSize, s.PatchSize = 0, 0
	case "image":
		if !c.HasImage() {
			return s, fmt.Errorf("the model has no image side")
		}
		s.VocabSize, s.MaxTextLength, s.SegmentVocab, s.EmbeddingLayerNorm = 0, 0, 0, false
	default:
		return s, fmt.Errorf("modality %q (want text or image)", modality)
	}
	for _, h := range c.TaskHeads {
		if h.Modality == modality {
			s.TaskHeads = append(s.TaskHeads, h)
		}
	}
	return s, nil
}

// ExportHFCustom writes one side (modality "text" or "image") of a model as a
// Hugging Face folder with its own modelling file: config.json (model_type
// vitbert_hf, the model's configuration under "vitbert", and an auto_map to
// modeling_vitbert.py), model.safetensors with PyTorch parameter names, and
// modeling_vitbert.py, which reproduces vitbert's forward pass in PyTorch.
// Every architecture vitbert builds exports this way, pre-LN text included.
func ExportHFCustom(dir string, c *model.Config, weights map[string][]float32, modality string) error {
	side, err := SideConfig(c, modality)
	if err != nil {
		return fmt.Errorf("exporting to %s: %w", dir, err)
	}
	var ts []*safetensors.Tensor
	for _, v := range model.Variables(&side) {
		vals, ok := weights[v.Path]
		if !ok {
			return fmt.Errorf("exporting to %s: no weights for %s", dir, v.Path)
		}
		ts = append(ts, safetensors.NewF32(torchName(v.Path), v.Shape, vals))
	}
	cfg := map[string]any{
		"model_type":    ModelTypeExported,
		"architectures": []string{"VitbertModel"},
		"auto_map": map[string]string{
			"AutoConfig": "modeling_vitbert.VitbertConfig",
			"AutoModel":  "modeling_vitbert.VitbertModel",
		},
		"modality":            modality,
		"hidden_size":         side.Hidden,
		"num_hidden_layers":   side.Layers,
		"num_attention_heads": side.Heads,
		"vitbert":             side,
	}
	return writeHFFolder(dir, cfg, ts, map[string][]byte{ModelingFile: modelingSource})
}

// Export writes a model in Hugging Face layout under out and returns the
// folders written. A BERT-shaped or ViT-shaped model whose head (if any) has
// a transformers class is exported with the exact mapping (ExportHF); any
// other one-modality model with the modelling file (ExportHFCustom); a
// unified model as two such folders, out/text and out/image, each holding the
// shared encoder's weights with its own side's embeddings and heads.
func Export(out string, c *model.Config, weights map[string][]float32) ([]string, error) {
	if c.HasText() && c.HasImage() {
		var dirs []string
		for _, m := range []string{"text", "image"} {
			d := filepath.Join(out, m)
			if err := ExportHFCustom(d, c, weights, m); err != nil {
				return nil, err
			}
			dirs = append(dirs, d)
		}
		return dirs, nil
	}
	if hfEquivalent(c) {
		return []string{out}, ExportHF(out, c, weights)
	}
	modality := "image"
	if c.HasText() {
		modality = "text"
	}
	return []string{out}, ExportHFCustom(out, c, weights, modality)
}

// hfEquivalent reports whether ExportHF can write c: a post-LN text model
// with an embedding LayerNorm (BERT) or a pre-LN image model (ViT), with at
// most one head of a shape transformers has.
func hfEquivalent(c *model.Config) bool {
	modelType := hfModelType(c)
	if modelType == "" || len(c.TaskHeads) > 1 {
		return false
	}
	for _, h := range c.TaskHeads {
		if arch, _ := hfHead(modelType, h); arch == "" {
			return false
		}
	}
	return true
}

// loadExported reads a folder written by ExportHFCustom.
func loadExported(cfgPath string, raw []byte, dir string) (*Model, error) {
	var cfg struct {
		Vitbert *model.Config `json:"vitbert"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	if cfg.Vitbert == nil {
		return nil, fmt.Errorf("%s: model_type %s without its \"vitbert\" section", cfgPath, ModelTypeExported)
	}
	f, err := validWeights(cfgPath, cfg.Vitbert, dir)
	if err != nil {
		return nil, err
	}
	ours := map[string]string{}
	for _, v := range model.Variables(cfg.Vitbert) {
		ours[torchName(v.Path)] = v.Path
	}
	renamed := &safetensors.File{Path: f.Path, Tensors: map[string]*safetensors.Tensor{}, Metadata: f.Metadata}
	for name, t := range f.Tensors {
		p, ok := ours[name]
		if !ok {
			return nil, fmt.Errorf("%s: unknown tensor %q for this config", f.Path, name)
		}
		renamed.Tensors[p] = t
	}
	m := &Model{Config: *cfg.Vitbert, Weights: map[string][]float32{}, Source: dir, Arch: ModelTypeExported}
	if err := m.takeWeights(renamed, f.Path); err != nil {
		return nil, err
	}
	return m, nil
}
