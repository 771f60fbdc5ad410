package texts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInspectRecognisesEachLayout(t *testing.T) {
	root := t.TempDir()
	glue := filepath.Join(root, "glue")
	writeGLUE(t, glue, "RTE", "train", glueFixtures["RTE"]["train"])
	writeGLUE(t, glue, "RTE", "dev", glueFixtures["RTE"]["dev"])
	writeGLUE(t, glue, "STS-B", "train", glueFixtures["STS-B"]["train"])
	writeGLUE(t, glue, "QQP", "train", glueFixtures["QQP"]["train"]+"9|9|9|broken row\n")
	writeFiles(t, root, map[string]string{
		"spam/train/ham/1.txt":  "Lunch at noon?",
		"spam/train/spam/2.txt": "Buy now",
		"spam/test/ham/3.txt":   "See you",
		"flat/pos/1.txt":        "Good.",
		"flat/neg/2.txt":        "Bad.",
		"set.tsv":               "label\ttext\npos\tgood film\nneg\tbad film\npos\tnice\n",
		"corpus/a.txt":          "Call me Ishmael. Some years ago, never mind how long.\n\nIt was cold.",
		"corpus/SOURCE.md":      "not text",
		"other/x.bin":           "\x00",
	})
	tests := []struct {
		path  string
		wants []string
	}{
		{glue, []string{"GLUE STS-B (sentence pair, regression 0–5; metrics pearson+spearman)", "[3.80] A man is playing a flute.",
			"GLUE QQP", "train: 2 examples (0 1, 1 1), 1 malformed rows skipped (first: line 4: 4 columns, want 6)",
			"GLUE RTE", "dev: 1 examples (entailment 1, not_entailment 0)"}},
		{filepath.Join(glue, "RTE"), []string{"GLUE RTE (sentence pair, labels entailment/not_entailment; metrics accuracy)",
			"train: 1 examples (entailment 0, not_entailment 1)", "[not_entailment] No weapons were found. ||| Weapons were found."}},
		{filepath.Join(glue, "RTE", "dev.tsv"), []string{"GLUE RTE", "dev: 1 examples"}},
		{filepath.Join(root, "spam"), []string{"<split>/<class>", "test: 1 examples (ham 1, spam 0)", "train: 2 examples (ham 1, spam 1)", "[spam] Buy now"}},
		{filepath.Join(root, "flat"), []string{"(<class>/*.txt)", "all: 2 examples (neg 1, pos 1)"}},
		{filepath.Join(root, "set.tsv"), []string{"labelled TSV", "all: 3 examples (neg 1, pos 2)"}},
		{filepath.Join(root, "corpus"), []string{"1 files, 1 documents, 3 sentences, 13 words", "Some years ago, never mind how long."}},
	}
	for _, tc := range tests {
		var b strings.Builder
		ok, err := Inspect(tc.path, &b)
		if err != nil || !ok {
			t.Fatalf("Inspect(%s) = %v, %v", tc.path, ok, err)
		}
		for _, want := range tc.wants {
			if !strings.Contains(b.String(), want) {
				t.Errorf("Inspect(%s) output lacks %q:\n%s", tc.path, want, b.String())
			}
		}
	}
	for _, p := range []string{filepath.Join(root, "other"), filepath.Join(root, "other", "x.bin")} {
		if ok, err := Inspect(p, os.Stdout); ok || err != nil {
			t.Errorf("Inspect(%s) = %v, %v; want unrecognised", p, ok, err)
		}
	}
	if _, err := Inspect(filepath.Join(root, "missing"), os.Stdout); err == nil {
		t.Error("missing path: no error")
	}
}
