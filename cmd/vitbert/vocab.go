package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/vitbert/vitbert/data/texts"
	"github.com/vitbert/vitbert/pretrain"
	"github.com/vitbert/vitbert/text"
	"github.com/vitbert/vitbert/train"
)

func init() {
	register("vocab", "learn a WordPiece vocabulary from a corpus (vocab train --corpus PATHS --size N --out DIR), or tokenise lines with one (vocab encode --vocab DIR)", runVocab)
}

const vocabUsage = "usage: vitbert vocab train --corpus PATHS --size N --out DIR | vitbert vocab encode --vocab DIR < lines"

func runVocab(args []string) error {
	if len(args) == 0 {
		return errors.New(vocabUsage)
	}
	if isHelp(args) {
		fmt.Fprintln(os.Stderr, vocabUsage+"\n\n'vitbert vocab train --help' and 'vitbert vocab encode --help' list their flags.")
		return flag.ErrHelp
	}
	switch args[0] {
	case "train":
		return runVocabTrain(args[1:])
	case "encode":
		return runVocabEncode(args[1:], os.Stdin, os.Stdout)
	}
	return fmt.Errorf("vocab: unknown subcommand %q; %s", args[0], vocabUsage)
}

// runVocabEncode writes, for each input line, a JSON line with the ids,
// tokens and type ids of [CLS] line [SEP]; with --pair a tab splits the
// line into the two texts of a pair.
func runVocabEncode(args []string, in io.Reader, out io.Writer) error {
	fs := newFlags("vocab encode", "[--vocab DIR] [--pair] < lines")
	vocab := fs.String("vocab", "", "tokenizer directory or file (tokenizer.json or vocab.txt); default the built-in bert-base-uncased")
	pair := fs.Bool("pair", false, "each line is two texts separated by a tab")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (texts come on standard input)", fs.Arg(0))
	}
	tok, err := text.Default()
	if *vocab != "" {
		tok, err = text.Load(*vocab)
	}
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<26)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for n := 1; sc.Scan(); n++ {
		a, b := sc.Text(), (*string)(nil)
		if *pair {
			first, second, ok := strings.Cut(a, "\t")
			if !ok {
				return fmt.Errorf("vocab encode: line %d has no tab between the two texts of a pair", n)
			}
			a, b = first, &second
		}
		e, err := tok.EncodeWith(a, b, text.EncodeOpts{})
		if err != nil {
			return fmt.Errorf("vocab encode: line %d: %w", n, err)
		}
		if err := enc.Encode(map[string]any{"ids": e.IDs, "tokens": e.Tokens, "type_ids": e.TypeIDs}); err != nil {
			return err
		}
	}
	return sc.Err()
}

func runVocabTrain(args []string) error {
	fs := newFlags("vocab train", "--corpus PATHS --size N --out DIR [--min-frequency N]")
	corpus := fs.String("corpus", "embedded", "corpus: embedded, or comma-separated .txt files/folders")
	size := fs.IntIn("size", 8000, train.AtLeast(6), "vocabulary size, the special tokens [PAD] [UNK] [CLS] [SEP] [MASK] included")
	minFreq := fs.IntIn("min-frequency", 0, train.AtLeast(0), "stop merging at the first pair seen fewer times than this")
	out := fs.String("out", "", "directory to write vocab.txt and tokenizer.json into (required)")
	if err := fs.ParseNoArgs(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out is required")
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
