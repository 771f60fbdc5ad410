package text

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vitbert/vitbert/atomicfs"
)

// Save writes the tokenizer into dir (created if needed) as vocab.txt (one
// token per line, the line number is the id) and tokenizer.json in the
// layout of the tokenizers library: added_tokens, a BertNormalizer, the
// BertPreTokenizer, a TemplateProcessing post-processor ([CLS] $A [SEP],
// [CLS] $A [SEP] $B:1 [SEP]:1), a WordPiece decoder and the WordPiece model.
// Load reads either file back into the same tokenizer. Each file is written
// atomically (atomicfs).
func (t *Tokenizer) Save(dir string) error {
	for id, tok := range t.idToTok {
		if tok == "" || strings.ContainsAny(tok, "\n\r") {
			return fmt.Errorf("saving the tokenizer: id %d has token %q, which a vocab.txt cannot hold", id, tok)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var vocabTxt bytes.Buffer
	for _, tok := range t.idToTok {
		vocabTxt.WriteString(tok)
		vocabTxt.WriteByte('\n')
	}
	js, err := t.tokenizerJSON()
	if err != nil {
		return err
	}
	if err := atomicfs.WriteBytes(filepath.Join(dir, "vocab.txt"), vocabTxt.Bytes()); err != nil {
		return err
	}
	return atomicfs.WriteBytes(filepath.Join(dir, "tokenizer.json"), js)
}

// orderedVocab marshals as a JSON object of token → id in id order, as the
// tokenizers library writes model.vocab.
type orderedVocab []string

func (v orderedVocab) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for id, tok := range v {
		if id > 0 {
			b.WriteByte(',')
		}
		k, err := marshalNoEscape(tok)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s:%d", k, id)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

type templatePiece struct {
	SpecialToken *templateRef `json:"SpecialToken,omitempty"`
	Sequence     *templateRef `json:"Sequence,omitempty"`
}

type templateRef struct {
	ID     string `json:"id"`
	TypeID int    `json:"type_id"`
}

type templateSpecial struct {
	ID     string   `json:"id"`
	IDs    []int32  `json:"ids"`
	Tokens []string `json:"tokens"`
}

func (t *Tokenizer) tokenizerJSON() ([]byte, error) {
	added := slices.Clone(t.added)
	slices.SortFunc(added, func(a, b addedToken) int { return int(a.id) - int(b.id) })
	addedJSON := make([]jsonAddedToken, len(added))
	for i, a := range added {
		addedJSON[i] = jsonAddedToken{ID: int(a.id), Content: a.content, SingleWord: a.singleWord, Lstrip: a.lstrip,
			Rstrip: a.rstrip, Normalized: a.normalized, Special: a.special}
	}
	var stripAccents *bool // null: follow lowercase, as BERT's uncased tokenizers
	if t.norm.stripAccents != t.norm.lowercase {
		stripAccents = &t.norm.stripAccents
	}
	cls, sep := t.idToTok[t.cls], t.idToTok[t.sep]
	special := func(tok string, typ int) templatePiece {
		return templatePiece{SpecialToken: &templateRef{ID: tok, TypeID: typ}}
	}
	seq := func(id string, typ int) templatePiece {
		return templatePiece{Sequence: &templateRef{ID: id, TypeID: typ}}
	}
	doc := struct {
		Version       string           `json:"version"`
		Truncation    any              `json:"truncation"`
		Padding       any              `json:"padding"`
		AddedTokens   []jsonAddedToken `json:"added_tokens"`
		Normalizer    any              `json:"normalizer"`
		PreTokenizer  any              `json:"pre_tokenizer"`
		PostProcessor any              `json:"post_processor"`
		Decoder       any              `json:"decoder"`
		Model         any              `json:"model"`
	}{
		Version:     "1.0",
		AddedTokens: addedJSON,
		Normalizer: map[string]any{
			"type": "BertNormalizer", "clean_text": t.norm.cleanText, "handle_chinese_chars": t.norm.chineseChars,
			"strip_accents": stripAccents, "lowercase": t.norm.lowercase,
		},
		PreTokenizer: map[string]string{"type": "BertPreTokenizer"},
		PostProcessor: map[string]any{
			"type":   "TemplateProcessing",
			"single": []templatePiece{special(cls, 0), seq("A", 0), special(sep, 0)},
			"pair":   []templatePiece{special(cls, 0), seq("A", 0), special(sep, 0), seq("B", 1), special(sep, 1)},
			"special_tokens": map[string]templateSpecial{
				cls: {ID: cls, IDs: []int32{t.cls}, Tokens: []string{cls}},
				sep: {ID: sep, IDs: []int32{t.sep}, Tokens: []string{sep}},
			},
		},
		Decoder: map[string]any{"type": "WordPiece", "prefix": t.prefix, "cleanup": true},
		Model: struct {
			Type                    string       `json:"type"`
			UnkToken                string       `json:"unk_token"`
			ContinuingSubwordPrefix string       `json:"continuing_subword_prefix"`
			MaxInputCharsPerWord    int          `json:"max_input_chars_per_word"`
			Vocab                   orderedVocab `json:"vocab"`
		}{"WordPiece", t.idToTok[t.unk], t.prefix, t.maxWordChars, orderedVocab(t.idToTok)},
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("saving the tokenizer: %w", err)
	}
	return b.Bytes(), nil
}
