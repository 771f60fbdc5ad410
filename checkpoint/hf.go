package checkpoint

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/safetensors"
)

// hfConfig holds the fields of a Hugging Face config.json that BERT and ViT use.
type hfConfig struct {
	ModelType         string            `json:"model_type"`
	Architectures     []string          `json:"architectures"`
	HiddenSize        int               `json:"hidden_size"`
	NumLayers         int               `json:"num_hidden_layers"`
	NumHeads          int               `json:"num_attention_heads"`
	Intermediate      int               `json:"intermediate_size"`
	HiddenAct         string            `json:"hidden_act"`
	LayerNormEps      float64           `json:"layer_norm_eps"`
	HiddenDropout     float64           `json:"hidden_dropout_prob"`
	AttnDropout       float64           `json:"attention_probs_dropout_prob"`
	InitializerRange  float64           `json:"initializer_range"`
	VocabSize         int               `json:"vocab_size"`
	MaxPositions      int               `json:"max_position_embeddings"`
	TypeVocabSize     int               `json:"type_vocab_size"`
	ImageSize         int               `json:"image_size"`
	PatchSize         int               `json:"patch_size"`
	NumChannels       int               `json:"num_channels"`
	QKVBias           *bool             `json:"qkv_bias"`
	ID2Label          map[string]string `json:"id2label"`
	NumLabels         int               `json:"num_labels"`
	ProblemType       string            `json:"problem_type"`
	TieWordEmbeddings *bool             `json:"tie_word_embeddings"`
	PositionEmbedding string            `json:"position_embedding_type"`
}

// Architectures that import into vitbert.
var supportedArchs = map[string]string{
	"BertModel":                     "bert",
	"BertForMaskedLM":               "bert",
	"BertForPreTraining":            "bert",
	"BertForSequenceClassification": "bert",
	"ViTModel":                      "vit",
	"ViTForImageClassification":     "vit",
}

// Head names given to imported heads.
const (
	MLMHead        = "mlm"
	ClassifierHead = "classifier"
)

func (h *hfConfig) labels() []string {
	n := len(h.ID2Label)
	if n == 0 {
		n = h.NumLabels
	}
	if n == 0 {
		n = 2 // transformers' default num_labels
	}
	labels := make([]string, n)
	for i := range labels {
		if l, ok := h.ID2Label[strconv.Itoa(i)]; ok {
			labels[i] = l
		} else {
			labels[i] = fmt.Sprintf("LABEL_%d", i)
		}
	}
	return labels
}

