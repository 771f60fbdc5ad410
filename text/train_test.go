package text

import (
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vitbert/vitbert/internal/testutil"
)

// TestTrainBPEMatchesTokenizersTrainer is tokenizers' own BpeTrainer test
// (models/bpe/trainer.rs, test_train: no prefix, min_frequency 2) run through
// trainBPE: the same vocabulary after the special tokens.
func TestTrainBPEMatchesTokenizersTrainer(t *testing.T) {
	counts := map[string]int{"roses": 1, "are": 2, "red": 1, "voilets": 1, "blue": 1, "BERT": 1, "is": 2, "big": 1, "and": 1, "so": 1, "GPT-2": 1}
	got := trainBPE(counts, 30000, 2, "")
	want := []string{"-", "2", "B", "E", "G", "P", "R", "T", "a", "b", "d", "e", "g", "i", "l", "n", "o", "r", "s", "t", "u", "v", "re", "are", "is"}
	if !slices.Equal(got[len(SpecialTokens):], want) {
		t.Errorf("vocabulary %v\nwant        %v", got[len(SpecialTokens):], want)
	}
}

// TestTrainBPEWithPrefix is computed by hand: words hug×10 pug×5 pun×12
// bun×4 hugs×5. Pair counts (##u ##g) 20, (p ##u) 17, (##u ##n) 16,
// (h ##u) 15 merge ##ug first; then (##u ##n) 16, (h ##ug) 15, (p ##un) 12;
// then (p ##ug) and (hug ##s) tie at 5 and the smaller pair of ids (p first)
// wins; then (b ##un) 4.
func TestTrainBPEWithPrefix(t *testing.T) {
	counts := map[string]int{"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5}
	want := append(slices.Clone(SpecialTokens), "b", "g", "h", "n", "p", "s", "u", // alphabet
		"##u", "##n", "##g", "##s", // met in sorted words: bun, hug, hugs
		"##ug", "##un", "hug", "pun", "pug", "hugs", "bun")
	if got := trainBPE(counts, 100, 0, "##"); !slices.Equal(got, want) {
		t.Errorf("vocabulary %v\nwant       %v", got, want)
	}
	if got := trainBPE(counts, 20, 0, "##"); !slices.Equal(got, want[:20]) {
		t.Errorf("size 20: %v, want %v", got, want[:20])
	}
	if got := trainBPE(counts, 100, 6, "##"); !slices.Equal(got, want[:20]) {
		t.Errorf("min frequency 6: %v, want %v (merges seen 20, 16, 15, 12 times)", got, want[:20])
	}
}

func corpusText(t *testing.T) (train []string, heldOut string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tokenizerDir, "..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	cut := len(lines) * 4 / 5
	return lines[:cut], strings.Join(lines[cut:], "\n")
}

func trainOn(t *testing.T, lines []string, size int) *Tokenizer {
	t.Helper()
	tr := NewWordPieceTrainer()
	for _, l := range lines {
		tr.Feed(l)
	}
	tok, err := tr.Train(TrainOptions{VocabSize: size})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestTrainedVocabularySavesAndLoads trains on one part of a text, saves the
// vocabulary, and encodes the rest identically from tokenizer.json, from
// vocab.txt and in memory.
func TestTrainedVocabularySavesAndLoads(t *testing.T) {
	lines, held := corpusText(t)
	tok := trainOn(t, lines, 600)
	if tok.VocabSize() != 600 {
		t.Fatalf("vocabulary of %d tokens, want 600", tok.VocabSize())
	}
	for i, s := range SpecialTokens {
		if tok.IDToken(int32(i)) != s || !tok.IsSpecial(int32(i)) {
			t.Errorf("id %d is %q, want special %s", i, tok.IDToken(int32(i)), s)
		}
	}
	if tok.PAD() != 0 || tok.UNK() != 1 || tok.CLS() != 2 || tok.SEP() != 3 || tok.MASK() != 4 {
		t.Errorf("special ids %d %d %d %d %d, want 0…4", tok.PAD(), tok.UNK(), tok.CLS(), tok.SEP(), tok.MASK())
	}
	dir := t.TempDir()
	if err := tok.Save(dir); err != nil {
		t.Fatal(err)
	}
	fromJSON, err := Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	fromTxt, err := Load(filepath.Join(dir, "vocab.txt"))
	if err != nil {
		t.Fatal(err)
	}
	pair := "A [MASK] in the second text."
	want := tok.EncodePair(held, pair)
	unk := 0
	for _, id := range want.IDs {
		if id == tok.UNK() {
			unk++
		}
	}
	if len(want.IDs) < 200 || unk*20 > len(want.IDs) {
		t.Fatalf("held-out text: %d tokens, %d [UNK]", len(want.IDs), unk)
	}
	for name, other := range map[string]*Tokenizer{"tokenizer.json": fromJSON, "vocab.txt": fromTxt} {
		got := other.EncodePair(held, pair)
		if !slices.Equal(got.IDs, want.IDs) || !slices.Equal(got.TypeIDs, want.TypeIDs) {
			t.Errorf("%s encodes the held-out text differently", name)
		}
		if other.VocabSize() != tok.VocabSize() || other.MASK() != tok.MASK() || other.UNK() != tok.UNK() {
			t.Errorf("%s: %d tokens, [MASK] %d, [UNK] %d", name, other.VocabSize(), other.MASK(), other.UNK())
		}
	}

	// The same sections as a tokenizer.json written by the tokenizers library.
	ours := testutil.ReadJSON[map[string]any](t, filepath.Join(dir, "tokenizer.json"))
	hf := testutil.ReadJSON[map[string]any](t, filepath.Join(tokenizerDir, "tokenizer.json"))
	if k1, k2 := slices.Sorted(maps.Keys(ours)), slices.Sorted(maps.Keys(hf)); !slices.Equal(k1, k2) {
		t.Errorf("sections %v, want %v", k1, k2)
	}
	for _, sec := range []string{"normalizer", "pre_tokenizer", "post_processor", "decoder", "model"} {
		o, h := ours[sec].(map[string]any), hf[sec].(map[string]any)
		if o["type"] != h["type"] || !slices.Equal(slices.Sorted(maps.Keys(o)), slices.Sorted(maps.Keys(h))) {
			t.Errorf("%s: type %v keys %v; the fixture has %v %v", sec, o["type"], slices.Sorted(maps.Keys(o)), h["type"], slices.Sorted(maps.Keys(h)))
		}
	}
	if n := len(ours["added_tokens"].([]any)); n != len(SpecialTokens) {
		t.Errorf("%d added tokens, want %d", n, len(SpecialTokens))
	}

	// Training is deterministic (Go randomises map order on every run).
	if tok2 := trainOn(t, lines, 600); !slices.Equal(tok.idToTok, tok2.idToTok) {
		t.Error("two trainings on the same text differ")
	}
}

// TestSaveDefaultRoundTrips saves bert-base-uncased and loads it back.
func TestSaveDefaultRoundTrips(t *testing.T) {
	tok, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := tok.Save(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The file is the one the tokenizers library wrote for bert-base-uncased.
	ours := testutil.ReadJSON[any](t, filepath.Join(dir, "tokenizer.json"))
	theirs := testutil.ReadJSON[any](t, filepath.Join(tokenizerDir, "tokenizer.json"))
	if !reflect.DeepEqual(ours, theirs) {
		o, h := ours.(map[string]any), theirs.(map[string]any)
		for k := range h {
			if !reflect.DeepEqual(o[k], h[k]) {
				t.Errorf("tokenizer.json section %q differs from the fixture's", k)
			}
		}
	}
	hf := mustLoad(t, tokenizerDir)
	s := "Héllo, [MASK] wörld! 東京 don't"
	if got, want := back.Encode(s).IDs, hf.Encode(s).IDs; !slices.Equal(got, want) || !slices.Equal(back.idToTok, tok.idToTok) {
		t.Errorf("saved and reloaded: %v, want %v", got, want)
	}
}

func TestTrainErrors(t *testing.T) {
	tr := NewWordPieceTrainer()
	if _, err := tr.Train(TrainOptions{VocabSize: 100}); err == nil {
		t.Error("training on no text gave no error")
	}
	tr.Feed("some words")
	for _, o := range []TrainOptions{{VocabSize: 5}, {VocabSize: -1}, {VocabSize: 100, MinFrequency: -2}} {
		if _, err := tr.Train(o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
	tr.Feed("[MASK] [CLS]")
	if _, ok := tr.counts["mask"]; ok {
		t.Error("a special token in the text was counted as words")
	}
}
