package bench

// FLOP counts. Every matrix product [m,k]×[k,n] counts 2·m·n·k; element-wise
// work, softmax, LayerNorm and embedding gathers are not counted.

// encoderLayerFLOPs is one pre-LN block over B sequences of S tokens:
// Q, K, V and output projections 4·2·B·S·D², attention scores QKᵀ and the
// weighted values AV 2·2·B·S²·D (summed over heads), MLP 2·2·B·S·D·M.
func encoderLayerFLOPs(B, S, D, M float64) float64 {
	return 8*B*S*D*D + 4*B*S*S*D + 4*B*S*D*M
}

// TextForwardFLOPs is one forward pass of a text model: the encoder over
// TextBatch×TextLen tokens and the MLM head (D→D, D→V) at the masked
// positions only.
func (p *Preset) TextForwardFLOPs() float64 {
	B, L, D := float64(p.TextBatch), float64(p.TextLen), float64(p.Hidden)
	R := B * float64(p.Predictions())
	return float64(p.Layers)*encoderLayerFLOPs(B, L, D, float64(p.MLP)) + 2*R*D*D + 2*R*D*float64(p.Vocab)
}

// ImageForwardFLOPs is one forward pass of an image model: the patch
// projection (C·P² → D per patch), the encoder over N+1 tokens per image and
// the classification head (D→D, D→K) on [CLS].
func (p *Preset) ImageForwardFLOPs() float64 {
	B, D := float64(p.ImageBatch), float64(p.Hidden)
	N := float64(p.NumPatches())
	patch := 2 * B * N * float64(p.Channels*p.PatchSize*p.PatchSize) * D
	head := 2*B*D*D + 2*B*D*float64(p.Classes)
	return patch + float64(p.Layers)*encoderLayerFLOPs(B, N+1, D, float64(p.MLP)) + head
}

// FLOPs is the work of one step of the mode:
//
//	joint, gradmask, 3·(text + image forward of the student) + text teacher + image teacher
//	pcgrad, cagrad   = 4·(TextForwardFLOPs + ImageForwardFLOPs)
//	infer-text       TextForwardFLOPs
//	infer-image      ImageForwardFLOPs
//
// The factor 3 is the usual forward + backward (two products per forward
// product: gradients with respect to inputs and weights). Gradient masking
// does the same matrix work as joint (its two backward passes each cover one
// loss), so it counts the same; so do PCGrad and CAGrad, whose extra work
// (three dot products and a weighted sum over the shared gradients) is
// element-wise.
func (p *Preset) FLOPs(mode string) float64 {
	switch mode {
	case ModeInferText:
		return p.TextForwardFLOPs()
	case ModeInferImage:
		return p.ImageForwardFLOPs()
	default:
		return 4 * (p.TextForwardFLOPs() + p.ImageForwardFLOPs())
	}
}

// SamplesPerStep is texts + images for training, the one batch for inference.
func (p *Preset) SamplesPerStep(mode string) int {
	switch mode {
	case ModeInferText:
		return p.TextBatch
	case ModeInferImage:
		return p.ImageBatch
	default:
		return p.TextBatch + p.ImageBatch
	}
}
