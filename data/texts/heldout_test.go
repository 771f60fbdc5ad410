package texts

import (
	"fmt"
	"reflect"
	"testing"
)

func TestHeldOutSplitsByDocumentName(t *testing.T) {
	var docs []Document
	for i := range 2000 {
		docs = append(docs, Document{Source: fmt.Sprintf("book/chapter_%04d.txt", i), Sentences: []string{fmt.Sprint(i)}})
	}
	train, held, err := HeldOut(docs, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	if len(train)+len(held) != len(docs) {
		t.Fatalf("%d + %d documents, want %d", len(train), len(held), len(docs))
	}
	if n := len(held); n < 150 || n > 250 { // 200 expected, σ ≈ 13
		t.Errorf("%d of 2000 documents held out at 0.1, want about 200", n)
	}
	side := map[string]bool{}
	for _, d := range held {
		side[d.Source] = true
	}
	for _, d := range train {
		if side[d.Source] {
			t.Fatalf("%s on both sides", d.Source)
		}
	}
	// The side of a document depends on its name only: reversed and
	// thinned corpora hold out exactly the same names.
	var rev []Document
	for i := len(docs) - 1; i >= 0; i -= 3 {
		rev = append(rev, docs[i])
	}
	_, held2, err := HeldOut(rev, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range rev {
		in := false
		for _, h := range held2 {
			in = in || h.Source == d.Source
		}
		if in != side[d.Source] {
			t.Fatalf("%s changes side when the corpus changes", d.Source)
		}
	}
	again, held3, _ := HeldOut(docs, 0.1)
	if !reflect.DeepEqual(held, held3) || !reflect.DeepEqual(train, again) {
		t.Error("the split is not deterministic")
	}
	for _, f := range []float64{0, 1, -0.5, 2} {
		if _, _, err := HeldOut(docs, f); err == nil {
			t.Errorf("fraction %g accepted", f)
		}
	}
	if _, _, err := HeldOut(docs[:1], 0.1); err == nil {
		t.Error("a corpus of one document split without error")
	}
}

func TestHeldOutOfTheDefaultCorpus(t *testing.T) {
	docs, err := DefaultCorpus()
	if err != nil {
		t.Fatal(err)
	}
	train, held, err := HeldOut(docs, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) == 0 || len(train) < len(held) {
		t.Errorf("%d training and %d held-out documents", len(train), len(held))
	}
}
