package onnx_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pb "github.com/vitbert/vitbert/onnx/internal/onnxpb"
	"google.golang.org/protobuf/proto"

	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/onnx"
)

// jointModel is a small unified model with a tied MLM head, a text
// classifier and an image classifier, with random weights large enough that
// every part moves the logits. Pre-LN with exact GELU as the presets; with
// norm "post", BERT-like: post-LN, an embedding LayerNorm, tanh-GELU in the
// encoder and a ReLU text head.
func jointModel(t *testing.T, norm string) *checkpoint.Model {
	t.Helper()
	c := model.Config{Hidden: 16, Layers: 2, Heads: 4, MLP: 24, Norm: model.PreNorm, LayerNormEps: 1e-6, Activation: "gelu",
		ImageSize: 8, Channels: 3, PatchSize: 4, VocabSize: 40, MaxTextLength: 12, SegmentVocab: 2}
	sst2 := model.PaperHead("sst2", model.HeadClassify, "text", 2)
	if norm == model.PostNorm {
		c.Norm, c.EmbeddingLayerNorm, c.Activation = model.PostNorm, true, "gelu_tanh"
		sst2.Activation = "relu"
	}
	c.AddHead(model.HeadConfig{Name: "mlm", Kind: model.HeadMLM, Outputs: 40, Hidden: true, Activation: "gelu", HiddenNorm: true, Tied: true, Modality: "text"})
	c.AddHead(sst2)
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

// The files parse as ONNX models with the documented inputs and outputs.
func TestExportWritesDocumentedGraphs(t *testing.T) {
	m := jointModel(t, model.PreNorm)
	out := filepath.Join(t.TempDir(), "onnx")
	files, err := onnx.Export(out, &m.Config, m.Weights)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{
		filepath.Join(out, "text", onnx.FileName):  {"input_ids token_type_ids attention_mask mlm_positions", "last_hidden_state mlm_logits sst2_logits"},
		filepath.Join(out, "image", onnx.FileName): {"pixel_values", "last_hidden_state classes_logits"},
	}
	if len(files) != len(want) {
		t.Fatalf("wrote %v, want %d files", files, len(want))
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var mp pb.ModelProto
		if err := proto.Unmarshal(raw, &mp); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if mp.OpsetImport[0].Version != onnx.Opset {
			t.Errorf("%s: opset %d", f, mp.OpsetImport[0].Version)
		}
		var ins, outs []string
		for _, v := range mp.Graph.Input {
			ins = append(ins, v.Name)
		}
		for _, v := range mp.Graph.Output {
			outs = append(outs, v.Name)
		}
		if got := [2]string{strings.Join(ins, " "), strings.Join(outs, " ")}; got != want[f] {
			t.Errorf("%s: inputs/outputs %q, want %q", f, got, want[f])
		}
		if in := mp.Graph.Input[0].Type.GetTensorType().Shape.Dim[0]; in.GetDimParam() != "batch" {
			t.Errorf("%s: first input's batch axis is %v, want the dynamic axis \"batch\"", f, in)
		}
	}
}

// Missing or mis-sized weights are an error naming the variable.
func TestExportRejectsBadWeights(t *testing.T) {
	m := jointModel(t, model.PreNorm)
	const path = "/encoder/layer_1/mlp_in/dense/weights"
	w := map[string][]float32{}
	for k, v := range m.Weights {
		w[k] = v
	}
	w[path] = w[path][:10]
	if _, err := onnx.Export(t.TempDir(), &m.Config, w); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("short %s: err %v", path, err)
	}
	delete(w, path)
	if _, err := onnx.Export(t.TempDir(), &m.Config, w); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("missing %s: err %v", path, err)
	}
}
