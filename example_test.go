package vitbert_test

import (
	"fmt"
	"log"

	"github.com/vitbert/vitbert"
)

// The models in testdata/hf are tiny random BERT and ViT checkpoints made
// with transformers; their predictions are arbitrary but fixed.

func ExampleModel_FillMask() {
	m, err := vitbert.Load("testdata/hf/bert-tiny/mlm")
	if err != nil {
		log.Fatal(err)
	}
	preds, err := m.FillMask("The cat sat on the [MASK].", 3)
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range preds[0] {
		fmt.Println(p.Label) // a random model: the scores are all about 1/30522
	}
	// Output:
	// thatcher
	// shrieked
	// originates
}

func ExampleModel_ClassifyText() {
	m, err := vitbert.Load("testdata/hf/bert-tiny/cls")
	if err != nil {
		log.Fatal(err)
	}
	preds, err := m.ClassifyText("Go is a programming language.", 0)
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range preds {
		fmt.Printf("%s %.3f\n", p.Label, p.Score)
	}
	// Output:
	// LABEL_1 0.339
	// LABEL_0 0.331
	// LABEL_2 0.330
}

func ExampleModel_ClassifyImage() {
	m, err := vitbert.Load("testdata/hf/vit-tiny/cls")
	if err != nil {
		log.Fatal(err)
	}
	preds, err := m.ClassifyImage("testdata/images/gradient.png", 2)
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range preds {
		fmt.Printf("%s %.3f\n", p.Label, p.Score)
	}
	// Output:
	// LABEL_1 0.120
	// LABEL_9 0.119
}

func ExampleModel_Embed() {
	m, err := vitbert.Load("testdata/hf/bert-tiny/mlm")
	if err != nil {
		log.Fatal(err)
	}
	v, err := m.Embed("The cat sat on the mat.")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d values, first %.3f\n", len(v), v[0])
	// Output:
	// 32 values, first 0.519
}
