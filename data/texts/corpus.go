// Package texts reads text data sets: plain-text corpora for masked language
// modelling (sentence splitting, packing into BERT sequences, batching), the
// nine GLUE tasks in their TSV layouts, generic labelled text (TSV or one
// folder per class), and the real public-domain sets this project can fetch
// or embeds as its default.
//
// Tokenisation, pair truncation and MLM masking belong to package text: its
// Tokenizer is the [Vocab] that Pack lays out, [Encode] is its encoder for
// classification inputs, and BatchOptions.Mask takes its masking
// (text.DynamicMask), so the data path stays bytes → examples → token ids →
// batches.
package texts

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Document is one document of a corpus: the unit inside which BERT's
// next-sentence pairs are drawn.
type Document struct {
	// Source names where the document came from ("file.txt" or "file.txt:12"
	// for the document starting at line 12).
	Source    string
	Sentences []string
}

// DocSplit says how a text file divides into documents.
type DocSplit int

const (
	// DocPerFile makes each file one document; blank lines only end
	// paragraphs (and so sentences). This suits one-book-chapter or
	// one-speech-per-file corpora.
	DocPerFile DocSplit = iota
	// DocPerBlankLine makes each blank-line separated block a document, the
	// layout of BERT's create_pretraining_data input files.
	DocPerBlankLine
)

// CorpusOptions configures ReadCorpus.
type CorpusOptions struct {
	Split DocSplit
}

// ReadCorpus reads .txt files, or folders searched recursively for .txt
// files (in lexical order), into documents of sentences. Text must be valid
// UTF-8; a file that is not is an error naming the file and line.
func ReadCorpus(opt CorpusOptions, paths ...string) ([]Document, error) {
	var docs []Document
	for _, p := range paths {
		files, err := txtFiles(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("reading corpus: %w", err)
			}
			d, err := ParseCorpusText(f, data, opt)
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
		}
	}
	return docs, nil
}

// txtFiles lists p itself if it is a file, or the .txt files under folder p.
func txtFiles(p string) ([]string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("reading corpus: %w", err)
	}
	if !st.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.EqualFold(filepath.Ext(path), ".txt") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading corpus %s: %w", p, err)
	}
	sort.Strings(files)
	return files, nil
}

// ParseCorpusText splits the contents of one text file into documents.
// name is used in Document.Source and in errors.
func ParseCorpusText(name string, data []byte, opt CorpusOptions) ([]Document, error) {
	var docs []Document
	var cur *Document
	var para []string // lines of the current paragraph
	flushPara := func() {
		if len(para) > 0 && cur != nil {
			cur.Sentences = append(cur.Sentences, SplitSentences(strings.Join(para, " "))...)
		}
		para = para[:0]
	}
	flushDoc := func() {
		flushPara()
		if cur != nil && len(cur.Sentences) > 0 {
			docs = append(docs, *cur)
		}
		cur = nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 64*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if !utf8.Valid(b) {
			return nil, fmt.Errorf("reading %s: line %d: text is not valid UTF-8", name, line)
		}
		s := strings.TrimSpace(strings.TrimPrefix(string(b), "\ufeff"))
		if s == "" {
			if opt.Split == DocPerBlankLine {
				flushDoc()
			} else {
				flushPara()
			}
			continue
		}
		if cur == nil {
			src := name
			if opt.Split == DocPerBlankLine {
				src = fmt.Sprintf("%s:%d", name, line)
			}
			cur = &Document{Source: src}
		}
		if opt.Split == DocPerBlankLine {
			// BERT's layout: one sentence (or paragraph) per line; split further
			// in case a line holds several sentences.
			cur.Sentences = append(cur.Sentences, SplitSentences(s)...)
		} else {
			para = append(para, s)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: line %d: %w", name, line+1, err)
	}
	flushDoc()
	return docs, nil
}

// abbreviations never end a sentence when followed by a period (compared
// case-insensitively, without the period).
var abbreviations = map[string]bool{
	"mr": true, "mrs": true, "ms": true, "dr": true, "prof": true, "st": true,
	"jr": true, "sr": true, "rev": true, "hon": true, "gen": true, "col": true,
	"capt": true, "lt": true, "sgt": true, "maj": true, "gov": true, "sen": true,
	"rep": true, "messrs": true, "mt": true, "vs": true, "etc": true, "e.g": true,
	"i.e": true, "inc": true, "ltd": true, "co": true, "corp": true, "no": true,
	"vol": true, "fig": true, "u.s": true, "jan": true, "feb": true, "mar": true,
	"apr": true, "aug": true, "sept": true, "oct": true, "nov": true, "dec": true,
}

func isOpenQuote(r rune) bool {
	return r == '"' || r == '\'' || r == '“' || r == '‘' || r == '(' || r == '['
}

func isCloseQuote(r rune) bool {
	return r == '"' || r == '\'' || r == '”' || r == '’' || r == ')' || r == ']'
}

// SplitSentences splits a paragraph into sentences with a simple rule: a
// sentence ends at '.', '!' or '?' (plus any closing quotes or brackets)
// when followed by whitespace and then an upper-case letter, a digit or an
// opening quote. A period does not end a sentence after a known
// abbreviation ("Mr.", "Dr.", "etc.", "U.S." …) or a single-letter
// initial ("J. Smith"). Whitespace runs collapse to one space.
func SplitSentences(para string) []string {
	words := strings.Fields(para)
	var out []string
	start := 0
	for i := 0; i+1 < len(words); i++ {
		if endsSentence(words[i], words[i+1]) {
			out = append(out, strings.Join(words[start:i+1], " "))
			start = i + 1
		}
	}
	if start < len(words) {
		out = append(out, strings.Join(words[start:], " "))
	}
	return out
}

func endsSentence(w, next string) bool {
	core := strings.TrimRightFunc(w, isCloseQuote)
	if core == "" {
		return false
	}
	last, _ := utf8.DecodeLastRuneInString(core)
	if last != '.' && last != '!' && last != '?' {
		return false
	}
	first, _ := utf8.DecodeRuneInString(next)
	if !(unicode.IsUpper(first) || unicode.IsDigit(first) || isOpenQuote(first)) {
		return false
	}
	if last == '.' && len(core) == len(w) {
		stem := strings.TrimLeftFunc(strings.TrimSuffix(core, "."), isOpenQuote)
		if abbreviations[strings.ToLower(stem)] {
			return false
		}
		if r, n := utf8.DecodeRuneInString(stem); n == len(stem) && unicode.IsUpper(r) {
			return false // an initial: "J. Smith"
		}
	}
	return true
}

// readAllLimited reads r fully; used by the fetchers and embedded readers.
func readAllLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("entry larger than %d bytes", limit)
	}
	return b, nil
}
