package onnx_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	pb "github.com/vitbert/vitbert/onnx/internal/onnxpb"
	"google.golang.org/protobuf/proto"

	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/internal/testmodel"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/onnx"
)

// jointModel is testmodel.Joint; in the post-LN variant the text
// classifier's hidden layer is a ReLU, so that every activation is exported.
func jointModel(t *testing.T, norm string) *checkpoint.Model {
	t.Helper()
	m := testmodel.Joint(t, norm)
	if norm == model.PostNorm {
		h, _ := m.Config.Head("sst2")
		h.Activation = "relu"
	}
	return m
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
