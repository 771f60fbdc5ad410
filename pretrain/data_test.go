package pretrain

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/data/texts"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/text"
)

// TestTextBatchesAreBERTInputs checks the packed MLM rows: [CLS] first, [SEP]
// after the last real token, [PAD] after that, and every MLM target a real
// token of the row that is not special.
func TestTextBatchesAreBERTInputs(t *testing.T) {
	c := micro(t, ModeText, 1)
	tok, err := text.Default()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := LoadCorpus("embedded")
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewTextData(&c, tok, docs)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := d.Batcher.Batch(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	L, P := tb.L, tb.P
	for r := range tb.B {
		ids, mask := tb.IDs[r*L:(r+1)*L], tb.Mask[r*L:(r+1)*L]
		n := 0
		for _, m := range mask {
			n += int(m)
		}
		if ids[0] != tok.CLS() || ids[n-1] != tok.SEP() {
			t.Errorf("row %d: %v does not run from [CLS] to [SEP]", r, ids[:n])
		}
		for j := n; j < L; j++ {
			if ids[j] != tok.PAD() {
				t.Errorf("row %d: position %d after the text is %d, not [PAD]", r, j, ids[j])
			}
		}
		for k := r * P; k < (r+1)*P; k++ {
			if tb.MLMWeights[k] == 0 {
				continue
			}
			if p := tb.MLMPositions[k]; p <= 0 || int(p) >= n-1 || tok.IsSpecial(tb.MLMLabels[k]) {
				t.Errorf("row %d: MLM target %d at position %d of %d", r, tb.MLMLabels[k], p, n)
			}
		}
	}
}

// TestTrainedVocabularyGoesWithTheModel trains a vocabulary from the corpus
// into the run: the model's vocab_size follows it and OUT/model carries it.
func TestTrainedVocabularyGoesWithTheModel(t *testing.T) {
	c := micro(t, ModeText, 1)
	c.Data.VocabSize = 400
	c.Data.HeldOut = 0.2
	out := t.TempDir()
	run(t, c, out, Options{})
	m, err := checkpoint.LoadDir(filepath.Join(out, ModelDir))
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.VocabSize != 400 {
		t.Errorf("model vocab_size %d, want 400", m.Config.VocabSize)
	}
	tok, err := text.ForModel(filepath.Join(out, ModelDir), m.Config.VocabSize)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := LoadCorpus(c.Data.Corpus)
	if err != nil {
		t.Fatal(err)
	}
	// The vocabulary is learned from the training documents only.
	trainDocs, _ := SplitDocuments(docs, c.Data.HeldOut)
	want, err := Vocabulary(c.Data, trainDocs)
	if err != nil {
		t.Fatal(err)
	}
	if !tok.SameVocabulary(want) {
		t.Error("OUT/model does not carry the run's vocabulary, learned from the training documents")
	}
	if c.Data.HeldOut > 0 {
		if all, err := Vocabulary(c.Data, docs); err == nil && all.SameVocabulary(tok) {
			t.Error("the held-out documents went into the vocabulary")
		}
	}
	for _, h := range m.Config.TaskHeads {
		if h.Kind == model.HeadMLM && h.Outputs != 400 {
			t.Errorf("MLM head has %d outputs, want 400", h.Outputs)
		}
	}

	// A student whose vocabulary has the same size but other tokens cannot
	// distil from that model.
	other, err := texts.TrainVocab(docs[:len(docs)/2], 400, 0)
	if err != nil {
		t.Fatal(err)
	}
	if other.VocabSize() != 400 || other.SameVocabulary(tok) {
		t.Fatalf("the other vocabulary has %d tokens (want 400, different from the run's)", other.VocabSize())
	}
	vdir := filepath.Join(t.TempDir(), "vocab")
	if err := other.Save(vdir); err != nil {
		t.Fatal(err)
	}
	student := micro(t, ModeText, 1)
	student.Data.Vocab = vdir
	student.DistillText.Teacher = filepath.Join(out, ModelDir)
	if _, err := NewSetup(compute.MustNew(), student); err == nil || !strings.Contains(err.Error(), "vocabulary") {
		t.Errorf("a teacher with another vocabulary: %v, want an error", err)
	}

	c.Data.Vocab = "somewhere"
	if err := c.Validate(); err == nil {
		t.Error("both vocab and vocab_size accepted")
	}
}