// modelConfig turns a Hugging Face config into ours, with the heads that the
// architecture carries.
func (h *hfConfig) modelConfig(path string) (model.Config, string, error) {
	var c model.Config
	arch := ""
	if len(h.Architectures) > 0 {
		arch = h.Architectures[0]
	}
	switch h.ModelType {
	case "bert", "vit":
	case "":
		return c, "", fmt.Errorf("%s: no model_type (want bert or vit)", path)
	default:
		return c, "", fmt.Errorf("%s: unsupported model_type %q (vitbert imports bert and vit)", path, h.ModelType)
	}
	if arch == "" {
		if h.ModelType == "bert" {
			arch = "BertModel"
		} else {
			arch = "ViTModel"
		}
	}
	if mt, ok := supportedArchs[arch]; !ok || mt != h.ModelType {
		return c, "", fmt.Errorf("%s: unsupported architecture %q for model_type %q", path, arch, h.ModelType)
	}
	act := h.HiddenAct
	if act == "" {
		act = "gelu"
	}
	eps := h.LayerNormEps
	if eps == 0 {
		eps = 1e-12
	}
	c = model.Config{
		Hidden: h.HiddenSize, Layers: h.NumLayers, Heads: h.NumHeads, MLP: h.Intermediate,
		LayerNormEps: eps, Dropout: h.HiddenDropout, AttnDropout: h.AttnDropout, Activation: act, InitRange: h.InitializerRange,
	}
	if h.PositionEmbedding != "" && h.PositionEmbedding != "absolute" {
		return c, "", fmt.Errorf("%s: position_embedding_type %q is not supported (only absolute positions)", path, h.PositionEmbedding)
	}
	if h.ModelType == "bert" {
		c.Norm = model.PostNorm
		c.EmbeddingLayerNorm = true
		c.VocabSize, c.MaxTextLength, c.SegmentVocab = h.VocabSize, h.MaxPositions, h.TypeVocabSize
		switch arch {
		case "BertForMaskedLM", "BertForPreTraining":
			tied := h.TieWordEmbeddings == nil || *h.TieWordEmbeddings
			c.AddHead(model.HeadConfig{Name: MLMHead, Kind: model.HeadMLM, Outputs: h.VocabSize, Hidden: true,
				Activation: act, HiddenNorm: true, Tied: tied, Modality: "text"})
		case "BertForSequenceClassification":
			labels := h.labels()
			kind := model.HeadClassify
			if h.ProblemType == "regression" || len(labels) == 1 {
				kind = model.HeadRegress
			}
			c.AddHead(model.HeadConfig{Name: ClassifierHead, Kind: kind, Outputs: len(labels), Hidden: true,
				Activation: "tanh", Modality: "text", Labels: labels})
		}
	} else {
		if h.QKVBias != nil && !*h.QKVBias {
			return c, "", fmt.Errorf("%s: qkv_bias=false is not supported", path)
		}
		c.Norm = model.PreNorm
		c.ImageSize, c.PatchSize, c.Channels = h.ImageSize, h.PatchSize, h.NumChannels
		if c.Channels == 0 {
			c.Channels = 3
		}
		if arch == "ViTForImageClassification" {
			labels := h.labels()
			c.AddHead(model.HeadConfig{Name: ClassifierHead, Kind: model.HeadClassify, Outputs: len(labels),
				Modality: "image", Labels: labels})
		}
	}
	if err := c.Validate(); err != nil {
		return c, "", fmt.Errorf("%s: %w", path, err)
	}
	return c, arch, nil
}

// hfNames maps each of our variable paths to the Hugging Face tensor name it
// comes from. prefix is "bert." / "vit." or "" for checkpoints saved from the
// bare BertModel / ViTModel.
func hfNames(c *model.Config, modelType, prefix string) map[string]string {
	m := map[string]string{}
	lin := func(ours, theirs string) {
		m[ours+"/dense/weights"] = theirs + ".weight"
		m[ours+"/dense/biases"] = theirs + ".bias"
	}
	ln := func(ours, theirs string) {
		m[ours+"/layer_normalization/gain"] = theirs + ".weight"
		m[ours+"/layer_normalization/offset"] = theirs + ".bias"
	}
	for i := range c.Layers {
		ours := fmt.Sprintf("/encoder/layer_%d/", i)
		theirs := fmt.Sprintf("%sencoder.layer.%d.", prefix, i)
		att := "attention.self."
		if modelType == "vit" {
			att = "attention.attention."
		}
		for _, p := range []string{"query", "key", "value"} {
			lin(ours+"attention/MultiHeadAttention/"+p, theirs+att+p)
		}
		lin(ours+"attention/MultiHeadAttention/output", theirs+"attention.output.dense")
		lin(ours+"mlp_in", theirs+"intermediate.dense")
		lin(ours+"mlp_out", theirs+"output.dense")
		if modelType == "bert" {
			ln(ours+"attention_norm", theirs+"attention.output.LayerNorm")
			ln(ours+"mlp_norm", theirs+"output.LayerNorm")
		} else {
			ln(ours+"attention_norm", theirs+"layernorm_before")
			ln(ours+"mlp_norm", theirs+"layernorm_after")
		}
	}
	if modelType == "bert" {
		m["/text/embeddings/word/embeddings"] = prefix + "embeddings.word_embeddings.weight"
		m["/text/embeddings/position/embeddings"] = prefix + "embeddings.position_embeddings.weight"
		m["/text/embeddings/segment/embeddings"] = prefix + "embeddings.token_type_embeddings.weight"
		ln("/text/embeddings/layer_norm", prefix+"embeddings.LayerNorm")
		if h, ok := c.Head(MLMHead); ok {
			lin("/heads/mlm/hidden", "cls.predictions.transform.dense")
			ln("/heads/mlm/hidden_norm", "cls.predictions.transform.LayerNorm")
			if h.Tied {
				m["/heads/mlm/output/biases"] = "cls.predictions.bias"
			} else {
				m["/heads/mlm/output/dense/weights"] = "cls.predictions.decoder.weight"
				m["/heads/mlm/output/dense/biases"] = "cls.predictions.bias"
			}
		}
		if _, ok := c.Head(ClassifierHead); ok {
			lin("/heads/classifier/hidden", prefix+"pooler.dense")
			lin("/heads/classifier/output", "classifier")
		}
	} else {
		m["/image/embeddings/patch/dense/weights"] = prefix + "embeddings.patch_embeddings.projection.weight"
		m["/image/embeddings/patch/dense/biases"] = prefix + "embeddings.patch_embeddings.projection.bias"
		m["/image/embeddings/class_token"] = prefix + "embeddings.cls_token"
		m["/image/embeddings/position/embeddings"] = prefix + "embeddings.position_embeddings"
		ln("/encoder/final_norm", prefix+"layernorm")
		if _, ok := c.Head(ClassifierHead); ok {
			lin("/heads/classifier/output", "classifier")
		}
	}
	return m
}

