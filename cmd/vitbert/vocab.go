package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/vitbert/vitbert/data/texts"
	"github.com/vitbert/vitbert/pretrain"
)

func init() {
	register("vocab", "learn a WordPiece vocabulary from a corpus (vitbert vocab train --corpus PATHS --size N --out DIR)", runVocab)
}

func runVocab(args []string) error {
	if len(args) == 0 || args[0] != "train" {
		return errors.New("usage: vitbert vocab train --corpus PATHS --size N --out DIR")
	}
	fs := flag.NewFlagSet("vocab train", flag.ContinueOnError)
	corpus := fs.String("corpus", "embedded", "corpus: embedded, or comma-separated .txt files/folders")
	size := fs.Int("size", 8000, "vocabulary size, the special tokens [PAD] [UNK] [CLS] [SEP] [MASK] included")
	minFreq := fs.Int("min-frequency", 0, "stop merging at the first pair seen fewer times than this")
	out := fs.String("out", "", "directory to write vocab.txt and tokenizer.json into")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("vocab train: unexpected arguments %v", fs.Args())
	}
	if *out == "" {
		return errors.New("vocab train: --out is required")
	}
	start := time.Now()
	docs, err := pretrain.LoadCorpus(*corpus)
	if err != nil {
		return fmt.Errorf("loading the corpus: %w", err)
	}
	tok, err := texts.TrainVocab(docs, *size, *minFreq)
	if err != nil {
		return fmt.Errorf("corpus %s: %w", *corpus, err)
	}
	if err := tok.Save(*out); err != nil {
		return err
	}
	h, err := texts.UnigramEntropy(docs, tok)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d tokens learned from %d documents in %.1fs; unigram entropy of the corpus under it: %.3f nats\nwrote %s/vocab.txt and %s/tokenizer.json\n",
		tok.VocabSize(), len(docs), time.Since(start).Seconds(), h, *out, *out)
	return nil
}
