// Package onnx writes vitbert models as ONNX graphs for inference (ONNX
// Runtime and other ONNX engines).
//
// GoMLX has no ONNX exporter, so the graph is written here from the model's
// configuration and weights, op by op, mirroring package model: the patch
// tokenizer in (c, py, px) order, the text embeddings, pre-LN or post-LN
// encoder blocks, and the task heads. Only standard ONNX operators of opset
// 17 are used (no Gelu op there: GELU is built from Erf, or Tanh for
// gelu_tanh). The protobuf messages come from the Go binding generated from
// ONNX's own schema (package onnxpb).
//
// One side (text or image) becomes one graph:
//
//	text inputs:   input_ids, token_type_ids, attention_mask  int64 [batch, sequence]
//	               mlm_positions int64 [batch, positions]      (only with an MLM head)
//	image input:   pixel_values float32 [batch, C, H, W]       (normalised pixels)
//	outputs:       last_hidden_state float32 [batch, tokens, D]
//	               HEAD_logits float32 [batch, K] per head of that side
//	               ([batch, positions, V] for an MLM head)
//
// batch, sequence and positions are dynamic axes.
package onnx

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	pb "github.com/vitbert/vitbert/onnx/internal/onnxpb"
	"google.golang.org/protobuf/proto"

	"github.com/vitbert/vitbert/atomicfs"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/model"
)

const (
	// Opset is the ONNX operator set version of the exported graphs.
	Opset = 17
	// IRVersion is the ONNX IR version matching Opset (ONNX 1.12).
	IRVersion = 8
	// FileName is the name of the graph file in an export folder.
	FileName = "model.onnx"
	// HiddenOutput is the name of the final hidden states output.
	HiddenOutput = "last_hidden_state"
	// PositionsInput is the name of the MLM positions input.
	PositionsInput = "mlm_positions"
)

// LogitsOutput is the name of a head's logits output.
func LogitsOutput(head string) string { return head + "_logits" }

// maxProtoBytes is protobuf's 2 GiB message limit; larger models would
// need ONNX external data files, which this exporter does not write.
const maxProtoBytes = 1<<31 - 1<<20

// Export writes a model as ONNX under out and returns the files written: a
// one-modality model as out/model.onnx, a unified model as
// out/text/model.onnx and out/image/model.onnx (the shared encoder in both,
// each with its own side's embeddings and heads).
func Export(out string, c *model.Config, weights map[string][]float32) ([]string, error) {
	var sides []string
	if c.HasText() {
		sides = append(sides, "text")
	}
	if c.HasImage() {
		sides = append(sides, "image")
	}
	var files []string
	for _, s := range sides {
		dir := out
		if len(sides) > 1 {
			dir = filepath.Join(out, s)
		}
		m, err := build(c, weights, s)
		if err != nil {
			return nil, fmt.Errorf("exporting to %s: %w", dir, err)
		}
		raw, err := proto.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("exporting to %s: %w", dir, err)
		}
		if err := atomicfs.WriteDir(dir, func(tmp string) error {
			return os.WriteFile(filepath.Join(tmp, FileName), raw, 0o644)
		}); err != nil {
			return nil, err
		}
		files = append(files, filepath.Join(dir, FileName))
	}
	return files, nil
}

