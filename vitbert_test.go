package vitbert

import (
	"math"
	"testing"

	"github.com/vitbert/vitbert/safetensors"
)

// ClassifyText and Embed agree with transformers' outputs recorded in
// testdata/hf/bert-tiny/expected.safetensors (sentences of inputs.json).
func TestAgreesWithTransformers(t *testing.T) {
	exp, err := safetensors.ReadFile("testdata/hf/bert-tiny/expected.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	logits, _ := exp.Tensors["cls_logits"].Float32s() // [3, 3]
	hidden, _ := exp.Tensors["mlm_last_hidden_state"].Float32s()

	cls, err := Load("testdata/hf/bert-tiny/cls")
	if err != nil {
		t.Fatal(err)
	}
	preds, err := cls.ClassifyText("Go is a programming language.", 0)
	if err != nil {
		t.Fatal(err)
	}
	row := logits[6:9]
	sum := 0.0
	for _, v := range row {
		sum += math.Exp(float64(v))
	}
	for _, p := range preds {
		var i int
		switch p.Label {
		case cls.Config.TaskHeads[0].Labels[0]:
			i = 0
		case cls.Config.TaskHeads[0].Labels[1]:
			i = 1
		default:
			i = 2
		}
		if want := math.Exp(float64(row[i])) / sum; math.Abs(p.Score-want) > 1e-5 {
			t.Errorf("%s: probability %g, transformers gives %g", p.Label, p.Score, want)
		}
	}

	mlm, err := Load("testdata/hf/bert-tiny/mlm")
	if err != nil {
		t.Fatal(err)
	}
	v, err := mlm.Embed("The cat sat on the mat.")
	if err != nil {
		t.Fatal(err)
	}
	for i := range v {
		if d := math.Abs(float64(v[i] - hidden[i])); d > 1e-4 {
			t.Fatalf("embedding[%d] = %g, transformers' [CLS] state gives %g", i, v[i], hidden[i])
		}
	}
}

func TestErrors(t *testing.T) {
	vit, err := Load("testdata/hf/vit-tiny/cls")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vit.FillMask("a [MASK]", 1); err == nil {
		t.Error("FillMask on an image model")
	}
	mlm, err := Load("testdata/hf/bert-tiny/mlm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mlm.FillMask("no mask here", 1); err == nil {
		t.Error("FillMask without [MASK]")
	}
	if _, err := mlm.ClassifyImage("testdata/images/gradient.png", 1); err == nil {
		t.Error("ClassifyImage on a text model")
	}
	if _, err := Load("testdata/hf/nothing"); err == nil {
		t.Error("Load of a missing directory")
	}
}
