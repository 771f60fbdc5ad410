// Package train holds the training machinery of ViT-BERT (docs/method.md, "Joint
// pre-training", "Knowledge distillation", "Gradient masking"):
//
//   - losses.go: softmax cross-entropy with per-example weights, the
//     knowledge-distillation loss (1−α)·CE + α·τ²·KL(teacher ‖ student), MSE;
//   - gradmask.go: g = M⊙∇L_txt + (1−M)⊙∇L_img on the shared encoder, with the
//     iterative mask schedule (sparsity δ, 2δ, … β) ranked per tensor, per
//     block or globally;
//   - combine.go: the other rules combining the two task gradients (sum,
//     PCGrad, CAGrad, fixed loss weights), Config.Combine;
//   - conflicts.go: the gradient-conflict diagnostics every K steps;
//   - optim.go: AdamW with decoupled weight decay (none on rank ≤ 1 tensors),
//     linear warm-up then cosine or linear decay, global-norm clipping, all
//     computed in the graph;
//   - trainer.go: one compiled step returning the losses and metrics;
//   - parallel.go: the same step data-parallel over a mesh of devices
//     (Config.Devices): batch inputs split along axis 0, variables replicated;
//   - loop.go, checkpoint.go: the loop with progress bar,
//     metrics.jsonl and masks.jsonl, atomic checkpoints and exact resume.
//
// The model side supplies a LossFn. Every variable lives in one GoMLX store (mlmodel.Store):
// "/encoder/..." is the shared encoder, "/text/..." and "/image/..." the
// modality-specific tokenizers, "/heads/<name>/..." the task heads. The
// trainer adds its own non-trainable state under "/optimizer" (step and
// moments) and "/gradmask" (masks, accumulators, switch); GoMLX keeps the
// graph's random number generator in "/#rngState". A checkpoint saves all of
// them, so a resumed run continues bit for bit where the interrupted one
// stopped, dropout included, provided the Batches and host state it is given
// are restored too.
//
// Graph-building functions (the losses, the step graph) follow GoMLX's
// convention and panic on malformed shapes; the executor turns those panics
// into errors returned by Trainer.Step.
//
// Output files under LoopConfig.OutDir:
//
//	metrics.jsonl  {"step", "time", "elapsed_s", "loss_text", "loss_image", "lr",
//	                "grad_norm", "steps_per_s", ["examples_per_s"], ["mask_sparsity"], extras...}
//	masks.jsonl    one MaskReport per mask update: step, update, target, ranking,
//	               sparsity, per_tensor, per_block
//	conflicts.jsonl one ConflictReport every Config.DiagnosticsEvery steps: step,
//	               encoder and per-block cosine(∇L_txt, ∇L_img), norms, norm ratio,
//	               share of opposite signs (conflicts.go)
//	checkpoints/step-NNNNNNN/{variables.safetensors, state.json}
package train
