package texts

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/vitbert/vitbert/text"
)

// Vocab is what packing needs of a tokenizer: word-piece ids without special
// tokens, and the ids of [CLS] and [SEP] that frame every sequence.
// *text.Tokenizer implements it.
type Vocab interface {
	TokenIDs(s string) []int32
	CLS() int32
	SEP() int32
}

// Sequence is one encoder input: [CLS] A [SEP] (B [SEP]), unpadded.
type Sequence struct {
	IDs     []int32
	TypeIDs []int32 // segment ids: 0 for [CLS] A [SEP], 1 for B [SEP]
	// RandomNext is the next-sentence-prediction target of a pair: true when
	// B was drawn from a random document (label 1 in BERT/Hugging Face),
	// false when B really follows A.
	RandomNext bool
	// Label and Score are classification / regression targets for labelled
	// examples (see Encode); unused for pre-training sequences.
	Label int32
	Score float32
}

// PackOptions configures Pack.
type PackOptions struct {
	// MaxLength is the total sequence length including [CLS] and [SEP]s.
	MaxLength int
	// Pairs builds BERT sentence pairs A/B (with segment ids and NSP labels);
	// otherwise each sequence is one run of consecutive sentences.
	Pairs bool
	// ShortSeqProb is the probability of targeting a random shorter length
	// (BERT uses 0.1) so the model also sees short inputs; 0 disables it.
	ShortSeqProb float64
	// Seed fixes every random choice, so packing is reproducible.
	Seed uint64
}

// Pack tokenizes documents sentence by sentence and packs consecutive
// sentences greedily into sequences of at most MaxLength tokens. Sequences
// never cross documents.
//
// Without Pairs, sentences are appended while they fit in MaxLength−2
// tokens; a sentence longer than that is cut into MaxLength−2 pieces, so
// no text is lost.
//
// With Pairs it follows BERT's create_pretraining_data: collect sentences up
// to the target length (MaxLength−3), split them at a random sentence
// boundary into A and B, and with probability 0.5 (always when there is one
// sentence) replace B by sentences from a random other document, putting
// the unused sentences back (a corpus of one document draws that B from
// the same document, as BERT does). Over-long pairs are truncated one token at a
// time from the longer side, at its front or back at random.
//
// Packing happens once, so pairs stay fixed across epochs; masking is the
// caller's per-epoch step (see BatchOptions.Mask).
func Pack(docs []Document, v Vocab, opt PackOptions) ([]Sequence, error) {
	reserve := 2
	if opt.Pairs {
		reserve = 3
	}
	maxTok := opt.MaxLength - reserve
	if maxTok < 2 {
		return nil, fmt.Errorf("packing: MaxLength %d leaves fewer than 2 tokens after %d specials", opt.MaxLength, reserve)
	}
	if v == nil {
		return nil, errors.New("packing: nil Vocab")
	}
	// Tokenize once; drop sentences and documents that tokenize to nothing.
	var all [][][]int32
	for _, d := range docs {
		var doc [][]int32
		for _, s := range d.Sentences {
			if ids := v.TokenIDs(s); len(ids) > 0 {
				doc = append(doc, ids)
			}
		}
		if len(doc) > 0 {
			all = append(all, doc)
		}
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x9e3779b97f4a7c15))
	sp := specials{cls: v.CLS(), sep: v.SEP()}
	var out []Sequence
	for di := range all {
		if opt.Pairs {
			out = packPairs(out, all, di, maxTok, sp, opt, rng)
		} else {
			out = packSingle(out, all[di], maxTok, sp, opt, rng)
		}
	}
	return out, nil
}

type specials struct{ cls, sep int32 }

func target(maxTok int, p float64, rng *rand.Rand) int {
	if p > 0 && rng.Float64() < p {
		return 2 + rng.IntN(maxTok-1) // uniform in [2, maxTok]
	}
	return maxTok
}

