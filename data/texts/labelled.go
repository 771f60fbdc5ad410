package texts

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"unicode/utf8"
)

// Labelled is a single-text classification set.
type Labelled struct {
	Classes []string // class names; Labels index into it
	Texts   []string
	Labels  []int
	Sources []string // "file.tsv:12" or "<class>/<file>.txt", per example
}

// Len is the number of examples.
func (l *Labelled) Len() int { return len(l.Texts) }

// Counts returns the number of examples of each class.
func (l *Labelled) Counts() []int {
	c := make([]int, len(l.Classes))
	for _, y := range l.Labels {
		c[y]++
	}
	return c
}

func (l *Labelled) add(text, class, src string, index map[string]int) error {
	y, ok := index[class]
	if !ok {
		return fmt.Errorf("label %q is not one of the classes %s", class, strings.Join(l.Classes, ", "))
	}
	l.Texts = append(l.Texts, text)
	l.Labels = append(l.Labels, y)
	l.Sources = append(l.Sources, src)
	return nil
}

func classIndex(classes []string) map[string]int {
	m := make(map[string]int, len(classes))
	for i, c := range classes {
		m[c] = i
	}
	return m
}

// LabelColumn says which TSV column holds the label.
type LabelColumn int

const (
	// LabelAuto uses the header if there is one, else the column whose
	// values never contain spaces while the other's sometimes do.
	LabelAuto LabelColumn = iota
	LabelFirst
	LabelLast
)

// LabelledOptions configures the labelled-text readers.
type LabelledOptions struct {
	// Classes fixes the class list (e.g. the training split's, so test
	// labels map to the same ids); a label outside it is an error. By
	// default the classes are the sorted distinct labels found.
	Classes []string
	Column  LabelColumn
}

var (
	labelHeaders = map[string]bool{"label": true, "labels": true, "class": true, "category": true, "target": true, "y": true}
	textHeaders  = map[string]bool{"text": true, "sentence": true, "review": true, "content": true, "body": true, "document": true, "message": true, "sms": true}
)

// ReadLabelledTSV reads label<TAB>text or text<TAB>label rows (an optional
// header such as "label<TAB>text" names the columns). Like GLUE, the file
// uses no quoting, so a text cannot contain a tab or newline.
func ReadLabelledTSV(file string, opt LabelledOptions) (*Labelled, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading labelled TSV: %w", err)
	}
	return ParseLabelledTSV(file, data, opt)
}

// ParseLabelledTSV parses TSV content; name appears in sources and errors.
func ParseLabelledTSV(name string, data []byte, opt LabelledOptions) (*Labelled, error) {
	type row struct {
		line int
		f    [2]string
	}
	var rows []row
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	line := 0
	col := opt.Column
	for sc.Scan() {
		line++
		raw := strings.TrimSuffix(sc.Text(), "\r")
		if line == 1 {
			raw = strings.TrimPrefix(raw, "\ufeff")
		}
		if strings.TrimSpace(raw) == "" {
			continue
		}
		if !utf8.ValidString(raw) {
			return nil, fmt.Errorf("reading %s: line %d: text is not valid UTF-8", name, line)
		}
		f := strings.Split(raw, "\t")
		if len(f) != 2 {
			return nil, fmt.Errorf("reading %s: line %d: %d columns, want 2 (label and text)", name, line, len(f))
		}
		if len(rows) == 0 && line == firstLine(data) {
			a, b := strings.ToLower(strings.TrimSpace(f[0])), strings.ToLower(strings.TrimSpace(f[1]))
			if labelHeaders[a] && textHeaders[b] || labelHeaders[b] && textHeaders[a] {
				if col == LabelAuto {
					col = LabelFirst
					if labelHeaders[b] {
						col = LabelLast
					}
				}
				continue
			}
		}
		rows = append(rows, row{line, [2]string{f[0], f[1]}})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: line %d: %w", name, line+1, err)
	}
	if col == LabelAuto {
		spaced := [2]bool{}
		for _, r := range rows {
			for k := range 2 {
				spaced[k] = spaced[k] || strings.ContainsAny(strings.TrimSpace(r.f[k]), " \t")
			}
		}
		switch {
		case !spaced[0] && spaced[1]:
			col = LabelFirst
		case spaced[0] && !spaced[1]:
			col = LabelLast
		case len(rows) == 0:
			col = LabelFirst
		default:
			return nil, fmt.Errorf("reading %s: cannot tell the label column from the text column; add a header (label<TAB>text) or set the column", name)
		}
	}
	li, ti := 0, 1
	if col == LabelLast {
		li, ti = 1, 0
	}
	l := &Labelled{Classes: opt.Classes}
	if l.Classes == nil {
		seen := map[string]bool{}
		for _, r := range rows {
			if c := strings.TrimSpace(r.f[li]); !seen[c] {
				seen[c] = true
				l.Classes = append(l.Classes, c)
			}
		}
		sort.Strings(l.Classes)
	}
	idx := classIndex(l.Classes)
	for _, r := range rows {
		label, text := strings.TrimSpace(r.f[li]), strings.TrimSpace(r.f[ti])
		if label == "" || text == "" {
			return nil, fmt.Errorf("reading %s: line %d: empty label or text", name, r.line)
		}
		if err := l.add(text, label, fmt.Sprintf("%s:%d", name, r.line), idx); err != nil {
			return nil, fmt.Errorf("reading %s: line %d: %w", name, r.line, err)
		}
	}
	return l, nil
}

