package texts

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Task describes one GLUE task: its files, inputs, labels and metrics.
type Task struct {
	Name string // "CoLA", "SST-2", …; also the folder name in the GLUE download
	Pair bool   // two input texts (A, B) rather than one
	// Labels lists the class names in label-id order as they appear in the
	// TSV; nil for the regression task STS-B.
	Labels []string
	// Metrics are names from package metrics (accuracy, f1, mcc, pearson, spearman).
	Metrics []string
	// Splits are the file stems: <split>.tsv.
	Splits []string
	// EvalSplits are the labelled splits scored for the GLUE table
	// (MNLI: matched and mismatched).
	EvalSplits []string
	// KnownMalformed marks tasks whose official files contain broken rows
	// (QQP, MNLI); by default those rows are skipped and counted.
	KnownMalformed bool

	// Column layout. A headerless split uses fixed column indices; the
	// others find their columns by header name (first match wins).
	headerless map[string]fixedCols
	idNames    []string
	aName      string
	bName      string
	labelName  string
}

// Regression reports whether the task predicts a score rather than a class.
func (t *Task) Regression() bool { return t.Labels == nil }

type fixedCols struct{ n, id, a, label int }

var trainDevTest = []string{"train", "dev", "test"}
var dev = []string{"dev"}

// glueTasks is the GLUE benchmark in its distributed TSV layouts.
var glueTasks = []*Task{
	{Name: "CoLA", Labels: []string{"0", "1"}, Metrics: []string{"mcc"}, Splits: trainDevTest, EvalSplits: dev,
		// train/dev: source, label, original-label mark, sentence (no header).
		headerless: map[string]fixedCols{"train": {4, 0, 3, 1}, "dev": {4, 0, 3, 1}},
		idNames:    []string{"index", "id"}, aName: "sentence"},
	{Name: "SST-2", Labels: []string{"0", "1"}, Metrics: []string{"accuracy"}, Splits: trainDevTest, EvalSplits: dev,
		idNames: []string{"index", "id"}, aName: "sentence", labelName: "label"},
	{Name: "MRPC", Pair: true, Labels: []string{"0", "1"}, Metrics: []string{"f1", "accuracy"}, Splits: trainDevTest, EvalSplits: dev,
		idNames: []string{"index", "#1 ID"}, aName: "#1 String", bName: "#2 String", labelName: "Quality"},
	{Name: "STS-B", Pair: true, Metrics: []string{"pearson", "spearman"}, Splits: trainDevTest, EvalSplits: dev,
		idNames: []string{"index"}, aName: "sentence1", bName: "sentence2", labelName: "score"},
	{Name: "QQP", Pair: true, Labels: []string{"0", "1"}, Metrics: []string{"f1", "accuracy"}, Splits: trainDevTest, EvalSplits: dev,
		KnownMalformed: true, idNames: []string{"id"}, aName: "question1", bName: "question2", labelName: "is_duplicate"},
	{Name: "MNLI", Pair: true, Labels: []string{"contradiction", "entailment", "neutral"}, Metrics: []string{"accuracy"},
		Splits:     []string{"train", "dev_matched", "dev_mismatched", "test_matched", "test_mismatched"},
		EvalSplits: []string{"dev_matched", "dev_mismatched"}, KnownMalformed: true,
		idNames: []string{"index"}, aName: "sentence1", bName: "sentence2", labelName: "gold_label"},
	{Name: "QNLI", Pair: true, Labels: []string{"entailment", "not_entailment"}, Metrics: []string{"accuracy"}, Splits: trainDevTest, EvalSplits: dev,
		idNames: []string{"index"}, aName: "question", bName: "sentence", labelName: "label"},
	{Name: "RTE", Pair: true, Labels: []string{"entailment", "not_entailment"}, Metrics: []string{"accuracy"}, Splits: trainDevTest, EvalSplits: dev,
		idNames: []string{"index"}, aName: "sentence1", bName: "sentence2", labelName: "label"},
	{Name: "WNLI", Pair: true, Labels: []string{"0", "1"}, Metrics: []string{"accuracy"}, Splits: trainDevTest, EvalSplits: dev,
		idNames: []string{"index"}, aName: "sentence1", bName: "sentence2", labelName: "label"},
}

// GLUETasks lists the nine GLUE tasks.
func GLUETasks() []*Task { return glueTasks }

func normTaskName(s string) string {
	return strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(s))
}

// LookupTask finds a task by name, ignoring case, '-' and '_' ("sst2", "STS-B").
func LookupTask(name string) (*Task, error) {
	for _, t := range glueTasks {
		if normTaskName(t.Name) == normTaskName(name) {
			return t, nil
		}
	}
	return nil, fmt.Errorf("unknown GLUE task %q", name)
}

// Malformed chooses what happens to a broken row.
type Malformed int

const (
	// MalformedTaskDefault errors, except for tasks with KnownMalformed rows
	// (QQP, MNLI), which skip and count them.
	MalformedTaskDefault Malformed = iota
	// MalformedError makes any broken row an error naming file and line.
	MalformedError
	// MalformedSkip skips and counts broken rows for every task.
	MalformedSkip
)

// GLUEOptions configures ReadGLUE.
type GLUEOptions struct {
	Malformed Malformed
}

// GLUEExample is one row.
type GLUEExample struct {
	ID    string
	A, B  string
	Label int     // class index into Task.Labels; −1 when unlabelled (test) or STS-B
	Score float32 // STS-B similarity in [0, 5]
	Line  int     // 1-based line in the file
}

