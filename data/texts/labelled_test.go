package texts

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseLabelledTSVLayouts(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		opt     LabelledOptions
		classes []string
		texts   []string
		labels  []int
	}{
		{"header label first", "label\ttext\npos\tgood film\nneg\tbad film\n", LabelledOptions{},
			[]string{"neg", "pos"}, []string{"good film", "bad film"}, []int{1, 0}},
		{"header text last col named sentence", "\ufeffSentence\tLabel\r\ngood film\tpos\r\n\r\nbad\tneg\r\n", LabelledOptions{},
			[]string{"neg", "pos"}, []string{"good film", "bad"}, []int{1, 0}},
		{"no header, label first by spaces", "spam\tbuy now cheap\nham\thello bob\n", LabelledOptions{},
			[]string{"ham", "spam"}, []string{"buy now cheap", "hello bob"}, []int{1, 0}},
		{"no header, label last by spaces", "buy now cheap\tspam\nhello bob\tham\n", LabelledOptions{},
			[]string{"ham", "spam"}, []string{"buy now cheap", "hello bob"}, []int{1, 0}},
		{"fixed classes", "a\tx y\n", LabelledOptions{Classes: []string{"b", "a"}},
			[]string{"b", "a"}, []string{"x y"}, []int{1}},
		{"explicit column", "one\ttwo\n", LabelledOptions{Column: LabelLast},
			[]string{"two"}, []string{"one"}, []int{0}},
	}
	for _, tc := range tests {
		l, err := ParseLabelledTSV("x.tsv", []byte(tc.in), tc.opt)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !reflect.DeepEqual(l.Classes, tc.classes) || !reflect.DeepEqual(l.Texts, tc.texts) || !reflect.DeepEqual(l.Labels, tc.labels) {
			t.Errorf("%s: got %q %q %v", tc.name, l.Classes, l.Texts, l.Labels)
		}
	}
}

func TestParseLabelledTSVErrorsNameLine(t *testing.T) {
	tests := []struct {
		name, in, opt, want string
	}{
		{"three columns", "a\tb c\na\tb\tc\n", "", "x.tsv: line 2: 3 columns"},
		{"bad utf8", "a\tb c\na\t\xff x\n", "", "x.tsv: line 2: text is not valid UTF-8"},
		{"ambiguous", "a b\tc d\n", "", "cannot tell the label column"},
		{"unknown class", "c\tx y\n", "fixed", `line 1: label "c" is not one of`},
		{"empty text", "label\ttext\na\t \n", "", "line 2: empty label or text"},
	}
	for _, tc := range tests {
		opt := LabelledOptions{}
		if tc.opt == "fixed" {
			opt.Classes = []string{"a", "b"}
		}
		_, err := ParseLabelledTSV("x.tsv", []byte(tc.in), opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for rel, s := range files {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadLabelledFolders(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"train/spam/1.txt": "Buy now!\n",
		"train/spam/2.txt": "Cheap pills",
		"train/ham/3.txt":  "Lunch at noon?",
		"train/ham/x.md":   "ignored",
		"test/ham/4.txt":   "See you",
		"test/other/5.txt": "Only in test",
	})
	splits, err := ReadLabelledSplits(root)
	if err != nil {
		t.Fatal(err)
	}
	tr, te := splits["train"], splits["test"]
	classes := []string{"ham", "other", "spam"}
	if len(splits) != 2 || !reflect.DeepEqual(tr.Classes, classes) || !reflect.DeepEqual(te.Classes, classes) {
		t.Fatalf("splits %d, classes %q / %q", len(splits), tr.Classes, te.Classes)
	}
	if !reflect.DeepEqual(tr.Texts, []string{"Lunch at noon?", "Buy now!", "Cheap pills"}) || !reflect.DeepEqual(tr.Labels, []int{0, 2, 2}) {
		t.Errorf("train %q %v", tr.Texts, tr.Labels)
	}
	if !reflect.DeepEqual(te.Counts(), []int{1, 1, 0}) || te.Sources[1] != "test/other/5.txt" {
		t.Errorf("test counts %v sources %q", te.Counts(), te.Sources)
	}
	one, err := ReadLabelledDir(filepath.Join(root, "train"), LabelledOptions{})
	if err != nil || !reflect.DeepEqual(one.Classes, []string{"ham", "spam"}) || one.Len() != 3 {
		t.Fatalf("ReadLabelledDir: %v %+v", err, one)
	}
	writeFiles(t, root, map[string]string{"train/ham/bad.txt": "caf\xe9"})
	if _, err := ReadLabelledSplits(root); err == nil || !strings.Contains(err.Error(), "train/ham/bad.txt") {
		t.Errorf("invalid UTF-8 file: %v", err)
	}
}

func FuzzParseLabelledTSV(f *testing.F) {
	f.Add([]byte("label\ttext\npos\tgood film\n"))
	f.Add([]byte("buy now\tspam\nhi\tham\n"))
	f.Add([]byte("\ufeff\r\n\t\n\xff\t\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLabelledTSV("fuzz.tsv", data, LabelledOptions{})
		if err != nil {
			return
		}
		if len(l.Texts) != len(l.Labels) || len(l.Texts) != len(l.Sources) {
			t.Fatalf("inconsistent lengths %d %d %d", len(l.Texts), len(l.Labels), len(l.Sources))
		}
		for i, y := range l.Labels {
			if y < 0 || y >= len(l.Classes) || l.Texts[i] == "" || strings.ContainsAny(l.Texts[i], "\t\n") {
				t.Fatalf("example %d: label %d of %d, text %q", i, y, len(l.Classes), l.Texts[i])
			}
		}
	})
}

// FuzzReadGLUERow feeds arbitrary rows to a GLUE task reader: it must
// return examples or an error, never panic, and examples must be well formed.
func FuzzReadGLUERow(f *testing.F) {
	f.Add("MNLI", []byte("0|1|1n|g|b|b|p|p|A.|B.|neutral|neutral"))
	f.Add("STS-B", []byte("0|g|f|y|o|s|s|A.|B.|4.2"))
	f.Add("CoLA", []byte("src|1||A sentence."))
	f.Fuzz(func(t *testing.T, task string, row []byte) {
		tk, err := LookupTask(task)
		if err != nil {
			return
		}
		root := t.TempDir()
		var header string
		if _, ok := tk.headerless["train"]; !ok {
			header = strings.SplitN(glueFixtures[tk.Name]["train"], "\n", 2)[0] + "\n"
		}
		writeGLUE(t, root, tk.Name, "train", header+string(row)+"\n")
		s, err := ReadGLUE(root, tk.Name, "train", GLUEOptions{Malformed: MalformedSkip})
		if err != nil {
			return
		}
		for _, ex := range s.Examples {
			if ex.A == "" || (tk.Pair && ex.B == "") || (!tk.Regression() && (ex.Label < 0 || ex.Label >= len(tk.Labels))) {
				t.Fatalf("bad example %+v", ex)
			}
		}
	})
}
