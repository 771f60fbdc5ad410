package texts

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSplitSentencesRules(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"Mr. Smith went to Washington. He arrived at 5 p.m. on Monday.",
			[]string{"Mr. Smith went to Washington.", "He arrived at 5 p.m. on Monday."}},
		{`"Stop!" she cried. "Why?" He left.`,
			[]string{`"Stop!" she cried.`, `"Why?"`, "He left."}},
		{"J. R. R. Tolkien wrote books. The U.S. Army won. Is it? Yes!",
			[]string{"J. R. R. Tolkien wrote books.", "The U.S. Army won.", "Is it?", "Yes!"}},
		{"In 1790 the debt was large.  1791 was\tbetter.",
			[]string{"In 1790 the debt was large.", "1791 was better."}},
		{"He said “No.” Then he went (quietly.) And so on", // closing quote/bracket after the period
			[]string{"He said “No.”", "Then he went (quietly.)", "And so on"}},
		{"apples, pears, etc. And more.", []string{"apples, pears, etc. And more."}},
		{"", nil},
	}
	for _, tc := range tests {
		if got := SplitSentences(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SplitSentences(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestParseCorpusTextDocumentSplits(t *testing.T) {
	text := "\ufeffCall me Ishmael. Some years\nago I went.\n\nA new para. End\n\n\nSecond block.\n"
	got, err := ParseCorpusText("m.txt", []byte(text), CorpusOptions{Split: DocPerFile})
	if err != nil {
		t.Fatal(err)
	}
	want := []Document{{Source: "m.txt", Sentences: []string{
		"Call me Ishmael.", "Some years ago I went.", "A new para.", "End", "Second block."}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DocPerFile:\n got %q\nwant %q", got, want)
	}
	got, err = ParseCorpusText("m.txt", []byte(text), CorpusOptions{Split: DocPerBlankLine})
	if err != nil {
		t.Fatal(err)
	}
	want = []Document{
		{Source: "m.txt:1", Sentences: []string{"Call me Ishmael.", "Some years", "ago I went."}},
		{Source: "m.txt:4", Sentences: []string{"A new para.", "End"}},
		{Source: "m.txt:7", Sentences: []string{"Second block."}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DocPerBlankLine:\n got %q\nwant %q", got, want)
	}
}

func TestParseCorpusTextRejectsInvalidUTF8WithLine(t *testing.T) {
	_, err := ParseCorpusText("bad.txt", []byte("ok.\nfine.\nbro\xffken\n"), CorpusOptions{})
	if err == nil || !strings.Contains(err.Error(), "bad.txt: line 3") {
		t.Fatalf("err = %v, want mention of bad.txt: line 3", err)
	}
}

func TestReadCorpusWalksFoldersInOrder(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, s string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("b.txt", "Bee one. Bee two.")
	write("a.txt", "Ay.")
	write("sub/c.TXT", "See.")
	write("notes.md", "Not read.")
	docs, err := ReadCorpus(CorpusOptions{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	var srcs []string
	n := 0
	for _, d := range docs {
		srcs = append(srcs, filepath.Base(d.Source))
		n += len(d.Sentences)
	}
	if !reflect.DeepEqual(srcs, []string{"a.txt", "b.txt", "c.TXT"}) || n != 4 {
		t.Errorf("sources %v with %d sentences, want a, b, c.TXT with 4", srcs, n)
	}
	if _, err := ReadCorpus(CorpusOptions{}, filepath.Join(dir, "missing")); err == nil {
		t.Error("missing path accepted")
	}
}
