// Package text holds BERT's text pipeline: a WordPiece tokenizer that matches
// Hugging Face's BertTokenizerFast token for token (pair truncation
// included), a trainer of WordPiece vocabularies (WordPieceTrainer, written
// out by Tokenizer.Save), BERT's masked language-model corruption (MLM
// masking), and the unigram entropy that an MLM's loss is measured against.
//
// The tokenizer is a direct implementation of the tokenizers library's
// BertNormalizer, BertPreTokenizer, WordPiece model and BERT post-processor. It
// reads tokenizer.json or a bare vocab.txt. General-purpose Go readers of
// tokenizer.json (go-huggingface's hftokenizer) drop too few characters when
// cleaning text (zero-width spaces, byte-order marks), and BERT's pipeline is
// small enough to reproduce exactly.
package text

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Default special tokens of BERT vocabularies.
const (
	defaultCLS  = "[CLS]"
	defaultSEP  = "[SEP]"
	defaultPAD  = "[PAD]"
	defaultMASK = "[MASK]"
	defaultUNK  = "[UNK]"
)

// Tokenizer is a BERT WordPiece tokenizer. It is safe for concurrent use.
type Tokenizer struct {
	vocab   map[string]int32
	idToTok []string

	norm         normalizer
	prefix       string // continuing-subword prefix, "##"
	maxWordChars int    // longer words become [UNK]

	added []addedToken // matched literally before WordPiece, longest first
	// firstByte[0] / [1] flag the first bytes of raw / normalized added tokens,
	// so most positions are skipped without comparing strings.
	firstByte [2][256]bool
	special   map[int32]bool

	cls, sep, pad, mask, unk int32
}

// addedToken is a token matched verbatim in the input, like the tokenizers
// library's AddedToken. BERT's special tokens are added tokens with
// normalized=false, so "[MASK]" written in a text becomes the [MASK] id.
type addedToken struct {
	content    string
	id         int32
	special    bool
	normalized bool // matched in normalized text rather than raw text
	singleWord bool
	lstrip     bool
	rstrip     bool
}

// VocabSize is the number of ids: every id in [0, VocabSize) is valid.
func (t *Tokenizer) VocabSize() int { return len(t.idToTok) }

// TokenID returns the id of a vocabulary token.
func (t *Tokenizer) TokenID(tok string) (int32, bool) {
	id, ok := t.vocab[tok]
	return id, ok
}

// IDToken returns the token of an id, or "" when the id is out of range.
func (t *Tokenizer) IDToken(id int32) string {
	if id < 0 || int(id) >= len(t.idToTok) {
		return ""
	}
	return t.idToTok[id]
}

// CLS is the id of the classification token that starts every encoding.
func (t *Tokenizer) CLS() int32 { return t.cls }

// SEP is the id of the separator token that ends each segment.
func (t *Tokenizer) SEP() int32 { return t.sep }

// PAD is the id of the padding token.
func (t *Tokenizer) PAD() int32 { return t.pad }

// MASK is the id of the mask token used by masked language modelling.
func (t *Tokenizer) MASK() int32 { return t.mask }

// UNK is the id of the unknown-word token.
func (t *Tokenizer) UNK() int32 { return t.unk }

// IsSpecial reports whether id is a special token ([PAD], [UNK], [CLS], [SEP],
// [MASK] and any other token marked special in tokenizer.json). It has the
// shape MaskSequence expects for its special argument.
func (t *Tokenizer) IsSpecial(id int32) bool { return t.special[id] }

// Tokenize splits s into word pieces without adding [CLS] or [SEP]. Special
// tokens written literally in s ("[MASK]") are kept as single pieces.
func (t *Tokenizer) Tokenize(s string) []string {
	_, toks := t.tokenize(s)
	return toks
}