// SkippedRow records a malformed row that was skipped.
type SkippedRow struct {
	Line   int
	Reason string
}

// GLUESplit is one file of a task.
type GLUESplit struct {
	Task     *Task
	Split    string
	Path     string
	Labelled bool
	Examples []GLUEExample
	Skipped  []SkippedRow
}

// ReadGLUE reads <dir>/<split>.tsv of a task. dir is the task folder, or
// the GLUE root holding it (<dir>/<Task.Name>/). The files are read as
// GLUE distributes them: tab-separated with no quoting, a header row except
// in CoLA's train and dev files.
func ReadGLUE(dir, task, split string, opt GLUEOptions) (*GLUESplit, error) {
	t, err := LookupTask(task)
	if err != nil {
		return nil, err
	}
	known := false
	for _, s := range t.Splits {
		known = known || s == split
	}
	if !known {
		return nil, fmt.Errorf("GLUE %s has no split %q (have %s)", t.Name, split, strings.Join(t.Splits, ", "))
	}
	if st, err := os.Stat(filepath.Join(dir, t.Name)); err == nil && st.IsDir() {
		dir = filepath.Join(dir, t.Name)
	}
	path := filepath.Join(dir, split+".tsv")
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading GLUE %s: %w", t.Name, err)
	}
	defer f.Close()
	skip := opt.Malformed == MalformedSkip || (opt.Malformed == MalformedTaskDefault && t.KnownMalformed)
	out := &GLUESplit{Task: t, Split: split, Path: path}

	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	line := 0
	var cols fixedCols
	b := -1
	fixed, headerless := t.headerless[split]
	if headerless {
		cols = fixed
		out.Labelled = true
	}
	for sc.Scan() {
		line++
		raw := strings.TrimSuffix(sc.Text(), "\r")
		if line == 1 {
			raw = strings.TrimPrefix(raw, "\ufeff")
		}
		if line == 1 && !headerless {
			if !utf8.ValidString(raw) {
				return nil, fmt.Errorf("reading %s: line 1: header is not valid UTF-8", path)
			}
			cols, b, out.Labelled, err = t.headerCols(strings.Split(raw, "\t"))
			if err != nil {
				return nil, fmt.Errorf("reading %s: line 1: %w", path, err)
			}
			continue
		}
		if raw == "" {
			continue
		}
		ex, err := t.parseRow(raw, cols, b, out.Labelled)
		if err != nil {
			if skip {
				out.Skipped = append(out.Skipped, SkippedRow{Line: line, Reason: err.Error()})
				continue
			}
			return nil, fmt.Errorf("reading %s: line %d: %w", path, line, err)
		}
		ex.Line = line
		out.Examples = append(out.Examples, ex)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: line %d: %w", path, line+1, err)
	}
	return out, nil
}

// headerCols maps the task's column names onto a header row. The label
// column is optional (test files have none).
func (t *Task) headerCols(h []string) (c fixedCols, b int, labelled bool, err error) {
	find := func(name string) int {
		for i, x := range h {
			if strings.TrimSpace(x) == name {
				return i
			}
		}
		return -1
	}
	c = fixedCols{n: len(h), id: -1, label: -1}
	for _, n := range t.idNames {
		if c.id = find(n); c.id >= 0 {
			break
		}
	}
	if c.a = find(t.aName); c.a < 0 {
		return c, -1, false, fmt.Errorf("header %q lacks column %q", strings.Join(h, "\t"), t.aName)
	}
	b = -1
	if t.Pair {
		if b = find(t.bName); b < 0 {
			return c, -1, false, fmt.Errorf("header %q lacks column %q", strings.Join(h, "\t"), t.bName)
		}
	}
	if t.labelName != "" {
		c.label = find(t.labelName)
	}
	return c, b, c.label >= 0, nil
}

func (t *Task) parseRow(raw string, c fixedCols, b int, labelled bool) (GLUEExample, error) {
	if !utf8.ValidString(raw) {
		return GLUEExample{}, fmt.Errorf("text is not valid UTF-8")
	}
	f := strings.Split(raw, "\t")
	if len(f) != c.n {
		return GLUEExample{}, fmt.Errorf("%d columns, want %d", len(f), c.n)
	}
	ex := GLUEExample{A: f[c.a], Label: -1}
	if c.id >= 0 {
		ex.ID = f[c.id]
	}
	if strings.TrimSpace(ex.A) == "" {
		return ex, fmt.Errorf("empty first text")
	}
	if b >= 0 {
		ex.B = f[b]
		if strings.TrimSpace(ex.B) == "" {
			return ex, fmt.Errorf("empty second text")
		}
	}
	if !labelled {
		return ex, nil
	}
	lab := strings.TrimSpace(f[c.label])
	if t.Regression() {
		v, err := strconv.ParseFloat(lab, 32)
		if err != nil || v < 0 || v > 5 {
			return ex, fmt.Errorf("score %q is not a number in [0, 5]", lab)
		}
		ex.Score = float32(v)
		return ex, nil
	}
	for i, l := range t.Labels {
		if l == lab {
			ex.Label = i
			return ex, nil
		}
	}
	return ex, fmt.Errorf("label %q is not one of %s", lab, strings.Join(t.Labels, ", "))
}

// LabelCounts counts examples per class (index −1 collects unlabelled rows).
func (s *GLUESplit) LabelCounts() map[int]int {
	m := map[int]int{}
	for _, ex := range s.Examples {
		m[ex.Label]++
	}
	return m
}
