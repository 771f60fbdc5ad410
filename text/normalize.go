package text

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// normalizer reproduces Hugging Face tokenizers' BertNormalizer (the Rust
// implementation behind BertTokenizerFast), step by step and in its order:
// clean text, pad CJK ideographs with spaces, strip accents, lower-case.
type normalizer struct {
	cleanText    bool
	chineseChars bool
	stripAccents bool
	lowercase    bool
}

func (n normalizer) normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for _, r := range s {
		// Invalid UTF-8 decodes to U+FFFD, which cleaning drops: BERT's cleaner
		// removes the replacement character.
		if n.cleanText {
			if r == 0 || r == utf8.RuneError || isControl(r) {
				continue
			}
			if isWhitespace(r) {
				r = ' '
			}
		}
		if n.chineseChars && isChineseChar(r) {
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
			continue
		}
		b.WriteRune(r)
	}
	out := b.String()
	if n.stripAccents {
		out = stripAccents(out)
	}
	if n.lowercase {
		out = lowercase(out)
	}
	return out
}

// stripAccents decomposes to NFD and drops non-spacing marks (category Mn).
func stripAccents(s string) string {
	d := norm.NFD.String(s)
	var b strings.Builder
	b.Grow(len(d))
	for _, r := range d {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// lowercase maps each character to its full lower-case form, as Rust's
// char::to_lowercase does: the simple mapping everywhere except U+0130 (Latin
// capital I with dot above), whose full mapping is "i" + combining dot above.
func lowercase(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r == 'İ' {
			b.WriteString("i\u0307")
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// isWhitespace follows tokenizers' BERT is_whitespace: the Unicode White_Space
// property (which includes tab, newline and carriage return).
func isWhitespace(r rune) bool {
	if r < utf8.RuneSelf {
		return r == ' ' || (r >= '\t' && r <= '\r')
	}
	return unicode.Is(unicode.White_Space, r)
}

// isControl follows tokenizers' BERT is_control: every "Other" character (Cc,
// Cf, Cs, Co and unassigned code points) except tab, newline and carriage
// return. This removes zero-width characters such as U+200B and the byte-order
// mark U+FEFF, which are Cf.
func isControl(r rune) bool {
	switch r {
	case '\t', '\n', '\r':
		return false
	}
	if r < utf8.RuneSelf {
		return r < 0x20 || r == 0x7f
	}
	// Go has no table for unassigned code points: "Other" is whatever no
	// assigned category holds. Characters assigned in a Unicode version newer
	// than the Rust crate's tables may therefore be kept here and dropped there.
	return !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z)
}

// isPunctuation is BERT's punctuation test: ASCII punctuation (which includes
// symbols such as "$" and "^") or any Unicode punctuation category.
func isPunctuation(r rune) bool {
	if r < utf8.RuneSelf {
		return (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126)
	}
	return unicode.IsPunct(r)
}

// isChineseChar reports whether r is in the CJK Unified Ideographs blocks
// that BERT splits into single-character words (not Hiragana, Katakana or Hangul).
func isChineseChar(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) ||
		(r >= 0x3400 && r <= 0x4DBF) ||
		(r >= 0x20000 && r <= 0x2A6DF) ||
		(r >= 0x2A700 && r <= 0x2B73F) ||
		(r >= 0x2B740 && r <= 0x2B81F) ||
		(r >= 0x2B820 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) ||
		(r >= 0x2F800 && r <= 0x2FA1F)
}

// preTokenize is BertPreTokenizer: split on whitespace (dropped) and on each
// punctuation character (kept as its own word).
func preTokenize(s string, words []string) []string {
	start := -1
	for i, r := range s {
		switch {
		case isWhitespace(r):
			if start >= 0 {
				words = append(words, s[start:i])
				start = -1
			}
		case isPunctuation(r):
			if start >= 0 {
				words = append(words, s[start:i])
				start = -1
			}
			words = append(words, s[i:i+utf8.RuneLen(r)])
		default:
			if start < 0 {
				start = i
			}
		}
	}
	if start >= 0 {
		words = append(words, s[start:])
	}
	return words
}
