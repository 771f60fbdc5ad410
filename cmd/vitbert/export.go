package main

import (
	"fmt"

	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/onnx"
)

func init() {
	register("export", "write a model in Hugging Face layout (transformers / PyTorch) or as ONNX", runExport)
}

func runExport(args []string) error {
	fs := newFlags("export", "--model DIR --out DIR [--format hf|onnx]")
	modelDir := fs.String("model", "", "model directory or Hub id (Hugging Face BERT/ViT, or vitbert)")
	format := fs.String("format", "hf", "output format: hf (config.json + model.safetensors, with modeling_vitbert.py where transformers has no equivalent class) or onnx (model.onnx, opset 17, for inference)")
	out := fs.String("out", "", "output directory (a unified model becomes OUT/text and OUT/image)")
	if err := fs.ParseNoArgs(args); err != nil {
		return err
	}
	if *modelDir == "" || *out == "" {
		return fmt.Errorf("--model and --out are required")
	}
	export := map[string]func(string, *model.Config, map[string][]float32) ([]string, error){
		"hf": checkpoint.Export, "onnx": onnx.Export,
	}[*format]
	if export == nil {
		return fmt.Errorf("--format %q is not supported (want hf or onnx)", *format)
	}
	m, err := checkpoint.LoadDir(*modelDir)
	if err != nil {
		return err
	}
	written, err := export(*out, &m.Config, m.Weights)
	if err != nil {
		return err
	}
	for _, d := range written {
		fmt.Println(d)
	}
	return nil
}
