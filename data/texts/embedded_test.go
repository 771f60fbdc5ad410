package texts

import (
	"reflect"
	"strings"
	"testing"
)

func TestDefaultCorpusIsTheDocumentedProse(t *testing.T) {
	docs, err := DefaultCorpus()
	if err != nil {
		t.Fatal(err)
	}
	// README: Moby Dick chapters 1–61 and 11 addresses (2011–2021).
	if len(docs) != 72 {
		t.Fatalf("%d documents, want 72", len(docs))
	}
	if docs[0].Source != "moby-dick/chapter_001.txt" || docs[0].Sentences[2] != "Call me Ishmael." {
		t.Errorf("first document %s starts %q", docs[0].Source, docs[0].Sentences[:3])
	}
	if last := docs[len(docs)-1].Source; last != "sotu/2021_joseph_r_biden_d.txt" {
		t.Errorf("last document %s", last)
	}
	chars, sents := 0, 0
	for _, d := range docs {
		sents += len(d.Sentences)
		for _, s := range d.Sentences {
			chars += len(s)
		}
	}
	if chars < 900_000 || chars > 1_100_000 || sents < 5000 {
		t.Errorf("%d characters in %d sentences, want about 1 MB", chars, sents)
	}
}

func TestDefaultLabelledIsTheDocumentedSplit(t *testing.T) {
	train, test, err := DefaultLabelled()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ham", "spam"}
	if !reflect.DeepEqual(train.Classes, want) || !reflect.DeepEqual(test.Classes, want) {
		t.Fatalf("classes %q / %q", train.Classes, test.Classes)
	}
	// Counts stated in embedded/README.md.
	if got := train.Counts(); !reflect.DeepEqual(got, []int{2166, 1491}) {
		t.Errorf("train counts %v, want [2166 1491]", got)
	}
	if got := test.Counts(); !reflect.DeepEqual(got, []int{584, 405}) {
		t.Errorf("test counts %v, want [584 405]", got)
	}
	for _, l := range []*Labelled{train, test} {
		for i, s := range l.Sources {
			// Sources look like "train/spam/spam-1-00042.txt"; the split must
			// agree with the documented hash rule on "<group>/<n>".
			parts := strings.Split(strings.TrimSuffix(s, ".txt"), "/")
			base := parts[2]
			k := strings.LastIndexByte(base, '-')
			if want := splitOf(base[:k] + "/" + base[k+1:]); parts[0] != want {
				t.Fatalf("%s is in %s, rule says %s", s, parts[0], want)
			}
			if n := len([]rune(l.Texts[i])); n == 0 || n > 1500 {
				t.Fatalf("%s has %d characters", s, n)
			}
		}
	}
}
