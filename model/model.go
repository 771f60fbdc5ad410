package model

import (
	"fmt"
	"runtime"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/layers"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/layers/attention"
	"github.com/gomlx/gomlx/ml/layers/norm"
	mlmodel "github.com/gomlx/gomlx/ml/model"
)

// Scope names of the parts of the model; the training code relies on them.
const (
	EncoderScope = "encoder"
	TextScope    = "text"
	ImageScope   = "image"
	HeadsScope   = "heads"
)

// DefaultInitRange is BERT's and ViT's initializer_range: the standard
// deviation of the normal initialisation when Config.InitRange is 0.
const DefaultInitRange = 0.02

func activationType(name string) (activation.Type, error) {
	switch name {
	case "gelu", "":
		return activation.TypeGelu, nil
	case "gelu_tanh", "gelu_new", "gelu_pytorch_tanh":
		return activation.TypeGeluApprox, nil
	case "relu":
		return activation.TypeRelu, nil
	case "tanh":
		return activation.TypeTanh, nil
	}
	return activation.TypeNone, fmt.Errorf("unsupported activation %q (want gelu, gelu_tanh, relu or tanh)", name)
}

func mustActivation(name string) activation.Type {
	a, err := activationType(name)
	if err != nil {
		panic(err)
	}
	return a
}

// dense is a linear layer with PyTorch's [out, in] weight layout, so imported
// checkpoints need no transposition.
//
// Inference graphs use GoMLX's fused dense op (product, bias and epilogue in
// one kernel). Training graphs use a plain product and a broadcast bias
// (denseDot): the fused op's backward pass, on the pure-Go backend (compute
// v0.1.14), reduces the bias gradient column by column (strided) and
// transposes the output gradient with a single-threaded scalar loop into a
// buffer it allocates afresh at every step, where the gradient of a broadcast
// Add is one vectorised ReduceSum and denseDot's weight gradient transposes
// one operand with the backend's parallel tiled kernel into a pooled buffer
// (productTransposingDY, where the layer's weights are small beside its
// activations) or both (GoMLX's gradient). On an AMD EPYC (2 cores, AVX-512)
// a tiny-preset joint step took 124–138 ms this way against 159–172 ms with
// the fused op below 2^21 output elements and GoMLX's gradient above, a
// small one 1338–1341 against 1414–1504 ms, a base one 11.4 s against
// 12.6 s. The variables ("dense/weights", "dense/biases") are the same
// either way.
func dense(scope *mlmodel.Scope, x *Node, out int) *Node {
	dt, low := lowDType(scope)
	if !low && !scope.IsTraining(x.Graph()) {
		return layers.DenseWithLayout(scope, x, compute.DenseLayoutOutputsInput, true, out)
	}
	return denseDot(scope, x, out, dt)
}

func (c *Config) layerNorm(scope *mlmodel.Scope, x *Node) *Node {
	return norm.LayerNorm(scope, x, -1).Epsilon(c.LayerNormEps).Done()
}

func (c *Config) dropout(scope *mlmodel.Scope, x *Node, rate float64) *Node {
	return layers.DropoutStatic(scope, x, rate)
}

// TextEmbed returns word + position + segment embeddings, [B, L, D]. ids and
// segments are int32 [B, L].
func (c *Config) TextEmbed(scope *mlmodel.Scope, ids, segments *Node) *Node {
	g := ids.Graph()
	scope = scope.At(TextScope).At("embeddings")
	L := ids.Shape().Dim(1)
	if L > c.MaxTextLength {
		panic(fmt.Errorf("text of %d tokens is longer than the position table (%d)", L, c.MaxTextLength))
	}
	dtype := dtypes.Float32
	word := scope.At("word").VariableWithShape("embeddings", shapes.Make(dtype, c.VocabSize, c.Hidden)).NodeValue(g)
	pos := scope.At("position").VariableWithShape("embeddings", shapes.Make(dtype, c.MaxTextLength, c.Hidden)).NodeValue(g)
	seg := scope.At("segment").VariableWithShape("embeddings", shapes.Make(dtype, c.SegmentVocab, c.Hidden)).NodeValue(g)
	x := Gather(word, InsertAxes(ids, -1))
	x = Add(x, Gather(seg, InsertAxes(segments, -1)))
	x = Add(x, InsertAxes(Slice(pos, AxisRange(0, L)), 0))
	if c.EmbeddingLayerNorm {
		x = c.layerNorm(scope.At("layer_norm"), x)
	}
	return c.dropout(scope, x, c.Dropout)
}