// build returns the ONNX model of one side ("text" or "image") of c.
func build(c *model.Config, weights map[string][]float32, modality string) (*pb.ModelProto, error) {
	side, err := checkpoint.SideConfig(c, modality)
	if err != nil {
		return nil, err
	}
	if err := side.Validate(); err != nil {
		return nil, err
	}
	total := 0
	for _, v := range model.Variables(&side) {
		n := 1
		for _, d := range v.Shape {
			n *= d
		}
		vals, ok := weights[v.Path]
		if !ok {
			return nil, fmt.Errorf("no weights for %s", v.Path)
		}
		if len(vals) != n {
			return nil, fmt.Errorf("%s has %d values, the config wants %v (%d)", v.Path, len(vals), v.Shape, n)
		}
		total += 4 * n
	}
	if total > maxProtoBytes {
		return nil, fmt.Errorf("the %s side's weights take %d bytes, over protobuf's 2 GiB limit for one ONNX file (external data is not supported)", modality, total)
	}
	b := &builder{c: &side, w: weights, g: &pb.GraphProto{Name: "vitbert_" + modality}, inits: map[string]bool{}}
	var hidden string
	if modality == "text" {
		hidden = b.text()
	} else {
		hidden = b.image()
	}
	b.output(HiddenOutput, hidden, "batch", b.tokensAxis, side.Hidden)
	for _, h := range side.TaskHeads {
		b.head(&h, HiddenOutput)
	}
	cfg, err := json.Marshal(side)
	if err != nil {
		return nil, err
	}
	return &pb.ModelProto{
		IrVersion:    IRVersion,
		OpsetImport:  []*pb.OperatorSetIdProto{{Domain: "", Version: Opset}},
		ProducerName: "vitbert",
		Graph:        b.g,
		MetadataProps: []*pb.StringStringEntryProto{
			{Key: "modality", Value: modality},
			{Key: "vitbert_config", Value: string(cfg)},
		},
	}, nil
}

// builder appends nodes and initializers to one graph. Weights were checked
// against model.Variables before building, so lookups cannot fail.
type builder struct {
	c          *model.Config
	w          map[string][]float32
	g          *pb.GraphProto
	n          int
	inits      map[string]bool
	tokensAxis any    // "sequence" for text, N+1 for images
	keyBias    string // [B, 1, 1, S] additive attention mask (text), or ""
	anyKey     string // [B, 1, 1, 1] 1 where a text has a key to attend, or ""
}

// node adds one single-output node and returns its output's name.
func (b *builder) node(op string, inputs []string, attrs ...*pb.AttributeProto) string {
	b.n++
	out := fmt.Sprintf("%s_%d", op, b.n)
	b.g.Node = append(b.g.Node, &pb.NodeProto{OpType: op, Name: out, Input: inputs, Output: []string{out}, Attribute: attrs})
	return out
}

func intAttr(name string, v int64) *pb.AttributeProto {
	return &pb.AttributeProto{Name: name, Type: pb.AttributeProto_INT, I: v}
}

func intsAttr(name string, v ...int64) *pb.AttributeProto {
	return &pb.AttributeProto{Name: name, Type: pb.AttributeProto_INTS, Ints: v}
}

func floatAttr(name string, v float32) *pb.AttributeProto {
	return &pb.AttributeProto{Name: name, Type: pb.AttributeProto_FLOAT, F: v}
}

// valueInfo describes a graph input or output; each dimension is an int
// (fixed) or a string (a named dynamic axis).
func valueInfo(name string, elem pb.TensorProto_DataType, dims ...any) *pb.ValueInfoProto {
	shape := &pb.TensorShapeProto{}
	for _, d := range dims {
		dim := &pb.TensorShapeProto_Dimension{}
		switch d := d.(type) {
		case int:
			dim.Value = &pb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}
		case string:
			dim.Value = &pb.TensorShapeProto_Dimension_DimParam{DimParam: d}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &pb.ValueInfoProto{Name: name, Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{
		TensorType: &pb.TypeProto_Tensor{ElemType: int32(elem), Shape: shape}}}}
}

func (b *builder) input(name string, elem pb.TensorProto_DataType, dims ...any) string {
	b.g.Input = append(b.g.Input, valueInfo(name, elem, dims...))
	return name
}

// floats adds a float32 initializer.
func (b *builder) floats(name string, vals []float32, dims ...int) string {
	raw := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	b.g.Initializer = append(b.g.Initializer, &pb.TensorProto{Name: name, DataType: int32(pb.TensorProto_FLOAT), Dims: int64s(dims), RawData: raw})
	return name
}