func packSingle(out []Sequence, doc [][]int32, maxTok int, sp specials, opt PackOptions, rng *rand.Rand) []Sequence {
	emit := func(toks []int32) {
		ids := make([]int32, 0, len(toks)+2)
		ids = append(ids, sp.cls)
		ids = append(ids, toks...)
		ids = append(ids, sp.sep)
		out = append(out, Sequence{IDs: ids, TypeIDs: make([]int32, len(ids))})
	}
	tgt := target(maxTok, opt.ShortSeqProb, rng)
	var cur []int32
	for _, s := range doc {
		if len(cur) > 0 && len(cur)+len(s) > tgt {
			emit(cur)
			cur = nil
			tgt = target(maxTok, opt.ShortSeqProb, rng)
		}
		for len(s) > tgt { // a sentence longer than the target: cut it
			emit(s[:tgt])
			s = s[tgt:]
			tgt = target(maxTok, opt.ShortSeqProb, rng)
		}
		cur = append(cur, s...)
	}
	if len(cur) > 0 {
		emit(cur)
	}
	return out
}

func packPairs(out []Sequence, all [][][]int32, di, maxTok int, sp specials, opt PackOptions, rng *rand.Rand) []Sequence {
	doc := all[di]
	tgt := target(maxTok, opt.ShortSeqProb, rng)
	var chunk [][]int32
	curLen := 0
	for i := 0; i < len(doc); i++ {
		chunk = append(chunk, doc[i])
		curLen += len(doc[i])
		if i != len(doc)-1 && curLen < tgt {
			continue
		}
		aEnd := 1
		if len(chunk) >= 2 {
			aEnd = 1 + rng.IntN(len(chunk)-1)
		}
		var a, b []int32
		for _, s := range chunk[:aEnd] {
			a = append(a, s...)
		}
		random := false
		if len(chunk) == 1 || rng.Float64() < 0.5 {
			random = true
			tgtB := tgt - len(a)
			ri := di
			for try := 0; try < 10 && len(all) > 1; try++ {
				if ri = rng.IntN(len(all)); ri != di {
					break
				}
			}
			rdoc := all[ri]
			for j := rng.IntN(len(rdoc)); j < len(rdoc); j++ {
				b = append(b, rdoc[j]...)
				if len(b) >= tgtB {
					break
				}
			}
			i -= len(chunk) - aEnd // put the unused sentences back
		} else {
			for _, s := range chunk[aEnd:] {
				b = append(b, s...)
			}
		}
		a, b = truncatePair(a, b, maxTok, rng)
		ids := make([]int32, 0, len(a)+len(b)+3)
		types := make([]int32, 0, cap(ids))
		ids = append(append(append(ids, sp.cls), a...), sp.sep)
		for range ids {
			types = append(types, 0)
		}
		ids = append(append(ids, b...), sp.sep)
		for len(types) < len(ids) {
			types = append(types, 1)
		}
		out = append(out, Sequence{IDs: ids, TypeIDs: types, RandomNext: random})
		chunk, curLen = nil, 0
		tgt = target(maxTok, opt.ShortSeqProb, rng)
	}
	return out
}

// truncatePair trims the longer of a and b, one token at a time from its
// front or back at random, until both fit in max tokens (BERT's
// truncate_seq_pair). The inputs are not modified.
func truncatePair(a, b []int32, max int, rng *rand.Rand) ([]int32, []int32) {
	for len(a)+len(b) > max {
		long := &a
		if len(b) > len(a) {
			long = &b
		}
		if rng.Float64() < 0.5 {
			*long = (*long)[1:]
		} else {
			*long = (*long)[:len(*long)-1]
		}
	}
	return a, b
}

// Encode builds a classification input [CLS] a [SEP] (b [SEP] when b is not
// nil) of at most maxLength tokens with text.Tokenizer.EncodeWith, whose
// pair truncation is Hugging Face's "longest_first".
func Encode(tok *text.Tokenizer, maxLength int, a string, b *string) (Sequence, error) {
	if maxLength < 1 {
		return Sequence{}, fmt.Errorf("encoding: MaxLength %d must be positive", maxLength)
	}
	enc, err := tok.EncodeWith(a, b, text.EncodeOpts{MaxLength: maxLength})
	if err != nil {
		return Sequence{}, err
	}
	return Sequence{IDs: enc.IDs, TypeIDs: enc.TypeIDs}, nil
}