// firstLine is the 1-based number of the first non-blank line.
func firstLine(data []byte) int {
	for i, l := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(bytes.TrimPrefix(l, []byte("\ufeff")))) > 0 {
			return i + 1
		}
	}
	return 0
}

// ReadLabelledDir reads one folder per class: root/<class>/*.txt, each file
// one example. Classes are the sub-folder names in sorted order unless
// opt.Classes fixes them.
func ReadLabelledDir(root string, opt LabelledOptions) (*Labelled, error) {
	l, err := readLabelledFS(os.DirFS(root), ".", opt)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", root, err)
	}
	return l, nil
}

// ReadLabelledSplits reads root/<split>/<class>/*.txt for every split
// folder; all splits share one class list (the sorted union).
func ReadLabelledSplits(root string) (map[string]*Labelled, error) {
	l, err := readSplitsFS(os.DirFS(root))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", root, err)
	}
	return l, nil
}

// Subdirs lists the sub-folders of dir in fsys, by name, hidden ones (.name)
// left out.
func Subdirs(fsys fs.FS, dir string) ([]string, error) {
	ents, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out, nil // fs.ReadDir sorts by name
}

func readSplitsFS(fsys fs.FS) (map[string]*Labelled, error) {
	splits, err := Subdirs(fsys, ".")
	if err != nil {
		return nil, err
	}
	if len(splits) == 0 {
		return nil, fmt.Errorf("no split folders")
	}
	seen := map[string]bool{}
	var classes []string
	for _, s := range splits {
		cs, err := Subdirs(fsys, s)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if !seen[c] {
				seen[c] = true
				classes = append(classes, c)
			}
		}
	}
	sort.Strings(classes)
	out := map[string]*Labelled{}
	for _, s := range splits {
		l, err := readLabelledFS(fsys, s, LabelledOptions{Classes: classes})
		if err != nil {
			return nil, err
		}
		out[s] = l
	}
	return out, nil
}

func readLabelledFS(fsys fs.FS, root string, opt LabelledOptions) (*Labelled, error) {
	dirs, err := Subdirs(fsys, root)
	if err != nil {
		return nil, err
	}
	l := &Labelled{Classes: opt.Classes}
	if l.Classes == nil {
		l.Classes = dirs
	}
	if len(l.Classes) == 0 {
		return nil, fmt.Errorf("no class folders in %s", root)
	}
	idx := classIndex(l.Classes)
	for _, c := range dirs {
		dir := path.Join(root, c)
		ents, err := fs.ReadDir(fsys, dir)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if e.IsDir() || !strings.EqualFold(path.Ext(e.Name()), ".txt") {
				continue
			}
			p := path.Join(dir, e.Name())
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return nil, err
			}
			if !utf8.Valid(b) {
				return nil, fmt.Errorf("%s: text is not valid UTF-8", p)
			}
			if err := l.add(strings.TrimSpace(string(b)), c, p, idx); err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
		}
	}
	return l, nil
}
