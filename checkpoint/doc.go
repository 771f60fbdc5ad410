// Package checkpoint reads and writes model weights: Hugging Face BERT/ViT
// checkpoints (config.json + model.safetensors) and vitbert's own model
// directories. The file format itself lives in package safetensors.
package checkpoint
