package texts

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"testing/fstest"
)

// The default data (see embedded/README.md for origin and licence) is
// rebuilt by ./data/texts/internal/mkembedded from fetched sources.
//
//go:embed embedded/corpus.tar.gz embedded/spamassassin.tar.gz
var embedded embed.FS

// untar reads a gzipped tar of regular files into an in-memory file system.
func untar(name string) (fstest.MapFS, error) {
	raw, err := embedded.ReadFile(name)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	m := fstest.MapFS{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return m, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := readAllLimited(tr, 16<<20)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", name, h.Name, err)
		}
		m[path.Clean(h.Name)] = &fstest.MapFile{Data: b, Mode: 0o644}
	}
}

// DefaultCorpus returns the embedded public-domain prose, one document per
// file (Moby Dick chapters, then recent State of the Union addresses):
// about 1 MB of text.
func DefaultCorpus() ([]Document, error) {
	m, err := untar("embedded/corpus.tar.gz")
	if err != nil {
		return nil, fmt.Errorf("default corpus: %w", err)
	}
	var docs []Document
	err = fs.WalkDir(m, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ds, err := ParseCorpusText(p, m[p].Data, CorpusOptions{Split: DocPerFile})
		docs = append(docs, ds...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("default corpus: %w", err)
	}
	return docs, nil
}

// DefaultLabelled returns the embedded SpamAssassin ham/spam set (classes
// "ham" = 0, "spam" = 1) in its fixed train/test split.
func DefaultLabelled() (train, test *Labelled, err error) {
	m, err := untar("embedded/spamassassin.tar.gz")
	if err != nil {
		return nil, nil, fmt.Errorf("default labelled set: %w", err)
	}
	splits, err := readSplitsFS(m)
	if err != nil {
		return nil, nil, fmt.Errorf("default labelled set: %w", err)
	}
	train, test = splits["train"], splits["test"]
	if train == nil || test == nil {
		return nil, nil, errors.New("default labelled set: missing train or test split")
	}
	return train, test, nil
}
