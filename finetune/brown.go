package finetune

import (
	"fmt"
	"sort"
	"strings"

	"github.com/vitbert/vitbert/data/texts"
	"github.com/vitbert/vitbert/metrics"
	"github.com/vitbert/vitbert/model"
)

// TaskBrown is Brown-corpus genre classification: the 500 documents of
// `vitbert data fetch brown-genres` (DATA/brown-genres/{train,test}/<genre>/<id>.txt,
// split by document), each cut into pieces of BrownChunkWords words; a piece
// is classified into one of the 15 genres and scored with macro-F1. The
// validation split is every HeldOutEvery-th training document, so no
// document has pieces in two splits.
const TaskBrown = "brown-genres"

// BrownChunkWords is the length of a Brown piece in words: about 128
// word-piece tokens, the default text length.
const BrownChunkWords = 96

func init() {
	registerTask(&taskEntry{def: taskDef{Name: TaskBrown, Modality: "text", Kind: model.HeadClassify,
		Metrics: []string{metrics.MetricMacroF1, metrics.MetricAccuracy}, TestSplits: []string{"test"},
		ChunkWords: BrownChunkWords, needsData: true}, aliases: []string{"brown"}, open: openBrown})
}

// openBrown reads DATA/brown-genres (a folder of split folders of genre
// folders) and serves the pieces of its documents.
func openBrown(def *taskDef, path string) (*taskData, error) {
	splits, err := texts.ReadLabelledSplits(path)
	if err != nil {
		return nil, fmt.Errorf("task %s: %s: %w (fetch it with vitbert data fetch brown-genres)", def.Name, path, err)
	}
	var names []string
	for s := range splits {
		names = append(names, s)
	}
	sort.Strings(names)
	if splits["train"] == nil || splits["test"] == nil {
		return nil, fmt.Errorf("task %s: %s has splits %s, want train and test", def.Name, path, strings.Join(names, ", "))
	}
	classes := splits["train"].Classes
	if len(classes) < 2 {
		return nil, fmt.Errorf("task %s: %s: %d genre(s), need at least 2", def.Name, path, len(classes))
	}
	td := &taskData{def: def, classes: classes, splits: names}
	td.openTexts = func(split string) (*textSplit, error) {
		l, ok := splits[split]
		if !ok {
			return nil, fmt.Errorf("task %s has splits %s, not %q", def.Name, strings.Join(names, ", "), split)
		}
		out := chunkDocuments(l, def.ChunkWords, split)
		if out.Len() == 0 {
			return nil, fmt.Errorf("task %s: split %s holds no text", def.Name, split)
		}
		return out, nil
	}
	return td, nil
}

// chunkDocuments cuts every document of l into pieces of words words, each
// piece labelled with its document's class and named after its document.
func chunkDocuments(l *texts.Labelled, words int, split string) *textSplit {
	out := &textSplit{}
	for i, doc := range l.Texts {
		id := split + "/" + l.Sources[i]
		for k, piece := range texts.Chunks(doc, words) {
			out.A, out.B = append(out.A, piece), append(out.B, "")
			out.Labels, out.Scores = append(out.Labels, l.Labels[i]), append(out.Scores, 0)
			out.Src = append(out.Src, fmt.Sprintf("%s#%d", l.Sources[i], k+1))
			out.Doc = append(out.Doc, id)
		}
	}
	return out
}