// ints adds an int64 constant (a 1-D tensor, or a scalar with scalar=true).
func (b *builder) ints(scalar bool, vals ...int64) string {
	b.n++
	name := fmt.Sprintf("const_%d", b.n)
	t := &pb.TensorProto{Name: name, DataType: int32(pb.TensorProto_INT64), Int64Data: vals}
	if !scalar {
		t.Dims = []int64{int64(len(vals))}
	}
	b.g.Initializer = append(b.g.Initializer, t)
	return name
}

// scalar adds a float32 scalar constant.
func (b *builder) scalar(v float32) string {
	b.n++
	return b.floats(fmt.Sprintf("const_%d", b.n), []float32{v})
}

func int64s(dims []int) []int64 {
	out := make([]int64, len(dims))
	for i, d := range dims {
		out[i] = int64(d)
	}
	return out
}

// weight adds the variable at path once, with the given dimensions.
func (b *builder) weight(path string, dims ...int) string {
	if !b.inits[path] {
		b.inits[path] = true
		b.floats(path, b.w[path], dims...)
	}
	return path
}

// dense is x·Wᵀ + b for a variable scope holding dense/weights [out, in]
// and dense/biases [out]. W is stored transposed, [in, out], so the graph
// needs a plain MatMul.
func (b *builder) dense(x, scope string, in, out int) string {
	w := scope + "/dense/weights"
	if !b.inits[w] {
		b.inits[w] = true
		src := b.w[w]
		t := make([]float32, len(src))
		for o := range out {
			for i := range in {
				t[i*out+o] = src[o*in+i]
			}
		}
		b.floats(w, t, in, out)
	}
	return b.node("Add", []string{b.node("MatMul", []string{x, w}), b.weight(scope+"/dense/biases", out)})
}

func (b *builder) layerNorm(x, scope string) string {
	D := b.c.Hidden
	return b.node("LayerNormalization", []string{x,
		b.weight(scope+"/layer_normalization/gain", D), b.weight(scope+"/layer_normalization/offset", D)},
		intAttr("axis", -1), floatAttr("epsilon", float32(b.c.LayerNormEps)))
}

// activation applies one of the activations model.Config accepts (checked
// by Validate): gelu (exact, through Erf), gelu_tanh, relu, tanh.
func (b *builder) activation(x, name string) string {
	switch name {
	case "gelu", "":
		// x · ½(1 + erf(x/√2)), as GoMLX's activation.Gelu.
		erf := b.node("Erf", []string{b.node("Div", []string{x, b.scalar(math.Sqrt2)})})
		cdf := b.node("Mul", []string{b.node("Add", []string{erf, b.scalar(1)}), b.scalar(0.5)})
		return b.node("Mul", []string{x, cdf})
	case "gelu_tanh", "gelu_new", "gelu_pytorch_tanh":
		// x · ½(1 + tanh(√(2/π)(x + 0.044715x³))), as activation.GeluApproximate.
		cube := b.node("Mul", []string{b.node("Mul", []string{x, x}), x})
		inner := b.node("Add", []string{x, b.node("Mul", []string{cube, b.scalar(0.044715)})})
		t := b.node("Tanh", []string{b.node("Mul", []string{inner, b.scalar(float32(math.Sqrt(2 / math.Pi)))})})
		cdf := b.node("Mul", []string{b.node("Add", []string{t, b.scalar(1)}), b.scalar(0.5)})
		return b.node("Mul", []string{x, cdf})
	case "relu":
		return b.node("Relu", []string{x})
	case "tanh":
		return b.node("Tanh", []string{x})
	}
	panic(fmt.Sprintf("activation %q passed Validate", name)) // unreachable: Validate rejects others
}

// dim returns dimension i of x as a 1-D int64 tensor of one element.
func (b *builder) dim(x string, i int64) string {
	return b.node("Slice", []string{b.node("Shape", []string{x}), b.ints(false, i), b.ints(false, i+1)})
}

