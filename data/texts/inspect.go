package texts

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Inspect recognises a text data set at path and prints a summary to w:
//
//   - a GLUE root (folders named after tasks) or one GLUE task folder:
//     examples per split and label, skipped rows, samples;
//   - a labelled set: root/<split>/<class>/*.txt, root/<class>/*.txt or a
//     label/text .tsv file: examples per split and class, samples;
//   - a corpus: a .txt file or a folder of them: files, documents,
//     sentences, words, samples.
//
// recognised is false (with a nil error) when path is none of these.
func Inspect(path string, w io.Writer) (recognised bool, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return false, fmt.Errorf("inspecting: %w", err)
	}
	if !st.IsDir() {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".tsv":
			if t, err := LookupTask(filepath.Base(filepath.Dir(path))); err == nil {
				return true, inspectGLUE(filepath.Dir(path), t, []string{strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))}, w)
			}
			l, err := ReadLabelledTSV(path, LabelledOptions{})
			if err != nil {
				return false, err
			}
			fmt.Fprintf(w, "labelled TSV %s\n", path)
			printLabelled(w, "all", l)
			return true, nil
		case ".txt":
			return true, inspectCorpus(path, w)
		}
		return false, nil
	}
	if tasks := glueTasksIn(path); len(tasks) > 0 {
		for _, t := range tasks {
			if err := inspectGLUE(filepath.Join(path, t.Name), t, nil, w); err != nil {
				return true, err
			}
		}
		return true, nil
	}
	if t, err := LookupTask(filepath.Base(path)); err == nil && len(splitFiles(path, t)) > 0 {
		return true, inspectGLUE(path, t, nil, w)
	}
	switch labelledDepth(path) {
	case 2:
		splits, err := ReadLabelledSplits(path)
		if err != nil {
			return true, err
		}
		fmt.Fprintf(w, "labelled folders %s (<split>/<class>/*.txt)\n", path)
		names := slices.Sorted(maps.Keys(splits))
		for _, s := range names {
			printLabelled(w, s, splits[s])
		}
		return true, nil
	case 1:
		l, err := ReadLabelledDir(path, LabelledOptions{})
		if err != nil {
			return true, err
		}
		fmt.Fprintf(w, "labelled folders %s (<class>/*.txt)\n", path)
		printLabelled(w, "all", l)
		return true, nil
	}
	if files, err := txtFiles(path); err == nil && len(files) > 0 {
		return true, inspectCorpus(path, w)
	}
	return false, nil
}

func glueTasksIn(dir string) []*Task {
	var out []*Task
	for _, t := range glueTasks {
		if len(splitFiles(filepath.Join(dir, t.Name), t)) > 0 {
			out = append(out, t)
		}
	}
	return out
}

func splitFiles(dir string, t *Task) []string {
	var out []string
	for _, s := range t.Splits {
		if st, err := os.Stat(filepath.Join(dir, s+".tsv")); err == nil && !st.IsDir() {
			out = append(out, s)
		}
	}
	return out
}

// labelledDepth is 2 when every sub-folder holds class folders of .txt
// files, 1 when the sub-folders hold .txt files, 0 otherwise.
func labelledDepth(dir string) int {
	subs, err := Subdirs(os.DirFS(dir), ".")
	if err != nil || len(subs) == 0 {
		return 0
	}
	hasTxt := func(d string) bool {
		m, _ := filepath.Glob(filepath.Join(d, "*.txt"))
		return len(m) > 0
	}
	depth2, depth1 := true, true
	for _, s := range subs {
		classes, err := Subdirs(os.DirFS(filepath.Join(dir, s)), ".")
		if err != nil || len(classes) == 0 {
			depth2 = false
		} else {
			for _, c := range classes {
				depth2 = depth2 && hasTxt(filepath.Join(dir, s, c))
			}
		}
		depth1 = depth1 && hasTxt(filepath.Join(dir, s))
	}
	switch {
	case depth2:
		return 2
	case depth1:
		return 1
	}
	return 0
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

func printLabelled(w io.Writer, split string, l *Labelled) {
	var parts []string
	for i, n := range l.Counts() {
		parts = append(parts, fmt.Sprintf("%s %d", l.Classes[i], n))
	}
	fmt.Fprintf(w, "  %s: %d examples (%s)\n", split, l.Len(), strings.Join(parts, ", "))
	for i := 0; i < min(3, l.Len()); i++ {
		fmt.Fprintf(w, "    [%s] %s\n", l.Classes[l.Labels[i]], clip(l.Texts[i], 90))
	}
}

func inspectGLUE(dir string, t *Task, splits []string, w io.Writer) error {
	kind := "single text"
	if t.Pair {
		kind = "sentence pair"
	}
	target := "labels " + strings.Join(t.Labels, "/")
	if t.Regression() {
		target = "regression 0–5"
	}
	fmt.Fprintf(w, "GLUE %s (%s, %s; metrics %s) in %s\n", t.Name, kind, target, strings.Join(t.Metrics, "+"), dir)
	if splits == nil {
		splits = splitFiles(dir, t)
	}
	for _, s := range splits {
		g, err := ReadGLUE(dir, t.Name, s, GLUEOptions{})
		if err != nil {
			return err
		}
		line := fmt.Sprintf("  %s: %d examples", s, len(g.Examples))
		if g.Labelled && !t.Regression() {
			c := g.LabelCounts()
			var parts []string
			for i, l := range t.Labels {
				parts = append(parts, fmt.Sprintf("%s %d", l, c[i]))
			}
			line += " (" + strings.Join(parts, ", ") + ")"
		} else if !g.Labelled {
			line += " (unlabelled)"
		}
		if len(g.Skipped) > 0 {
			line += fmt.Sprintf(", %d malformed rows skipped (first: line %d: %s)", len(g.Skipped), g.Skipped[0].Line, g.Skipped[0].Reason)
		}
		fmt.Fprintln(w, line)
		for i := 0; i < min(2, len(g.Examples)); i++ {
			ex := g.Examples[i]
			label := "?"
			switch {
			case t.Regression() && g.Labelled:
				label = fmt.Sprintf("%.2f", ex.Score)
			case ex.Label >= 0:
				label = t.Labels[ex.Label]
			}
			if t.Pair {
				fmt.Fprintf(w, "    [%s] %s ||| %s\n", label, clip(ex.A, 60), clip(ex.B, 60))
			} else {
				fmt.Fprintf(w, "    [%s] %s\n", label, clip(ex.A, 90))
			}
		}
	}
	return nil
}

func inspectCorpus(path string, w io.Writer) error {
	files, err := txtFiles(path)
	if err != nil {
		return err
	}
	docs, err := ReadCorpus(CorpusOptions{}, path)
	if err != nil {
		return err
	}
	sents, words, chars := 0, 0, 0
	for _, d := range docs {
		sents += len(d.Sentences)
		for _, s := range d.Sentences {
			words += len(strings.Fields(s))
			chars += len(s)
		}
	}
	fmt.Fprintf(w, "text corpus %s: %d files, %d documents, %d sentences, %d words, %.1f MB\n",
		path, len(files), len(docs), sents, words, float64(chars)/1e6)
	shown := 0
	for _, d := range docs {
		for _, s := range d.Sentences {
			if shown == 3 {
				return nil
			}
			if len(strings.Fields(s)) >= 5 {
				fmt.Fprintf(w, "    %s\n", clip(s, 100))
				shown++
			}
		}
	}
	return nil
}
