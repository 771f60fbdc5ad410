package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vitbert/vitbert/text"
)

func TestVocabTrain(t *testing.T) {
	corpus := filepath.Join(t.TempDir(), "c.txt")
	body := strings.Repeat("The whale swam under the grey sea. Whales sing; the sea listens.\n\n", 20)
	if err := os.WriteFile(corpus, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "vocab")
	if err := runVocab([]string{"train", "--corpus", corpus, "--size", "60", "--out", out}); err != nil {
		t.Fatal(err)
	}
	fromJSON, err := text.Load(filepath.Join(out, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	fromTxt, err := text.Load(filepath.Join(out, "vocab.txt"))
	if err != nil {
		t.Fatal(err)
	}
	held := "the whales swim; a grey sea"
	if a, b := fromJSON.Encode(held).IDs, fromTxt.Encode(held).IDs; !slices.Equal(a, b) || fromJSON.VocabSize() != 60 {
		t.Errorf("tokenizer.json %v and vocab.txt %v (%d tokens)", a, b, fromJSON.VocabSize())
	}
	for _, args := range [][]string{
		nil,
		{"fit"},
		{"train", "--corpus", corpus, "--size", "60"},
		{"train", "--corpus", corpus, "--size", "3", "--out", out},
		{"train", "--corpus", filepath.Join(out, "missing"), "--out", out},
	} {
		if err := runVocab(args); err == nil {
			t.Errorf("vocab %v: no error", args)
		}
	}
}
