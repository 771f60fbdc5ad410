package text

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// Load reads a BERT WordPiece tokenizer from path, which may be
//   - a directory holding tokenizer.json (preferred) or vocab.txt;
//   - a tokenizer.json file;
//   - a vocab.txt file (one token per line, the line number is the id).
//
// A tokenizer_config.json beside the file is honoured: do_lower_case,
// strip_accents and tokenize_chinese_chars, when present, override the
// normaliser settings (as transformers' BertTokenizerFast does), and its
// special-token names are used for a bare vocab.txt. Without a config a
// vocab.txt is lower-cased, accent-stripped and CJK-split (bert-base-uncased).
func Load(path string) (*Tokenizer, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("loading tokenizer: %w", err)
	}
	if info.IsDir() {
		for _, name := range []string{"tokenizer.json", "vocab.txt"} {
			p := filepath.Join(path, name)
			if _, err := os.Stat(p); err == nil {
				return loadFile(p)
			}
		}
		return nil, fmt.Errorf("loading tokenizer: %s holds neither tokenizer.json nor vocab.txt", path)
	}
	return loadFile(path)
}

// ForModel returns the vocabulary of a model directory: the tokenizer.json or
// vocab.txt saved in it (Load), else the built-in bert-base-uncased one
// (Default), which models saved without their vocabulary and Hugging Face
// checkpoints without tokenizer files were trained with. With vocabSize > 0
// (the model's embedding rows) a vocabulary of another size is an error.
func ForModel(dir string, vocabSize int) (*Tokenizer, error) {
	tok, err := Default()
	for _, name := range []string{"tokenizer.json", "vocab.txt"} {
		if _, serr := os.Stat(filepath.Join(dir, name)); dir != "" && serr == nil {
			tok, err = Load(dir)
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if vocabSize > 0 && tok.VocabSize() != vocabSize {
		return nil, fmt.Errorf("the tokenizer of %s has %d tokens but the model's vocabulary has %d (put the model's tokenizer.json or vocab.txt in its directory)",
			dir, tok.VocabSize(), vocabSize)
	}
	return tok, nil
}

// SameVocabulary reports whether t and o map every text to the same ids: the
// same tokens by id, the same normalisation and word-piece settings.
func (t *Tokenizer) SameVocabulary(o *Tokenizer) bool {
	return t.norm == o.norm && t.prefix == o.prefix && t.maxWordChars == o.maxWordChars &&
		slices.Equal(t.idToTok, o.idToTok) && t.cls == o.cls && t.sep == o.sep && t.unk == o.unk
}

func loadFile(path string) (*Tokenizer, error) {
	cfg, err := readConfig(filepath.Join(filepath.Dir(path), "tokenizer_config.json"))
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(strings.ToLower(path), ".json") {
		return loadJSON(path, cfg)
	}
	return loadVocabTxt(path, cfg)
}

// options collects the settings both file formats resolve before building.
type options struct {
	lowercase    bool
	stripAccents *bool // nil: follow lowercase, as BERT's strip_accents=None
	chineseChars bool
	cleanText    bool
	prefix       string
	maxWordChars int
	names        map[string]string // "cls", "sep", ... → token
}

func defaultOptions() options {
	return options{
		lowercase:    true,
		chineseChars: true,
		cleanText:    true,
		prefix:       "##",
		maxWordChars: 100,
		names: map[string]string{
			"cls": defaultCLS, "sep": defaultSEP, "pad": defaultPAD, "mask": defaultMASK, "unk": defaultUNK,
		},
	}
}

// tokenizerConfig holds what is read from tokenizer_config.json; pointers are
// nil for absent keys.
type tokenizerConfig struct {
	path         string
	lowercase    *bool
	stripAccents **bool // non-nil when the key is present; *stripAccents nil for JSON null
	chineseChars *bool
	names        map[string]string
	added        []addedToken
}

func readConfig(path string) (*tokenizerConfig, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	cfg := &tokenizerConfig{path: path, names: map[string]string{}}
	boolKey := func(key string) (*bool, error) {
		v, ok := raw[key]
		if !ok || string(v) == "null" {
			return nil, nil
		}
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return nil, fmt.Errorf("reading %s: key %q: %w", path, key, err)
		}
		return &b, nil
	}
	if cfg.lowercase, err = boolKey("do_lower_case"); err != nil {
		return nil, err
	}
	if cfg.chineseChars, err = boolKey("tokenize_chinese_chars"); err != nil {
		return nil, err
	}
	if _, ok := raw["strip_accents"]; ok {
		sa, err := boolKey("strip_accents")
		if err != nil {
			return nil, err
		}
		cfg.stripAccents = &sa
	}
	for _, name := range []string{"cls", "sep", "pad", "mask", "unk"} {
		v, ok := raw[name+"_token"]
		if !ok || string(v) == "null" {
			continue
		}
		tok, err := tokenName(v)
		if err != nil {
			return nil, fmt.Errorf("reading %s: key %q: %w", path, name+"_token", err)
		}
		cfg.names[name] = tok
	}
	if v, ok := raw["added_tokens_decoder"]; ok && string(v) != "null" {
		var dec map[string]jsonAddedToken
		if err := json.Unmarshal(v, &dec); err != nil {
			return nil, fmt.Errorf("reading %s: key \"added_tokens_decoder\": %w", path, err)
		}
		for key, a := range dec {
			var id int
			if _, err := fmt.Sscanf(key, "%d", &id); err != nil || id < 0 || id > math.MaxInt32 {
				return nil, fmt.Errorf("reading %s: added_tokens_decoder: bad id %q", path, key)
			}
			a.ID = id
			cfg.added = append(cfg.added, a.toAdded())
		}
	}
	return cfg, nil
}

// tokenName reads a special token written either as "[CLS]" or as an
// AddedToken object {"content": "[CLS]", ...}.
func tokenName(v json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(v, &obj); err != nil {
		return "", err
	}
	return obj.Content, nil
}

type jsonAddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	Lstrip     bool   `json:"lstrip"`
	Rstrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

func (a jsonAddedToken) toAdded() addedToken {
	return addedToken{
		content: a.Content, id: int32(a.ID), special: a.Special, normalized: a.Normalized,
		singleWord: a.SingleWord, lstrip: a.Lstrip, rstrip: a.Rstrip,
	}
}

// setIfGiven sets *dst to *v when the file gave v (a JSON field that is
// absent leaves the default).
func setIfGiven[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// apply lets tokenizer_config.json override normaliser settings and names.
func (c *tokenizerConfig) apply(o *options) {
	if c == nil {
		return
	}
	setIfGiven(&o.lowercase, c.lowercase)
	setIfGiven(&o.stripAccents, c.stripAccents)
	setIfGiven(&o.chineseChars, c.chineseChars)
	for k, v := range c.names {
		o.names[k] = v
	}
}

// tokenizerJSON is the part of tokenizer.json a BERT tokenizer needs.
type tokenizerJSON struct {
	AddedTokens []jsonAddedToken `json:"added_tokens"`
	Normalizer  *struct {
		Type               string `json:"type"`
		CleanText          *bool  `json:"clean_text"`
		HandleChineseChars *bool  `json:"handle_chinese_chars"`
		StripAccents       *bool  `json:"strip_accents"`
		Lowercase          *bool  `json:"lowercase"`
	} `json:"normalizer"`
	PreTokenizer *struct {
		Type string `json:"type"`
	} `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Model         struct {
		Type                    string         `json:"type"`
		UnkToken                string         `json:"unk_token"`
		ContinuingSubwordPrefix *string        `json:"continuing_subword_prefix"`
		MaxInputCharsPerWord    *int           `json:"max_input_chars_per_word"`
		Vocab                   map[string]int `json:"vocab"`
	} `json:"model"`
}

func loadJSON(path string, cfg *tokenizerConfig) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading tokenizer: %w", err)
	}
	var tj tokenizerJSON
	if err := json.Unmarshal(data, &tj); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	m := tj.Model
	if m.Type != "" && m.Type != "WordPiece" {
		return nil, fmt.Errorf("reading %s: model type %q is not supported (want WordPiece)", path, m.Type)
	}
	if len(m.Vocab) == 0 {
		return nil, fmt.Errorf("reading %s: empty vocabulary (model.vocab)", path)
	}
	o := defaultOptions()
	o.cleanText, o.chineseChars, o.lowercase = false, false, false
	if n := tj.Normalizer; n != nil {
		if n.Type != "BertNormalizer" {
			return nil, fmt.Errorf("reading %s: normalizer type %q is not supported (want BertNormalizer)", path, n.Type)
		}
		// Defaults of tokenizers' BertNormalizer for absent fields.
		o.cleanText, o.chineseChars, o.lowercase = true, true, true
		setIfGiven(&o.cleanText, n.CleanText)
		setIfGiven(&o.chineseChars, n.HandleChineseChars)
		setIfGiven(&o.lowercase, n.Lowercase)
		o.stripAccents = n.StripAccents
	}
	if p := tj.PreTokenizer; p == nil || p.Type != "BertPreTokenizer" {
		typ := "null"
		if p != nil {
			typ = p.Type
		}
		return nil, fmt.Errorf("reading %s: pre_tokenizer %s is not supported (want BertPreTokenizer)", path, typ)
	}
	if m.ContinuingSubwordPrefix != nil {
		o.prefix = *m.ContinuingSubwordPrefix
	}
	if m.MaxInputCharsPerWord != nil {
		o.maxWordChars = *m.MaxInputCharsPerWord
	}
	if m.UnkToken != "" {
		o.names["unk"] = m.UnkToken
	}
	cfg.apply(&o)
	// tokenizer.json's own special-token names win over the config's.
	if m.UnkToken != "" {
		o.names["unk"] = m.UnkToken
	}
	if err := postProcessorNames(tj.PostProcessor, o.names); err != nil {
		return nil, fmt.Errorf("reading %s: post_processor: %w", path, err)
	}

	vocab := make(map[string]int32, len(m.Vocab))
	maxID := -1
	for tok, id := range m.Vocab {
		if id < 0 || id >= math.MaxInt32 {
			return nil, fmt.Errorf("reading %s: token %q has id %d out of range", path, tok, id)
		}
		vocab[tok] = int32(id)
		maxID = max(maxID, id)
	}
	var added []addedToken
	for i, a := range tj.AddedTokens {
		if a.ID < 0 || a.ID >= math.MaxInt32 || a.Content == "" {
			return nil, fmt.Errorf("reading %s: added_tokens[%d]: bad token %q with id %d", path, i, a.Content, a.ID)
		}
		added = append(added, a.toAdded())
		vocab[a.Content] = int32(a.ID)
		maxID = max(maxID, a.ID)
	}
	// Ids are dense in real vocabularies; a far-away id means a corrupt file
	// (and would make the id table huge).
	if maxID >= len(vocab)+len(added)+1024 {
		return nil, fmt.Errorf("reading %s: largest id %d is far beyond the %d tokens", path, maxID, len(vocab))
	}
	idToTok := make([]string, maxID+1)
	for tok, id := range vocab {
		idToTok[id] = tok
	}
	return build(path, vocab, idToTok, added, o)
}

// postProcessorNames reads the [CLS] and [SEP] token names from a
// TemplateProcessing or BertProcessing post-processor.
func postProcessorNames(raw json.RawMessage, names map[string]string) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var pp struct {
		Type   string            `json:"type"`
		CLS    []json.RawMessage `json:"cls"`
		SEP    []json.RawMessage `json:"sep"`
		Single []struct {
			SpecialToken *struct {
				ID string `json:"id"`
			} `json:"SpecialToken"`
		} `json:"single"`
	}
	if err := json.Unmarshal(raw, &pp); err != nil {
		return err
	}
	switch pp.Type {
	case "BertProcessing":
		for key, pair := range map[string][]json.RawMessage{"cls": pp.CLS, "sep": pp.SEP} {
			if len(pair) != 2 {
				return fmt.Errorf("BertProcessing %s: want [token, id]", key)
			}
			var tok string
			if err := json.Unmarshal(pair[0], &tok); err != nil {
				return fmt.Errorf("BertProcessing %s: %w", key, err)
			}
			names[key] = tok
		}
	case "TemplateProcessing":
		var specials []string
		for _, piece := range pp.Single {
			if piece.SpecialToken != nil {
				specials = append(specials, piece.SpecialToken.ID)
			}
		}
		if len(specials) != 2 {
			return fmt.Errorf("TemplateProcessing single template has %d special tokens, want 2 ([CLS] $A [SEP])", len(specials))
		}
		names["cls"], names["sep"] = specials[0], specials[1]
	default:
		return fmt.Errorf("type %q is not supported (want TemplateProcessing or BertProcessing)", pp.Type)
	}
	return nil
}

func loadVocabTxt(path string, cfg *tokenizerConfig) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading tokenizer: %w", err)
	}
	return parseVocabTxt(path, data, cfg)
}

// parseVocabTxt builds a tokenizer from the bytes of a vocab.txt; path names
// it in errors.
func parseVocabTxt(path string, data []byte, cfg *tokenizerConfig) (*Tokenizer, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("reading %s: empty vocabulary", path)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, fmt.Errorf("reading %s: binary data (NUL byte) in a vocab.txt", path)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) >= math.MaxInt32 {
		return nil, fmt.Errorf("reading %s: %d lines, too many tokens", path, len(lines))
	}
	vocab := make(map[string]int32, len(lines))
	idToTok := make([]string, len(lines))
	for i, line := range lines {
		tok := strings.TrimSuffix(line, "\r")
		if !utf8.ValidString(tok) {
			return nil, fmt.Errorf("reading %s: line %d: invalid UTF-8", path, i+1)
		}
		vocab[tok] = int32(i) // a repeated token keeps its last id, as transformers' load_vocab
		idToTok[i] = tok
	}
	o := defaultOptions()
	cfg.apply(&o)
	var added []addedToken
	if cfg != nil {
		added = cfg.added
	}
	// Without added_tokens_decoder, the special tokens are never split, as in
	// the slow BertTokenizer.
	if len(added) == 0 {
		for _, k := range []string{"pad", "unk", "cls", "sep", "mask"} {
			if id, ok := vocab[o.names[k]]; ok {
				added = append(added, addedToken{content: o.names[k], id: id, special: true})
			}
		}
	}
	for _, a := range added {
		switch {
		case int(a.id) >= len(lines)+len(added)+1024:
			return nil, fmt.Errorf("reading %s: added token %q has id %d, far beyond the %d lines of %s",
				cfg.path, a.content, a.id, len(lines), path)
		case int(a.id) >= len(idToTok): // a token added after the vocabulary
			idToTok = append(idToTok, make([]string, int(a.id)+1-len(idToTok))...)
			idToTok[a.id] = a.content
			vocab[a.content] = a.id
		case idToTok[a.id] != a.content:
			return nil, fmt.Errorf("reading %s: added token %q has id %d but line %d of %s is %q",
				cfg.path, a.content, a.id, a.id+1, path, idToTok[a.id])
		}
	}
	return build(path, vocab, idToTok, added, o)
}

// build checks the special tokens and assembles the tokenizer.
func build(path string, vocab map[string]int32, idToTok []string, added []addedToken, o options) (*Tokenizer, error) {
	t := &Tokenizer{
		vocab:        vocab,
		idToTok:      idToTok,
		prefix:       o.prefix,
		maxWordChars: o.maxWordChars,
		special:      map[int32]bool{},
	}
	t.norm = normalizer{cleanText: o.cleanText, chineseChars: o.chineseChars, lowercase: o.lowercase, stripAccents: o.lowercase}
	if o.stripAccents != nil {
		t.norm.stripAccents = *o.stripAccents
	}
	for _, f := range []struct {
		key string
		dst *int32
	}{{"cls", &t.cls}, {"sep", &t.sep}, {"pad", &t.pad}, {"mask", &t.mask}, {"unk", &t.unk}} {
		id, ok := vocab[o.names[f.key]]
		if !ok {
			return nil, fmt.Errorf("reading %s: special token %s %q is not in the vocabulary", path, strings.ToUpper(f.key), o.names[f.key])
		}
		*f.dst = id
		t.special[id] = true
	}
	for i := range added {
		a := &added[i]
		if a.special {
			t.special[a.id] = true
		}
		if a.normalized {
			// Normalized added tokens are matched against normalized text.
			a.content = t.norm.normalize(a.content)
		}
	}
	added = slicesDeleteEmpty(added)
	sort.SliceStable(added, func(i, j int) bool { return len(added[i].content) > len(added[j].content) })
	t.added = added
	for _, a := range added {
		k := 0
		if a.normalized {
			k = 1
		}
		t.firstByte[k][a.content[0]] = true
	}
	return t, nil
}

func slicesDeleteEmpty(added []addedToken) []addedToken {
	out := added[:0]
	for _, a := range added {
		if a.content != "" {
			out = append(out, a)
		}
	}
	return out
}