// text builds the text embeddings, the attention mask and the encoder.
func (b *builder) text() string {
	c := b.c
	D := c.Hidden
	b.tokensAxis = "sequence"
	ids := b.input("input_ids", pb.TensorProto_INT64, "batch", "sequence")
	seg := b.input("token_type_ids", pb.TensorProto_INT64, "batch", "sequence")
	mask := b.input("attention_mask", pb.TensorProto_INT64, "batch", "sequence")
	emb := "/text/embeddings/"
	word := b.weight(emb+"word/embeddings", c.VocabSize, D)
	x := b.node("Gather", []string{word, ids})
	x = b.node("Add", []string{x, b.node("Gather", []string{b.weight(emb+"segment/embeddings", c.SegmentVocab, D), seg})})
	pos := b.node("Slice", []string{b.weight(emb+"position/embeddings", c.MaxTextLength, D), b.ints(false, 0), b.dim(ids, 1), b.ints(false, 0)})
	x = b.node("Add", []string{x, pos})
	if c.EmbeddingLayerNorm {
		x = b.layerNorm(x, emb+"layer_norm")
	}
	// Keys with mask 0 get the lowest float32 added to their scores (their
	// probability is then exactly 0), and a text without any key attends to
	// nothing, as model.goAttention.
	masked := b.node("Equal", []string{mask, b.ints(true, 0)})
	bias := b.node("Where", []string{masked, b.scalar(-math.MaxFloat32), b.scalar(0)})
	b.keyBias = b.node("Unsqueeze", []string{bias, b.ints(false, 1, 2)})
	keep := b.node("Cast", []string{b.node("Not", []string{masked})}, intAttr("to", int64(pb.TensorProto_FLOAT)))
	anyKey := b.node("ReduceMax", []string{keep}, intsAttr("axes", 1), intAttr("keepdims", 1))
	b.anyKey = b.node("Unsqueeze", []string{anyKey, b.ints(false, 2, 3)})
	return b.encoder(x)
}

// image builds the patch tokenizer and the encoder.
func (b *builder) image() string {
	c := b.c
	D, C, P := c.Hidden, c.Channels, c.PatchSize
	n := c.ImageSize / P
	b.tokensAxis = n*n + 1
	px := b.input("pixel_values", pb.TensorProto_FLOAT, "batch", C, c.ImageSize, c.ImageSize)
	x := b.node("Reshape", []string{px, b.ints(false, 0, int64(C), int64(n), int64(P), int64(n), int64(P))})
	x = b.node("Transpose", []string{x}, intsAttr("perm", 0, 2, 4, 1, 3, 5)) // [B, ny, nx, C, py, px]
	x = b.node("Reshape", []string{x, b.ints(false, 0, int64(n*n), int64(C*P*P))})
	emb := "/image/embeddings/"
	x = b.dense(x, emb+"patch", C*P*P, D)
	clsShape := b.node("Concat", []string{b.dim(px, 0), b.ints(false, 1, int64(D))}, intAttr("axis", 0))
	cls := b.node("Expand", []string{b.weight(emb+"class_token", 1, 1, D), clsShape})
	x = b.node("Concat", []string{cls, x}, intAttr("axis", 1))
	x = b.node("Add", []string{x, b.weight(emb+"position/embeddings", n*n+1, D)})
	return b.encoder(x)
}

func (b *builder) encoder(x string) string {
	c := b.c
	for i := range c.Layers {
		l := fmt.Sprintf("/encoder/layer_%d/", i)
		mlp := func(h string) string {
			h = b.activation(b.dense(h, l+"mlp_in", c.Hidden, c.MLP), c.Activation)
			return b.dense(h, l+"mlp_out", c.MLP, c.Hidden)
		}
		if c.Norm == model.PreNorm {
			x = b.node("Add", []string{x, b.attention(b.layerNorm(x, l+"attention_norm"), l+"attention/MultiHeadAttention/")})
			x = b.node("Add", []string{x, mlp(b.layerNorm(x, l+"mlp_norm"))})
		} else {
			x = b.layerNorm(b.node("Add", []string{x, b.attention(x, l+"attention/MultiHeadAttention/")}), l+"attention_norm")
			x = b.layerNorm(b.node("Add", []string{x, mlp(x)}), l+"mlp_norm")
		}
	}
	if c.Norm == model.PreNorm {
		x = b.layerNorm(x, "/encoder/final_norm")
	}
	return x
}