// tokenize runs the pipeline of tokenizers' Tokenizer::encode without
// post-processing: split out added tokens from the raw text, normalize the
// rest, split out normalized added tokens, pre-tokenize, then WordPiece.
func (t *Tokenizer) tokenize(s string) ([]int32, []string) {
	var ids []int32
	var toks []string
	var words []string
	for _, seg := range t.splitAdded(s, false) {
		if seg.token != nil {
			ids = append(ids, seg.token.id)
			toks = append(toks, t.idToTok[seg.token.id])
			continue
		}
		normalized := t.norm.normalize(seg.text)
		for _, seg2 := range t.splitAdded(normalized, true) {
			if seg2.token != nil {
				ids = append(ids, seg2.token.id)
				toks = append(toks, t.idToTok[seg2.token.id])
				continue
			}
			words = preTokenize(seg2.text, words[:0])
			for _, w := range words {
				ids, toks = t.wordPiece(w, ids, toks)
			}
		}
	}
	return ids, toks
}

// wordPiece appends the pieces of one word: greedy longest match from the left,
// continuation pieces carry the "##" prefix, and a word that cannot be covered
// entirely (or is longer than maxWordChars characters) becomes one [UNK].
func (t *Tokenizer) wordPiece(w string, ids []int32, toks []string) ([]int32, []string) {
	if utf8.RuneCountInString(w) > t.maxWordChars {
		return append(ids, t.unk), append(toks, t.idToTok[t.unk])
	}
	n0 := len(ids)
	var buf []byte
	for start := 0; start < len(w); {
		end := len(w)
		found := false
		for end > start {
			sub := w[start:end]
			if start > 0 {
				buf = append(append(buf[:0], t.prefix...), sub...)
				if id, ok := t.vocab[string(buf)]; ok { // no allocation on a miss
					ids = append(ids, id)
					toks = append(toks, t.idToTok[id])
					found = true
					break
				}
			} else if id, ok := t.vocab[sub]; ok {
				ids = append(ids, id)
				toks = append(toks, t.idToTok[id])
				found = true
				break
			}
			_, size := utf8.DecodeLastRuneInString(w[start:end])
			end -= size
		}
		if !found {
			ids, toks = ids[:n0], toks[:n0]
			return append(ids, t.unk), append(toks, t.idToTok[t.unk])
		}
		start = end
	}
	return ids, toks
}

// segment is a piece of input: either text to tokenize or a matched added token.
type segment struct {
	text  string
	token *addedToken
}

// splitAdded splits s around occurrences of the added tokens whose normalized
// flag equals normalized, taking at each position the leftmost-longest match
// (t.added is sorted longest first).
func (t *Tokenizer) splitAdded(s string, normalized bool) []segment {
	var segs []segment
	last := 0 // end of the previous match
	first := &t.firstByte[0]
	if normalized {
		first = &t.firstByte[1]
	}
	for i := 0; i < len(s); {
		var tok *addedToken
		if first[s[i]] {
			tok = t.matchAdded(s, i, normalized)
		}
		if tok == nil {
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
			continue
		}
		start, end := i, i+len(tok.content)
		if tok.lstrip {
			start = last + len(strings.TrimRightFunc(s[last:start], isWhitespace))
		}
		if tok.rstrip {
			end = len(s) - len(strings.TrimLeftFunc(s[end:], isWhitespace))
		}
		if start > last {
			segs = append(segs, segment{text: s[last:start]})
		}
		segs = append(segs, segment{token: tok})
		last, i = end, end
	}
	if last < len(s) || len(segs) == 0 {
		segs = append(segs, segment{text: s[last:]})
	}
	return segs
}

func (t *Tokenizer) matchAdded(s string, i int, normalized bool) *addedToken {
	for k := range t.added {
		a := &t.added[k]
		if a.normalized != normalized || !strings.HasPrefix(s[i:], a.content) {
			continue
		}
		if a.singleWord {
			before, _ := utf8.DecodeLastRuneInString(s[:i])
			after, _ := utf8.DecodeRuneInString(s[i+len(a.content):])
			if (i > 0 && isWordChar(before)) || (i+len(a.content) < len(s) && isWordChar(after)) {
				continue
			}
		}
		return a
	}
	return nil
}

func isWordChar(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r)
}
