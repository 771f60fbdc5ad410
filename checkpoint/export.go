package checkpoint

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/vitbert/vitbert/atomicfs"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/safetensors"
)

// ExportHF writes a model as a Hugging Face checkpoint (config.json +
// model.safetensors) that transformers loads: a post-LN text-only model with
// an embedding LayerNorm becomes BERT, a pre-LN image-only model ViT. Heads
// must have the shapes the Hugging Face classes expect (BERT's MLM transform,
// BERT's tanh pooler + classifier, ViT's linear classifier).
func ExportHF(dir string, c *model.Config, weights map[string][]float32) error {
	modelType := hfModelType(c)
	if modelType == "" {
		return fmt.Errorf("exporting to %s: only a BERT-shaped (post-LN text) or ViT-shaped (pre-LN image) model has a Hugging Face equivalent; save a unified model with SaveDir", dir)
	}
	arch := map[string]string{"bert": "BertModel", "vit": "ViTModel"}[modelType]
	cfg := map[string]any{
		"model_type": modelType, "hidden_size": c.Hidden, "num_hidden_layers": c.Layers,
		"num_attention_heads": c.Heads, "intermediate_size": c.MLP, "hidden_act": c.Activation,
		"layer_norm_eps": c.LayerNormEps, "hidden_dropout_prob": c.Dropout,
		"attention_probs_dropout_prob": c.AttnDropout, "initializer_range": c.InitStd(),
	}
	var heads []model.HeadConfig
	for _, h := range c.TaskHeads {
		headArch, name := hfHead(modelType, h)
		if headArch == "" || len(heads) > 0 {
			return fmt.Errorf("exporting to %s: head %q (%s, hidden=%v, activation %q) has no %s equivalent; export at most one BERT MLM/pooler-classifier or ViT linear classifier head", dir, h.Name, h.Kind, h.Hidden, h.Activation, modelType)
		}
		arch, h.Name = headArch, name
		if headArch == "BertForMaskedLM" {
			cfg["tie_word_embeddings"] = h.Tied
		}
		if h.Kind != model.HeadMLM {
			id2label := map[string]string{}
			for i := range h.Outputs {
				l := "LABEL_" + strconv.Itoa(i)
				if i < len(h.Labels) {
					l = h.Labels[i]
				}
				id2label[strconv.Itoa(i)] = l
			}
			cfg["id2label"] = id2label
			if h.Kind == model.HeadRegress {
				cfg["problem_type"] = "regression"
			}
		}
		heads = append(heads, h)
	}
	cfg["architectures"] = []string{arch}
	if modelType == "bert" {
		cfg["vocab_size"], cfg["max_position_embeddings"], cfg["type_vocab_size"] = c.VocabSize, c.MaxTextLength, c.SegmentVocab
	} else {
		cfg["image_size"], cfg["patch_size"], cfg["num_channels"], cfg["qkv_bias"] = c.ImageSize, c.PatchSize, c.Channels, true
	}
	// Rename the heads to the names the mapping knows, keeping the weights.
	renamed := *c
	renamed.TaskHeads = heads
	w := map[string][]float32{}
	for k, v := range weights {
		w[k] = v
	}
	for i, h := range c.TaskHeads {
		if h.Name == heads[i].Name {
			continue
		}
		for _, v := range model.Variables(c) {
			if prefix := "/heads/" + h.Name + "/"; len(v.Path) > len(prefix) && v.Path[:len(prefix)] == prefix {
				w["/heads/"+heads[i].Name+"/"+v.Path[len(prefix):]] = weights[v.Path]
			}
		}
	}
	prefix := modelType + "."
	if arch == "BertModel" || arch == "ViTModel" {
		prefix = ""
	}
	names := hfNames(&renamed, modelType, prefix)
	var ts []*safetensors.Tensor
	for _, v := range model.Variables(&renamed) {
		vals, ok := w[v.Path]
		if !ok {
			return fmt.Errorf("exporting to %s: no weights for %s", dir, v.Path)
		}
		shape := v.Shape
		switch v.Path {
		case "/image/embeddings/patch/dense/weights":
			shape = []int{c.Hidden, c.Channels, c.PatchSize, c.PatchSize}
		case "/image/embeddings/class_token":
			shape = []int{1, 1, c.Hidden}
		case "/image/embeddings/position/embeddings":
			shape = []int{1, c.NumPatches() + 1, c.Hidden}
		}
		ts = append(ts, safetensors.NewF32(names[v.Path], shape, vals))
	}
	return writeHFFolder(dir, cfg, ts, nil)
}

// hfModelType is the transformers model_type that c exports as: "bert" for a
// post-LN text-only model with an embedding LayerNorm, "vit" for a pre-LN
// image-only model, "" for any other.
func hfModelType(c *model.Config) string {
	switch {
	case c.HasText() && !c.HasImage() && c.Norm == model.PostNorm && c.EmbeddingLayerNorm:
		return "bert"
	case c.HasImage() && !c.HasText() && c.Norm == model.PreNorm:
		return "vit"
	}
	return ""
}

// hfHead is the transformers class and head name of head h on a model of
// modelType (BERT's MLM transform, BERT's tanh pooler + classifier, ViT's
// linear classifier); arch is "" when transformers has no such head.
func hfHead(modelType string, h model.HeadConfig) (arch, name string) {
	switch {
	case modelType == "bert" && h.Kind == model.HeadMLM && h.Hidden && h.HiddenNorm:
		return "BertForMaskedLM", MLMHead
	case modelType == "bert" && h.Kind != model.HeadMLM && h.Hidden && h.Activation == "tanh":
		return "BertForSequenceClassification", ClassifierHead
	case modelType == "vit" && h.Kind == model.HeadClassify && !h.Hidden:
		return "ViTForImageClassification", ClassifierHead
	}
	return "", ""
}

// writeHFFolder writes a Hugging Face folder atomically: config.json (cfg),
// model.safetensors (ts, format pt) and the other files by name.
func writeHFFolder(dir string, cfg map[string]any, ts []*safetensors.Tensor, files map[string][]byte) error {
	raw, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return atomicfs.WriteDir(dir, func(tmp string) error {
		if err := os.WriteFile(filepath.Join(tmp, "config.json"), append(raw, '\n'), 0o644); err != nil {
			return err
		}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
				return err
			}
		}
		return safetensors.WriteFile(filepath.Join(tmp, "model.safetensors"), ts, map[string]string{"format": "pt"})
	})
}