// attention is multi-head self-attention over x [B, S, D].
func (b *builder) attention(x, scope string) string {
	D, H := b.c.Hidden, b.c.Heads
	d := D / H
	split := b.ints(false, 0, 0, int64(H), int64(d))
	heads := func(name string, perm ...int64) string { // [B, S, D] → [B, S, H, d] → perm
		y := b.node("Reshape", []string{b.dense(x, scope+name, D, D), split})
		return b.node("Transpose", []string{y}, intsAttr("perm", perm...))
	}
	q := b.node("Mul", []string{heads("query", 0, 2, 1, 3), b.scalar(float32(1 / math.Sqrt(float64(d))))}) // [B, H, S, d]
	k := heads("key", 0, 2, 3, 1)                                                                          // [B, H, d, S]
	v := heads("value", 0, 2, 1, 3)                                                                        // [B, H, S, d]
	scores := b.node("MatMul", []string{q, k})                                                             // [B, H, S, S]
	if b.keyBias != "" {
		scores = b.node("Add", []string{scores, b.keyBias})
	}
	out := b.node("MatMul", []string{b.node("Softmax", []string{scores}, intAttr("axis", -1)), v}) // [B, H, S, d]
	if b.anyKey != "" {
		out = b.node("Mul", []string{out, b.anyKey})
	}
	out = b.node("Transpose", []string{out}, intsAttr("perm", 0, 2, 1, 3))
	out = b.node("Reshape", []string{out, b.ints(false, 0, 0, int64(D))})
	return b.dense(out, scope+"output", D, D)
}

// head adds head h's logits output, read from the [CLS] row of hidden or,
// for an MLM head, from the rows at mlm_positions.
func (b *builder) head(h *model.HeadConfig, hidden string) {
	c := b.c
	D := c.Hidden
	scope := "/heads/" + h.Name + "/"
	var x string
	dims := []any{"batch"}
	if h.Kind == model.HeadMLM {
		if !b.inits[PositionsInput] { // one input for every MLM head
			b.inits[PositionsInput] = true
			b.input(PositionsInput, pb.TensorProto_INT64, "batch", "positions")
		}
		x = b.node("GatherND", []string{hidden, b.node("Unsqueeze", []string{PositionsInput, b.ints(false, 2)})}, intAttr("batch_dims", 1))
		dims = append(dims, "positions")
	} else {
		x = b.node("Gather", []string{hidden, b.ints(true, 0)}, intAttr("axis", 1))
	}
	if h.Hidden {
		x = b.activation(b.dense(x, scope+"hidden", D, D), h.Activation)
		if h.HiddenNorm {
			x = b.layerNorm(x, scope+"hidden_norm")
		}
	}
	var logits string
	if h.Tied {
		word := b.weight("/text/embeddings/word/embeddings", c.VocabSize, D)
		wordT := b.node("Transpose", []string{word}, intsAttr("perm", 1, 0))
		logits = b.node("MatMul", []string{x, wordT})
		logits = b.node("Add", []string{logits, b.weight(scope+"output/biases", h.Outputs)})
	} else {
		logits = b.dense(x, scope+"output", D, h.Outputs)
	}
	b.output(LogitsOutput(h.Name), logits, append(dims, h.Outputs)...)
}

// output names x as a float32 graph output.
func (b *builder) output(name, x string, dims ...any) {
	b.g.Node = append(b.g.Node, &pb.NodeProto{OpType: "Identity", Name: name, Input: []string{x}, Output: []string{name}})
	b.g.Output = append(b.g.Output, valueInfo(name, pb.TensorProto_FLOAT, dims...))
}
