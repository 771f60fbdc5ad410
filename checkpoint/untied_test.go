package checkpoint

import (
	"path/filepath"
	"testing"
)

// An untied BERT MLM head (its own decoder matrix, as in
// tie_word_embeddings=false checkpoints) survives export and import: the
// decoder is not replaced by the word embeddings.
func TestExportHFUntiedMLM(t *testing.T) {
	m, err := LoadDir(fixtures + "bert-tiny/mlm")
	if err != nil {
		t.Fatal(err)
	}
	h, ok := m.Config.Head(MLMHead)
	if !ok || !h.Tied {
		t.Fatalf("the bert-tiny fixture's MLM head should be tied (head %v)", h)
	}
	h.Tied = false
	word := m.Weights["/text/embeddings/word/embeddings"]
	decoder := make([]float32, len(word))
	for i, x := range word {
		decoder[i] = 2*x + 0.01
	}
	m.Weights["/heads/mlm/output/dense/weights"] = decoder
	m.Weights["/heads/mlm/output/dense/biases"] = m.Weights["/heads/mlm/output/biases"]
	delete(m.Weights, "/heads/mlm/output/biases")

	out := filepath.Join(t.TempDir(), "export")
	if err := ExportHF(out, &m.Config, m.Weights); err != nil {
		t.Fatal(err)
	}
	back, err := LoadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if bh, _ := back.Config.Head(MLMHead); bh == nil || bh.Tied {
		t.Fatalf("the untied head came back tied (or missing): %v", bh)
	}
	sameWeights(t, m, back)
}