// ImageEmbed cuts pixels [B, C, H, W] into P×P patches flattened in (c, py, px)
// order — the order of a [D, C, P, P] convolution kernel — projects them to D,
// prepends the class token and adds the learned positions: [B, N+1, D].
func (c *Config) ImageEmbed(scope *mlmodel.Scope, pixels *Node) *Node {
	g := pixels.Graph()
	scope = scope.At(ImageScope).At("embeddings")
	dims := pixels.Shape().Dimensions
	if len(dims) != 4 || dims[1] != c.Channels || dims[2] != c.ImageSize || dims[3] != c.ImageSize {
		panic(fmt.Errorf("image batch has shape %v, the model wants [N, %d, %d, %d]", dims, c.Channels, c.ImageSize, c.ImageSize))
	}
	B, C, P := dims[0], c.Channels, c.PatchSize
	n := c.ImageSize / P
	x := Reshape(pixels, B, C, n, P, n, P)
	x = TransposeAllDims(x, 0, 2, 4, 1, 3, 5) // [B, ny, nx, C, py, px]
	x = Reshape(x, B, n*n, C*P*P)
	x = dense(scope.At("patch"), x, c.Hidden)
	cls := scope.VariableWithShape("class_token", shapes.Make(dtypes.Float32, c.Hidden)).NodeValue(g)
	cls = BroadcastToDims(Reshape(cls, 1, 1, c.Hidden), B, 1, c.Hidden)
	x = Concatenate([]*Node{cls, x}, 1)
	pos := scope.At("position").VariableWithShape("embeddings", shapes.Make(dtypes.Float32, n*n+1, c.Hidden)).NodeValue(g)
	x = Add(x, InsertAxes(pos, 0))
	return c.dropout(scope, x, c.Dropout)
}

// Encode runs the shared encoder over x [B, S, D]. mask, if not nil, is a
// bool [B, S] of the keys that may be attended (text padding).
func (c *Config) Encode(scope *mlmodel.Scope, x, mask *Node) *Node {
	return c.encode(scope, x, mask, nil)
}

// EncodeProbe is Encode that also returns, per block, the MLP's hidden
// activations after the non-linearity, [B, S, MLP]: the "neurons" whose
// activity the paper plots.
func (c *Config) EncodeProbe(scope *mlmodel.Scope, x, mask *Node) (*Node, []*Node) {
	var acts []*Node
	out := c.encode(scope, x, mask, &acts)
	return out, acts
}

func (c *Config) encode(scope *mlmodel.Scope, x, mask *Node, acts *[]*Node) *Node {
	scope = scope.At(EncoderScope)
	B := x.Shape().Dim(0)
	n := 1
	if acts == nil {
		n = inferenceParts(scope.IsTraining(x.Graph()), OnGoBackend(x.Graph().Backend()), B, runtime.GOMAXPROCS(0))
	}
	if n == 1 {
		return c.encodeLayers(scope, x, mask, acts)
	}
	parts := make([]*Node, n)
	for i := range parts {
		lo, hi := i*B/n, (i+1)*B/n
		var m *Node
		if mask != nil {
			m = examples(mask, lo, hi)
		}
		parts[i] = c.encodeLayers(scope, examples(x, lo, hi), m, nil)
	}
	return Concatenate(parts, 0)
}

// examples is x[lo:hi] along the batch axis, as a Gather of whole examples:
// the pure-Go backend copies each example's contiguous block at once, where
// its Slice copies element by element through a general index walk (compute
// v0.1.14, ops.execSliceGeneric: 0.35 ms a step for tiny's image batch).
func examples(x *Node, lo, hi int) *Node {
	idx := make([][]int32, hi-lo)
	for i := range idx {
		idx[i] = []int32{int32(lo + i)}
	}
	return Gather(x, Const(x.Graph(), idx))
}

// inferenceParts is how many independent parts an inference graph's encoder
// splits a batch of B examples into: one per core (procs, at most
// MaxGoExecutors, at most B) on the pure-Go backend, else 1.
//
// That backend runs a graph's independent nodes concurrently, one executor
// per core, and spreads a matrix product over the cores, but not an
// element-wise op or a reduction: a batch's encoder is one chain of
// dependent nodes, so its layer norms, softmaxes, residual additions and
// transposes ran on one core while the other waited. Parts of the batch are
// independent chains, which the executors run side by side. On an AMD EPYC
// (2 cores), over ten alternating 50-step runs of `vitbert bench`, two parts
// took tiny image inference from 10.0 to 7.3 ms a step by the median (CPU
// 15.0 → 16.0 ms: each part pays the per-op costs) and tiny text inference
// from 12.2 to 11.1 ms; small's image step went from 70–75 to 67–69 ms and
// its text step from 174–200 to 160–175 in three rounds. A training step
// does not gain — its text, image and teacher branches are already
// independent chains — and split it took 143–197 ms against 129–169 (tiny,
// three rounds), so it is not split. Every example's result is the same
// either way: nothing in the encoder mixes examples.
func inferenceParts(training, goBackend bool, B, procs int) int {
	if training || !goBackend {
		return 1
	}
	return max(1, min(B, procs, MaxGoExecutors))
}

func (c *Config) encodeLayers(scope *mlmodel.Scope, x, mask *Node, acts *[]*Node) *Node {
	for i := range c.Layers {
		x = c.block(scope.At("layer_%d", i), x, mask, acts)
	}
	if c.Norm == PreNorm {
		x = c.layerNorm(scope.At("final_norm"), x)
	}
	return x
}

