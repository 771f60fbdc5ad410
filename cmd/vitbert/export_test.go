package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/onnx"
)

func TestExportCommand(t *testing.T) {
	// A unified pre-LN model, as pre-training writes it.
	c := model.Tiny()
	c.Hidden, c.MLP, c.VocabSize = 16, 32, 50
	c.AddHead(model.PaperHead("classes", model.HeadClassify, "image", 3))
	w := map[string][]float32{}
	for _, v := range model.Variables(&c) {
		n := 1
		for _, d := range v.Shape {
			n *= d
		}
		w[v.Path] = make([]float32, n)
	}
	src := filepath.Join(t.TempDir(), "joint")
	if err := checkpoint.SaveDir(src, &c, w); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "hf")
	printed, err := capture(t, runExport, "--model", src, "--out", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, side := range []string{"text", "image"} {
		d := filepath.Join(out, side)
		if !strings.Contains(printed, d) {
			t.Errorf("output %q does not name %s", printed, d)
		}
		for _, f := range []string{"config.json", "model.safetensors", checkpoint.ModelingFile} {
			if _, err := os.Stat(filepath.Join(d, f)); err != nil {
				t.Error(err)
			}
		}
	}
	onnxOut := filepath.Join(t.TempDir(), "onnx")
	printed, err = capture(t, runExport, "--model", src, "--out", onnxOut, "--format", "onnx")
	if err != nil {
		t.Fatal(err)
	}
	for _, side := range []string{"text", "image"} {
		f := filepath.Join(onnxOut, side, onnx.FileName)
		if _, err := os.Stat(f); err != nil || !strings.Contains(printed, f) {
			t.Errorf("--format onnx: %s not written or not printed (%q): %v", f, printed, err)
		}
	}
	if _, err := capture(t, runExport, "--model", src, "--out", out, "--format", "tflite"); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("--format tflite: %v", err)
	}
}