// ignoredHF reports tensors a checkpoint may carry that vitbert does not use:
// buffers, the pooler of bare models, the NSP head, and a decoder weight that
// duplicates the tied word embeddings.
func ignoredHF(name string, c *model.Config) bool {
	switch {
	case strings.HasSuffix(name, "position_ids"), strings.HasSuffix(name, "token_type_ids"):
		return true
	case strings.Contains(name, "pooler."):
		_, ok := c.Head(ClassifierHead)
		return !ok || c.HasImage()
	case strings.HasPrefix(name, "cls.seq_relationship."):
		return true
	case name == "cls.predictions.decoder.weight" || name == "cls.predictions.decoder.bias":
		h, ok := c.Head(MLMHead)
		return ok && h.Tied
	}
	return false
}

// Model is a model configuration with its weights, keyed by our variable paths.
type Model struct {
	Config  model.Config
	Weights map[string][]float32
	Source  string // what it was loaded from, for messages
	Arch    string // the Hugging Face architecture, or "vitbert"
}

// ModelTypeVitbert is the model_type of vitbert's own model directories.
const ModelTypeVitbert = "vitbert"

// LoadDir loads a model directory: config.json plus model.safetensors (or
// shards listed in model.safetensors.index.json), either a Hugging Face
// BERT/ViT checkpoint or one saved by SaveDir. dir may also be a Hub id
// (ORG/NAME[@REVISION]) found in the local Hugging Face cache: see
// ResolveModelDir. Source of the result is the directory read.
func LoadDir(dir string) (*Model, error) {
	dir, err := ResolveModelDir(dir)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "config.json")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("loading model: %w", err)
	}
	var probe struct {
		ModelType string `json:"model_type"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("%s: not valid JSON: %w", cfgPath, err)
	}
	if probe.ModelType == ModelTypeVitbert {
		return loadOwn(cfgPath, raw, dir)
	}
	if probe.ModelType == ModelTypeExported {
		return loadExported(cfgPath, raw, dir)
	}
	var h hfConfig
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	c, arch, err := h.modelConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	f, err := readWeights(dir)
	if err != nil {
		return nil, fmt.Errorf("loading model weights: %w", err)
	}
	stPath := f.Path
	prefix := h.ModelType + "."
	if h.ModelType == "vit" {
		prefix = "vit."
	}
	if _, ok := f.Tensors[prefix+"embeddings.position_embeddings"]; !ok {
		if _, ok := f.Tensors[prefix+"embeddings.position_embeddings.weight"]; !ok {
			prefix = "" // saved from the bare model
		}
	}
	names := hfNames(&c, h.ModelType, prefix)
	m := &Model{Config: c, Weights: map[string][]float32{}, Source: dir, Arch: arch}
	used := map[string]bool{}
	for _, v := range model.Variables(&c) {
		hfName, ok := names[v.Path]
		if !ok {
			return nil, fmt.Errorf("%s: internal: no Hugging Face name for variable %s", stPath, v.Path)
		}
		t, ok := f.Tensors[hfName]
		if !ok {
			return nil, fmt.Errorf("%s: missing tensor %q (needed for %s)", stPath, hfName, v.Path)
		}
		vals, err := t.Float32s()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", stPath, err)
		}
		want := 1
		for _, d := range v.Shape {
			want *= d
		}
		if len(vals) != want || !compatibleShape(t.Shape, v.Shape) {
			return nil, fmt.Errorf("%s: tensor %q has shape %v, the config wants %v", stPath, hfName, t.Shape, v.Shape)
		}
		m.Weights[v.Path] = vals
		used[hfName] = true
	}
	var unknown []string
	for name := range f.Tensors {
		if !used[name] && !ignoredHF(name, &c) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("%s: unknown tensor %q for %s (%d unknown in all)", stPath, unknown[0], arch, len(unknown))
	}
	return m, nil
}

// compatibleShape accepts the layouts that map onto ours by a reshape: a conv
// kernel [D, C, P, P] onto the patch projection [D, C·P·P], and leading unit
// axes ([1, 1, D] class token, [1, N+1, D] positions).
func compatibleShape(theirs, ours []int) bool {
	for len(theirs) > len(ours) && theirs[0] == 1 {
		theirs = theirs[1:]
	}
	if len(theirs) == len(ours) {
		for i := range ours {
			if theirs[i] != ours[i] {
				return false
			}
		}
		return true
	}
	return len(theirs) == 4 && len(ours) == 2 && theirs[0] == ours[0] && theirs[1]*theirs[2]*theirs[3] == ours[1]
}

// ownConfig is config.json of vitbert's own model directories.
type ownConfig struct {
	ModelType string       `json:"model_type"`
	Model     model.Config `json:"model"`
}

func loadOwn(cfgPath string, raw []byte, dir string) (*Model, error) {
	var oc ownConfig
	if err := json.Unmarshal(raw, &oc); err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	f, err := validWeights(cfgPath, &oc.Model, dir)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: oc.Model, Weights: map[string][]float32{}, Source: dir, Arch: ModelTypeVitbert}
	if err := m.takeWeights(f, f.Path); err != nil {
		return nil, err
	}
	return m, nil
}

// validWeights validates a model directory's configuration and opens its weights.
func validWeights(cfgPath string, c *model.Config, dir string) (*safetensors.File, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	f, err := readWeights(dir)
	if err != nil {
		return nil, fmt.Errorf("loading model weights: %w", err)
	}
	return f, nil
}

// takeWeights fills m.Weights from a file keyed by our variable paths.
func (m *Model) takeWeights(f *safetensors.File, path string) error {
	want := map[string]bool{}
	for _, v := range model.Variables(&m.Config) {
		want[v.Path] = true
		t, ok := f.Tensors[v.Path]
		if !ok {
			return fmt.Errorf("%s: missing tensor %q", path, v.Path)
		}
		if !compatibleShape(t.Shape, v.Shape) {
			return fmt.Errorf("%s: tensor %q has shape %v, the config wants %v", path, v.Path, t.Shape, v.Shape)
		}
		vals, err := t.Float32s()
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		m.Weights[v.Path] = vals
	}
	for _, name := range f.Names() {
		if !want[name] {
			return fmt.Errorf("%s: unknown tensor %q for this config", path, name)
		}
	}
	return nil
}