func (c *Config) block(scope *mlmodel.Scope, x, mask *Node, acts *[]*Node) *Node {
	attend := func(h *Node) *Node {
		if dt, low := lowDType(scope); low {
			return c.dropout(scope.At("attention_dropout"), c.attentionLow(scope, h, mask, dt), c.Dropout)
		}
		if decomposeAttention(h.Graph()) {
			return c.dropout(scope.At("attention_dropout"), c.goAttention(scope.At("attention"), h, mask), c.Dropout)
		}
		mha := attention.SelfAttention(scope.At("attention"), h, c.Heads, c.Hidden/c.Heads).UseTransposedWeights(true)
		if mask != nil {
			mha = mha.WithKeyMask(mask)
		}
		if c.AttnDropout > 0 && scope.IsTraining(h.Graph()) {
			mha = mha.WithDropout(Scalar(h.Graph(), dtypes.Float32, c.AttnDropout))
		}
		return c.dropout(scope.At("attention_dropout"), mha.Done(), c.Dropout)
	}
	mlp := func(h *Node) *Node {
		h = dense(scope.At("mlp_in"), h, c.MLP)
		h = activation.Apply(mustActivation(c.Activation), h)
		if acts != nil {
			*acts = append(*acts, h)
		}
		h = dense(scope.At("mlp_out"), h, c.Hidden)
		return c.dropout(scope.At("mlp_dropout"), h, c.Dropout)
	}
	if c.Norm == PreNorm {
		x = Add(x, attend(c.layerNorm(scope.At("attention_norm"), x)))
		return Add(x, mlp(c.layerNorm(scope.At("mlp_norm"), x)))
	}
	x = c.layerNorm(scope.At("attention_norm"), Add(x, attend(x)))
	return c.layerNorm(scope.At("mlp_norm"), Add(x, mlp(x)))
}

// EncodeText embeds and encodes a text batch: [B, L, D]. mask is the int32
// attention mask (1 for real tokens).
func (c *Config) EncodeText(scope *mlmodel.Scope, ids, segments, mask *Node) *Node {
	x := c.TextEmbed(scope, ids, segments)
	var keyMask *Node
	if mask != nil {
		keyMask = NotEqual(mask, ZerosLike(mask))
	}
	return c.Encode(scope, x, keyMask)
}

// EncodeImage embeds and encodes an image batch: [B, N+1, D].
func (c *Config) EncodeImage(scope *mlmodel.Scope, pixels *Node) *Node {
	return c.Encode(scope, c.ImageEmbed(scope, pixels), nil)
}

// CLS is the final embedding of the first token, [B, D].
func CLS(hidden *Node) *Node {
	return Squeeze(Slice(hidden, AxisRange(), AxisElem(0)), 1)
}

// GatherPositions picks hidden[b, positions[b, p]]: [B, P, D].
func GatherPositions(hidden, positions *Node) *Node {
	B, L, D := hidden.Shape().Dim(0), hidden.Shape().Dim(1), hidden.Shape().Dim(2)
	P := positions.Shape().Dim(1)
	g := hidden.Graph()
	offsets := Mul(Iota(g, shapes.Make(dtypes.Int32, B, P), 0), Const(g, int32(L)))
	flat := Add(ConvertDType(positions, dtypes.Int32), offsets)
	return Reshape(Gather(Reshape(hidden, B*L, D), InsertAxes(flat, -1)), B, P, D)
}

// HeadLogits applies head h to the rows of x [..., D] (the [CLS] embedding, or
// the embeddings at the masked positions for MLM).
func (c *Config) HeadLogits(scope *mlmodel.Scope, h *HeadConfig, x *Node) *Node {
	root := scope
	scope = scope.At(HeadsScope).At("%s", h.Name)
	if h.Hidden {
		x = dense(scope.At("hidden"), x, c.Hidden)
		x = activation.Apply(mustActivation(h.Activation), x)
		if h.HiddenNorm {
			x = c.layerNorm(scope.At("hidden_norm"), x)
		}
	}
	if !h.Tied {
		return dense(scope.At("output"), x, h.Outputs)
	}
	g := x.Graph()
	word := root.At(TextScope).At("embeddings").At("word").
		VariableWithShape("embeddings", shapes.Make(dtypes.Float32, c.VocabSize, c.Hidden)).NodeValue(g)
	bias := scope.At("output").VariableWithShape("biases", shapes.Make(dtypes.Float32, h.Outputs)).NodeValue(g)
	var logits *Node
	if dt, low := lowDType(scope); low {
		logits = lowDot(dt, x, []int{x.Rank() - 1}, nil, word, []int{1}, nil)
	} else {
		logits = DotGeneral(x, []int{x.Rank() - 1}, nil, word, []int{1}, nil)
	}
	return Add(logits, ExpandLeftToRank(bias, logits.Rank()))
}
