package main

import (
	"bytes"
	"encoding/json"
	"io"
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

	// vocab encode prints what the tokenizer gives, one JSON line per text.
	var printed bytes.Buffer
	if err := runVocabEncode([]string{"--vocab", out, "--pair"}, strings.NewReader(held+"\tthe sea\n"), &printed); err != nil {
		t.Fatal(err)
	}
	var got struct {
		IDs     []int32  `json:"ids"`
		Tokens  []string `json:"tokens"`
		TypeIDs []int32  `json:"type_ids"`
	}
	if err := json.Unmarshal(printed.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	b := "the sea"
	want, err := fromJSON.EncodeWith(held, &b, text.EncodeOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.IDs, want.IDs) || !slices.Equal(got.Tokens, want.Tokens) || !slices.Equal(got.TypeIDs, want.TypeIDs) {
		t.Errorf("encode printed %+v, want %v %v %v", got, want.IDs, want.Tokens, want.TypeIDs)
	}
	if err := runVocabEncode([]string{"--vocab", out, "--pair"}, strings.NewReader("no tab\n"), io.Discard); err == nil {
		t.Error("a pair line without a tab gave no error")
	}

	for _, args := range [][]string{
		nil,
		{"fit"},
		{"encode", "extra"},
		{"train", "--corpus", corpus, "--size", "60"},
		{"train", "--corpus", corpus, "--size", "3", "--out", out},
		{"train", "--corpus", filepath.Join(out, "missing"), "--out", out},
	} {
		if err := runVocab(args); err == nil {
			t.Errorf("vocab %v: no error", args)
		}
	}
}
