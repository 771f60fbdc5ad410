package finetune

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/vitbert/vitbert/data/texts"
	"github.com/vitbert/vitbert/internal/testmodel"
	"github.com/vitbert/vitbert/text"
)

// trainedVocab writes a 500-token vocabulary learned from the embedded corpus.
func trainedVocab(t *testing.T) (string, *text.Tokenizer) {
	t.Helper()
	docs, err := texts.DefaultCorpus()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := texts.TrainVocab(docs, 500, 0)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "vocab")
	if err := tok.Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir, tok
}

// checkModelVocab checks that a fine-tuned model carries tok and evaluates.
func checkModelVocab(t *testing.T, res *Result, tok *text.Tokenizer) {
	t.Helper()
	m := loadModel(t, res.BestDir)
	if m.Config.VocabSize != tok.VocabSize() {
		t.Errorf("model vocab_size %d, want the vocabulary's %d", m.Config.VocabSize, tok.VocabSize())
	}
	saved, err := text.ForModel(res.BestDir, m.Config.VocabSize)
	if err != nil {
		t.Fatal(err)
	}
	if !saved.SameVocabulary(tok) {
		t.Error("the fine-tuned model does not carry its vocabulary")
	}
	if _, err := Evaluate(backend(t), res.BestDir, Task{}, EvalOptions{}); err != nil {
		t.Errorf("evaluating the fine-tuned model: %v", err)
	}
}

func TestScratchTextRunUsesItsVocab(t *testing.T) {
	dir, tok := trainedVocab(t)
	c := tinyConfig(Task{Name: TaskEmbeddedText}, 2, 16)
	c.Vocab = dir
	res, _ := runQuiet(t, c)
	checkModelVocab(t, res, tok)
}

func TestPretrainedModelBringsItsVocab(t *testing.T) {
	vdir, tok := trainedVocab(t)
	c := tinyModel(false, true)
	c.VocabSize = tok.VocabSize()
	dir, _ := testmodel.SaveFresh(t, c, 7)
	if err := tok.Save(dir); err != nil {
		t.Fatal(err)
	}
	fc := tinyConfig(Task{Name: TaskEmbeddedText}, 2, 16)
	fc.Model, fc.ModelConfig = dir, nil
	res, _ := runQuiet(t, fc)
	checkModelVocab(t, res, tok)

	fc.Vocab = vdir
	if _, err := Run(t.Context(), backend(t), fc, Options{OutDir: t.TempDir(), Quiet: true}); err == nil || !strings.Contains(err.Error(), "own vocabulary") {
		t.Errorf("a vocab for a pre-trained model: %v, want an error", err)
	}
}
