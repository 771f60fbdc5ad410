package text

import "fmt"

// Encoding is a model-ready token sequence. All slices have the same length.
type Encoding struct {
	IDs           []int32
	TypeIDs       []int32 // segment: 0 for [CLS] A [SEP], 1 for B [SEP]
	AttentionMask []int32 // 1 for real tokens, 0 for padding
	Tokens        []string
}

// Len is the number of positions, padding included.
func (e Encoding) Len() int { return len(e.IDs) }

// EncodeOpts controls truncation and padding in EncodeWith.
type EncodeOpts struct {
	// MaxLength caps the length, special tokens included; 0 means no cap.
	// Longer inputs are truncated from the right with Hugging Face's
	// "longest_first" strategy.
	MaxLength int
	// Pad appends [PAD] (type id 0, attention 0) up to MaxLength.
	Pad bool
}

// Encode returns [CLS] a [SEP].
func (t *Tokenizer) Encode(a string) Encoding {
	enc, _ := t.EncodeWith(a, nil, EncodeOpts{}) // no options, no error
	return enc
}

// TokenIDs returns the word-piece ids of s without [CLS] or [SEP]: the
// units that packing (data/texts) lays out into sequences.
func (t *Tokenizer) TokenIDs(s string) []int32 {
	ids, _ := t.tokenize(s)
	return ids
}

// EncodePair returns [CLS] a [SEP] b [SEP], with type ids 0 up to the first
// [SEP] and 1 after it.
func (t *Tokenizer) EncodePair(a, b string) Encoding {
	enc, _ := t.EncodeWith(a, &b, EncodeOpts{})
	return enc
}

// EncodeWith encodes a (and b when not nil) with truncation and padding. It
// fails when MaxLength is negative or smaller than the number of special tokens
// (2 for a single text, 3 for a pair), or when Pad is set without MaxLength.
func (t *Tokenizer) EncodeWith(a string, b *string, opts EncodeOpts) (Encoding, error) {
	nSpecial := 2
	if b != nil {
		nSpecial = 3
	}
	if opts.MaxLength < 0 {
		return Encoding{}, fmt.Errorf("encoding: negative MaxLength %d", opts.MaxLength)
	}
	if opts.MaxLength > 0 && opts.MaxLength < nSpecial {
		return Encoding{}, fmt.Errorf("encoding: MaxLength %d is shorter than the %d special tokens", opts.MaxLength, nSpecial)
	}
	if opts.Pad && opts.MaxLength == 0 {
		return Encoding{}, fmt.Errorf("encoding: Pad needs a MaxLength")
	}
	idsA, toksA := t.tokenize(a)
	var idsB []int32
	var toksB []string
	if b != nil {
		idsB, toksB = t.tokenize(*b)
	}
	if opts.MaxLength > 0 {
		target := opts.MaxLength - nSpecial
		if b == nil {
			if len(idsA) > target {
				idsA, toksA = idsA[:target], toksA[:target]
			}
		} else {
			na, nb := longestFirst(len(idsA), len(idsB), target)
			idsA, toksA = idsA[:na], toksA[:na]
			idsB, toksB = idsB[:nb], toksB[:nb]
		}
	}

	n := len(idsA) + len(idsB) + nSpecial
	size := max(n, opts.MaxLength)
	if !opts.Pad {
		size = n
	}
	enc := Encoding{
		IDs:           make([]int32, 0, size),
		TypeIDs:       make([]int32, 0, size),
		AttentionMask: make([]int32, 0, size),
		Tokens:        make([]string, 0, size),
	}
	push := func(id int32, tok string, typ int32, att int32) {
		enc.IDs = append(enc.IDs, id)
		enc.Tokens = append(enc.Tokens, tok)
		enc.TypeIDs = append(enc.TypeIDs, typ)
		enc.AttentionMask = append(enc.AttentionMask, att)
	}
	push(t.cls, t.idToTok[t.cls], 0, 1)
	for i, id := range idsA {
		push(id, toksA[i], 0, 1)
	}
	push(t.sep, t.idToTok[t.sep], 0, 1)
	if b != nil {
		for i, id := range idsB {
			push(id, toksB[i], 1, 1)
		}
		push(t.sep, t.idToTok[t.sep], 1, 1)
	}
	for len(enc.IDs) < size {
		push(t.pad, t.idToTok[t.pad], 0, 0)
	}
	return enc, nil
}

// longestFirst returns how many tokens of each sequence to keep so that
// together they fit in target, following tokenizers' LongestFirst strategy:
// when only the longer one must shrink it keeps target-n(shorter); when both
// must, they get target/2 each, the longer one taking the odd token.
func longestFirst(na, nb, target int) (int, int) {
	if na+nb <= target {
		return na, nb
	}
	n1, n2 := na, nb // n1 is the shorter
	swap := n1 > n2
	if swap {
		n1, n2 = n2, n1
	}
	if n1 > target {
		n2 = n1
	} else {
		n2 = max(n1, target-n1)
	}
	if n1+n2 > target {
		n1 = target / 2
		n2 = n1 + target%2
	}
	if swap {
		n1, n2 = n2, n1
	}
	return min(na, n1), min(nb, n2)
}
