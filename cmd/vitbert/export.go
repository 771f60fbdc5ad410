package main

import (
	"fmt"

	"github.com/vitbert/vitbert/checkpoint"
)

func init() {
	register("export", "write a model in Hugging Face layout (transformers / PyTorch)", runExport)
}

func runExport(args []string) error {
	fs := newFlags("export", "--model DIR --out DIR [--format hf]")
	modelDir := fs.String("model", "", "model directory or Hub id (Hugging Face BERT/ViT, or vitbert)")
	format := fs.String("format", "hf", "output format: hf (config.json + model.safetensors, with modeling_vitbert.py where transformers has no equivalent class)")
	out := fs.String("out", "", "output directory (a unified model becomes OUT/text and OUT/image)")
	if err := fs.ParseNoArgs(args); err != nil {
		return err
	}
	if *modelDir == "" || *out == "" {
		return fmt.Errorf("--model and --out are required")
	}
	if *format != "hf" {
		return fmt.Errorf("--format %q is not supported (hf is the only export format)", *format)
	}
	m, err := checkpoint.LoadDir(*modelDir)
	if err != nil {
		return err
	}
	dirs, err := checkpoint.Export(*out, &m.Config, m.Weights)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		fmt.Println(d)
	}
	return nil
}
