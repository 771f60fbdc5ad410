package text

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/vitbert/vitbert/internal/testutil"
	"github.com/vitbert/vitbert/safetensors"
)

const hfDir = "../testdata/hf"

var tokenizerDir = filepath.Join(hfDir, "tokenizer")

type golden struct {
	Single []struct {
		Text         string   `json:"text"`
		Tokens       []string `json:"tokens"`
		InputIDs     []int32  `json:"input_ids"`
		TokenTypeIDs []int32  `json:"token_type_ids"`
	} `json:"single"`
	Pairs []struct {
		TextA        string  `json:"text_a"`
		TextB        string  `json:"text_b"`
		InputIDs     []int32 `json:"input_ids"`
		TokenTypeIDs []int32 `json:"token_type_ids"`
	} `json:"pairs"`
	Truncated []struct {
		TextA        string  `json:"text_a"`
		TextB        string  `json:"text_b"`
		MaxLength    int     `json:"max_length"`
		Strategy     string  `json:"strategy"`
		InputIDs     []int32 `json:"input_ids"`
		TokenTypeIDs []int32 `json:"token_type_ids"`
	} `json:"truncated"`
}

func readGolden(t *testing.T) golden {
	t.Helper()
	g := testutil.ReadJSON[golden](t, filepath.Join(hfDir, "wordpiece_golden.json"))
	if len(g.Single) != 16 || len(g.Pairs) != 2 || len(g.Truncated) != 2 {
		t.Fatalf("golden file has %d singles, %d pairs, %d truncated; want 16, 2, 2", len(g.Single), len(g.Pairs), len(g.Truncated))
	}
	return g
}

var (
	loadOnce sync.Map // path → *Tokenizer
)

func mustLoad(t testing.TB, path string) *Tokenizer {
	t.Helper()
	if tok, ok := loadOnce.Load(path); ok {
		return tok.(*Tokenizer)
	}
	tok, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	loadOnce.Store(path, tok)
	return tok
}

// bareVocab copies vocab.txt alone into a temporary directory, so that no
// tokenizer_config.json is beside it and the defaults apply.
func bareVocab(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(tokenizerDir, "vocab.txt"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "vocab.txt")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// sources are the ways to load the same bert-base-uncased tokenizer.
func sources(t *testing.T) map[string]string {
	return map[string]string{
		"dir":                   tokenizerDir,
		"tokenizer.json":        filepath.Join(tokenizerDir, "tokenizer.json"),
		"vocab.txt+config":      filepath.Join(tokenizerDir, "vocab.txt"),
		"vocab.txt-no-config":   bareVocab(t),
		"dir-with-only-a-vocab": filepath.Dir(bareVocab(t)),
	}
}

func TestGoldenMatchesHuggingFace(t *testing.T) {
	g := readGolden(t)
	toks := map[string]*Tokenizer{}
	for name, path := range sources(t) {
		toks[name] = mustLoad(t, path)
	}
	def, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	toks["built-in default"] = def
	for name, tok := range toks {
		t.Run(name, func(t *testing.T) {
			for i, c := range g.Single {
				enc := tok.Encode(c.Text)
				if !reflect.DeepEqual(enc.IDs, c.InputIDs) || !reflect.DeepEqual(enc.Tokens, c.Tokens) ||
					!reflect.DeepEqual(enc.TypeIDs, c.TokenTypeIDs) {
					t.Errorf("single %d %q:\n got %v %q type %v\nwant %v %q type %v", i, c.Text,
						enc.IDs, enc.Tokens, enc.TypeIDs, c.InputIDs, c.Tokens, c.TokenTypeIDs)
				}
				for _, m := range enc.AttentionMask {
					if m != 1 {
						t.Errorf("single %d: attention mask %v, want all ones", i, enc.AttentionMask)
						break
					}
				}
				// Tokenize is the same without the specials.
				if pieces := tok.Tokenize(c.Text); !reflect.DeepEqual(pieces, nonNil(c.Tokens[1:len(c.Tokens)-1])) {
					t.Errorf("Tokenize(%q) = %q, want %q", c.Text, pieces, c.Tokens[1:len(c.Tokens)-1])
				}
			}
			for i, c := range g.Pairs {
				enc := tok.EncodePair(c.TextA, c.TextB)
				if !reflect.DeepEqual(enc.IDs, c.InputIDs) || !reflect.DeepEqual(enc.TypeIDs, c.TokenTypeIDs) {
					t.Errorf("pair %d: got %v type %v, want %v type %v", i, enc.IDs, enc.TypeIDs, c.InputIDs, c.TokenTypeIDs)
				}
			}
			for i, c := range g.Truncated {
				if c.Strategy != "longest_first" {
					t.Fatalf("truncated %d: strategy %q", i, c.Strategy)
				}
				enc, err := tok.EncodeWith(c.TextA, &c.TextB, EncodeOpts{MaxLength: c.MaxLength})
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(enc.IDs, c.InputIDs) || !reflect.DeepEqual(enc.TypeIDs, c.TokenTypeIDs) {
					t.Errorf("truncated %d: got %v type %v, want %v type %v", i, enc.IDs, enc.TypeIDs, c.InputIDs, c.TokenTypeIDs)
				}
			}
		})
	}
}

func nonNil(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// TestBertTinyInputsMatchExpected checks the padded batch that produced the
// bert-tiny reference activations.
func TestBertTinyInputsMatchExpected(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(hfDir, "bert-tiny", "inputs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var in struct {
		Sentences []string `json:"sentences"`
		MaxLength int      `json:"max_length"`
	}
	if err := json.Unmarshal(data, &in); err != nil {
		t.Fatal(err)
	}
	if len(in.Sentences) != 3 || in.MaxLength != 16 {
		t.Fatalf("inputs.json: %d sentences, max_length %d; want 3, 16", len(in.Sentences), in.MaxLength)
	}
	want := readSafetensorsInts(t, filepath.Join(hfDir, "bert-tiny", "expected.safetensors"),
		"input_ids", "token_type_ids", "attention_mask")
	tok := mustLoad(t, tokenizerDir)
	for i, s := range in.Sentences {
		enc, err := tok.EncodeWith(s, nil, EncodeOpts{MaxLength: in.MaxLength, Pad: true})
		if err != nil {
			t.Fatal(err)
		}
		row := func(name string) []int32 { return want[name][i*in.MaxLength : (i+1)*in.MaxLength] }
		if !reflect.DeepEqual(enc.IDs, row("input_ids")) {
			t.Errorf("sentence %d input_ids = %v, want %v", i, enc.IDs, row("input_ids"))
		}
		if !reflect.DeepEqual(enc.TypeIDs, row("token_type_ids")) {
			t.Errorf("sentence %d token_type_ids = %v, want %v", i, enc.TypeIDs, row("token_type_ids"))
		}
		if !reflect.DeepEqual(enc.AttentionMask, row("attention_mask")) {
			t.Errorf("sentence %d attention_mask = %v, want %v", i, enc.AttentionMask, row("attention_mask"))
		}
	}
}

// readSafetensorsInts reads integer tensors from a safetensors file.
func readSafetensorsInts(t *testing.T, path string, names ...string) map[string][]int32 {
	t.Helper()
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]int32{}
	for _, name := range names {
		ts, ok := f.Tensors[name]
		if !ok {
			t.Fatalf("%s: no tensor %s", path, name)
		}
		vals, err := ts.Int64s()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, v := range vals {
			out[name] = append(out[name], int32(v))
		}
	}
	return out
}

func TestSpecialIDs(t *testing.T) {
	for name, path := range sources(t) {
		tok := mustLoad(t, path)
		got := []int32{tok.PAD(), tok.UNK(), tok.CLS(), tok.SEP(), tok.MASK()}
		if want := []int32{0, 100, 101, 102, 103}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: PAD UNK CLS SEP MASK = %v, want %v", name, got, want)
		}
		if tok.VocabSize() != 30522 {
			t.Errorf("%s: VocabSize = %d, want 30522", name, tok.VocabSize())
		}
		for _, id := range got {
			if !tok.IsSpecial(id) {
				t.Errorf("%s: IsSpecial(%d) = false", name, id)
			}
		}
		if tok.IsSpecial(1996) {
			t.Errorf("%s: IsSpecial(1996 %q) = true", name, tok.IDToken(1996))
		}
		if id, ok := tok.TokenID("##ing"); !ok || id != 2075 || tok.IDToken(id) != "##ing" {
			t.Errorf("%s: TokenID(##ing) = %d %v, IDToken = %q", name, id, ok, tok.IDToken(id))
		}
		if _, ok := tok.TokenID("no-such-token"); ok {
			t.Errorf("%s: TokenID of a missing token reported ok", name)
		}
		if tok.IDToken(-1) != "" || tok.IDToken(30522) != "" {
			t.Errorf("%s: IDToken out of range should be empty", name)
		}
	}
}

func TestNormalization(t *testing.T) {
	tok := mustLoad(t, tokenizerDir)
	tests := []struct {
		name, in string
		want     []string
	}{
		{"zero width space joins words", "a\u200bb", []string{"ab"}},
		{"BOM dropped", "\ufeffhello", []string{"hello"}},
		{"vertical tab is a control char and is dropped", "in\vto", []string{"into"}},
		{"NBSP and ideographic space split", "a\u00a0b\u3000c", []string{"a", "b", "c"}},
		{"invalid UTF-8 dropped", "he\xffllo", []string{"hello"}},
		{"replacement char dropped", "he\ufffdllo", []string{"hello"}},
		{"private use dropped", "a\ue000b", []string{"ab"}},
		{"accents stripped after NFD", "E\u0301cole ÉCOLE", []string{"ecole", "ecole"}},
		{"CJK ideographs split, kana kept", "中文かな", []string{"中", "文", "か", "##な"}},
		{"unicode punctuation split", "a«b»c—d", []string{"a", "«", "b", "»", "c", "—", "d"}},
		{"ascii symbols are punctuation", "a^b`c", []string{"a", "^", "b", "`", "c"}},
		{"special token inside word", "foo[MASK]bar", []string{"foo", "[MASK]", "bar"}},
		{"lower-case special not matched", "[mask]", []string{"[", "mask", "]"}},
		{"only specials", "[CLS][SEP]", []string{"[CLS]", "[SEP]"}},
		{"capital I with dot", "İstanbul", []string{"istanbul"}},
		{"only whitespace and controls", " \t\u200b\n ", nil},
		{"100 chars is one word", strings.Repeat("a", 100), tok.Tokenize(strings.Repeat("a", 100))},
		{"101 chars is unknown", strings.Repeat("a", 101), []string{"[UNK]"}},
		{"101 multi-byte chars is unknown", strings.Repeat("é", 101), []string{"[UNK]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tok.Tokenize(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Tokenize(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	if got := tok.Tokenize(strings.Repeat("a", 100)); len(got) == 0 || got[0] == "[UNK]" {
		t.Errorf("100 a's tokenized to %q, want real pieces", got)
	}
}

func TestVocabTxtConfigOptions(t *testing.T) {
	dir := t.TempDir()
	vocab := "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nHello\ncafé\ncafe\n##s\n中\n文\n中文\n"
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("vocab.txt", vocab)
	tests := []struct {
		config string // "" for none
		in     string
		want   []string
	}{
		{"", "Hello Café 中文", []string{"hello", "cafe", "中", "文"}},
		{`{"do_lower_case": false}`, "Hello Café", []string{"Hello", "[UNK]"}},
		{`{"do_lower_case": false, "strip_accents": true}`, "Hello Café", []string{"Hello", "[UNK]"}},
		{`{"do_lower_case": true, "strip_accents": false}`, "Hello Café", []string{"hello", "café"}},
		{`{"tokenize_chinese_chars": false}`, "中文", []string{"中文"}},
		{`{"do_lower_case": true, "strip_accents": null}`, "Cafés", []string{"cafe", "##s"}},
	}
	for _, tc := range tests {
		os.Remove(filepath.Join(dir, "tokenizer_config.json"))
		if tc.config != "" {
			write("tokenizer_config.json", tc.config)
		}
		tok, err := Load(dir)
		if err != nil {
			t.Fatalf("config %s: %v", tc.config, err)
		}
		if got := tok.Tokenize(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("config %s: Tokenize(%q) = %q, want %q", tc.config, tc.in, got, tc.want)
		}
		if tok.CLS() != 2 || tok.SEP() != 3 || tok.PAD() != 0 || tok.MASK() != 4 || tok.UNK() != 1 {
			t.Errorf("config %s: special ids %d %d %d %d %d", tc.config, tok.CLS(), tok.SEP(), tok.PAD(), tok.MASK(), tok.UNK())
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, path, wantSub string
	}{
		{"missing file", filepath.Join(dir, "nope", "vocab.txt"), "nope"},
		{"empty dir", filepath.Dir(write("empty/.keep", "")), "neither tokenizer.json nor vocab.txt"},
		{"empty vocab", write("e/vocab.txt", ""), "e/vocab.txt: empty vocabulary"},
		{"binary vocab", write("b/vocab.txt", "[UNK]\n\x00\x01"), "b/vocab.txt: binary"},
		{"invalid utf8 vocab", write("u/vocab.txt", "[PAD]\n\xff\xfe\n"), "u/vocab.txt: line 2: invalid UTF-8"},
		{"vocab without UNK", write("n/vocab.txt", "[PAD]\n[CLS]\n[SEP]\n[MASK]\nhello\n"), `n/vocab.txt: special token UNK "[UNK]"`},
		{"corrupt json", write("j/tokenizer.json", `{"model": {`), "j/tokenizer.json"},
		{"empty json vocab", write("k/tokenizer.json", `{"model": {"type": "WordPiece", "vocab": {}}}`), "k/tokenizer.json: empty vocabulary"},
		{"BPE json", write("p/tokenizer.json", `{"model": {"type": "BPE", "vocab": {"a": 0}}}`), `model type "BPE"`},
		{"corrupt config", filepath.Dir(write("c/vocab.txt", "[UNK]\n")), "tokenizer_config.json"},
		{"huge id", write("h/tokenizer.json", `{"pre_tokenizer": {"type": "BertPreTokenizer"}, "model": {"vocab": {"[UNK]": 2000000000}}}`), "far beyond"},
	}
	write("c/tokenizer_config.json", `{"do_lower_case": "yes"}`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := Load(tc.path)
			if err == nil {
				t.Fatalf("Load(%s) = %v, want an error", tc.path, tok)
			}
			if !strings.Contains(err.Error(), tc.wantSub) {
				t.Errorf("Load(%s) error %q, want it to contain %q", tc.path, err, tc.wantSub)
			}
		})
	}
}

func TestEncodeWithTruncationAndPadding(t *testing.T) {
	tok := mustLoad(t, tokenizerDir)
	a, b := "the quick brown fox", "jumps over the lazy dog today"
	// a = 4 pieces, b = 6 pieces.
	tests := []struct {
		name      string
		b         *string
		opts      EncodeOpts
		wantA     int // pieces of a kept
		wantB     int
		wantTotal int
		wantErr   bool
	}{
		{"single no cap", nil, EncodeOpts{}, 4, 0, 6, false},
		{"single cut", nil, EncodeOpts{MaxLength: 4}, 2, 0, 4, false},
		{"single exactly specials", nil, EncodeOpts{MaxLength: 2}, 0, 0, 2, false},
		{"single padded", nil, EncodeOpts{MaxLength: 10, Pad: true}, 4, 0, 10, false},
		{"single too short", nil, EncodeOpts{MaxLength: 1}, 0, 0, 0, true},
		{"negative", nil, EncodeOpts{MaxLength: -1}, 0, 0, 0, true},
		{"pad without length", nil, EncodeOpts{Pad: true}, 0, 0, 0, true},
		{"pair fits", &b, EncodeOpts{MaxLength: 13}, 4, 6, 13, false},
		{"pair longer only shrinks", &b, EncodeOpts{MaxLength: 11}, 4, 4, 11, false},
		{"pair both shrink odd", &b, EncodeOpts{MaxLength: 8}, 2, 3, 8, false},
		{"pair both shrink even", &b, EncodeOpts{MaxLength: 7}, 2, 2, 7, false},
		{"pair exactly specials", &b, EncodeOpts{MaxLength: 3}, 0, 0, 3, false},
		{"pair too short", &b, EncodeOpts{MaxLength: 2}, 0, 0, 0, true},
		{"pair padded", &b, EncodeOpts{MaxLength: 20, Pad: true}, 4, 6, 20, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := tok.EncodeWith(a, tc.b, tc.opts)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("want an error, got %v", enc.Tokens)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if enc.Len() != tc.wantTotal || len(enc.TypeIDs) != tc.wantTotal || len(enc.AttentionMask) != tc.wantTotal || len(enc.Tokens) != tc.wantTotal {
				t.Fatalf("lengths %d/%d/%d/%d, want %d", enc.Len(), len(enc.TypeIDs), len(enc.AttentionMask), len(enc.Tokens), tc.wantTotal)
			}
			want := []string{"[CLS]"}
			want = append(want, strings.Fields(a)[:tc.wantA]...)
			want = append(want, "[SEP]")
			wantType := make([]int32, len(want))
			if tc.b != nil {
				want = append(want, strings.Fields(b)[:tc.wantB]...)
				want = append(want, "[SEP]")
				for len(wantType) < len(want) {
					wantType = append(wantType, 1)
				}
			}
			real := len(want)
			for len(want) < tc.wantTotal {
				want = append(want, "[PAD]")
				wantType = append(wantType, 0)
			}
			if !reflect.DeepEqual(enc.Tokens, want) || !reflect.DeepEqual(enc.TypeIDs, wantType) {
				t.Errorf("got %q types %v, want %q types %v", enc.Tokens, enc.TypeIDs, want, wantType)
			}
			for i, m := range enc.AttentionMask {
				if wantM := int32(0); m != map[bool]int32{true: 1, false: wantM}[i < real] {
					t.Errorf("attention[%d] = %d (real tokens %d)", i, m, real)
				}
				if i >= real && enc.IDs[i] != tok.PAD() {
					t.Errorf("ids[%d] = %d, want PAD", i, enc.IDs[i])
				}
			}
		})
	}
}

func TestLongestFirst(t *testing.T) {
	tests := []struct{ na, nb, target, wantA, wantB int }{
		{5, 6, 9, 4, 5},  // golden pair 1
		{7, 4, 9, 5, 4},  // golden pair 2
		{3, 3, 9, 3, 3},  // fits
		{2, 20, 9, 2, 7}, // only the longer shrinks
		{20, 20, 9, 4, 5},
		{20, 20, 0, 0, 0},
		{0, 20, 5, 0, 5},
		{12, 10, 9, 5, 4}, // swap: a is longer and gets the odd token
	}
	for _, tc := range tests {
		a, b := longestFirst(tc.na, tc.nb, tc.target)
		if a != tc.wantA || b != tc.wantB {
			t.Errorf("longestFirst(%d, %d, %d) = %d, %d; want %d, %d", tc.na, tc.nb, tc.target, a, b, tc.wantA, tc.wantB)
		}
	}
}

func FuzzEncode(f *testing.F) {
	for _, s := range []string{"", "Hello, world!", "東京は日本", "\xff\xfe[MASK]", "a\u200bb\ufeff", "[CLS][SEP][PAD]", strings.Repeat("x", 120), "İ\u0307\u0301é"} {
		f.Add(s, "pair")
	}
	tok := mustLoad(f, tokenizerDir)
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, enc := range []Encoding{tok.Encode(a), tok.EncodePair(a, b)} {
			if enc.Len() < 2 || enc.IDs[0] != tok.CLS() || enc.IDs[enc.Len()-1] != tok.SEP() {
				t.Fatalf("encoding of %q does not have [CLS] ... [SEP]: %v", a, enc.IDs)
			}
			for i, id := range enc.IDs {
				if id < 0 || int(id) >= tok.VocabSize() {
					t.Fatalf("id %d out of range in %q", id, a)
				}
				if tok.IDToken(id) != enc.Tokens[i] {
					t.Fatalf("token %q does not match id %d (%q)", enc.Tokens[i], id, tok.IDToken(id))
				}
				if !utf8.ValidString(enc.Tokens[i]) {
					t.Fatalf("invalid UTF-8 token %q", enc.Tokens[i])
				}
			}
		}
		enc, err := tok.EncodeWith(a, &b, EncodeOpts{MaxLength: 8, Pad: true})
		if err != nil || enc.Len() != 8 {
			t.Fatalf("EncodeWith(MaxLength 8, Pad) = %d tokens, %v", enc.Len(), err)
		}
	})
}

func ExampleTokenizer_EncodePair() {
	tok, err := Load("../testdata/hf/tokenizer")
	if err != nil {
		fmt.Println(err)
		return
	}
	enc := tok.EncodePair("How old are you?", "I am six.")
	fmt.Println(enc.Tokens)
	fmt.Println(enc.IDs)
	fmt.Println(enc.TypeIDs)
	// Output:
	// [[CLS] how old are you ? [SEP] i am six . [SEP]]
	// [101 2129 2214 2024 2017 1029 102 1045 2572 2416 1012 102]
	// [0 0 0 0 0 0 0 1 1 1 1 1]
}

func BenchmarkEncode(b *testing.B) {
	tok := mustLoad(b, tokenizerDir)
	s := "The quick brown fox jumps over the lazy dog. Unaffable strangers arrived late, naïvely résuméing façades in Ångström units!"
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		tok.Encode(s)
	}
}

func BenchmarkLoadTokenizerJSON(b *testing.B) {
	for b.Loop() {
		if _, err := Load(filepath.Join(tokenizerDir, "tokenizer.json")); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAddedTokensAndBertProcessing covers tokenizer.json features BERT
// checkpoints use less often: a BertProcessing post-processor, added tokens
// matched in normalized text, single_word and ids beyond the vocabulary.
func TestAddedTokensAndBertProcessing(t *testing.T) {
	const js = `{
 "added_tokens": [
  {"id": 0, "content": "<pad>", "special": true},
  {"id": 1, "content": "<unk>", "special": true},
  {"id": 7, "content": "Emoji", "normalized": true, "single_word": true},
  {"id": 8, "content": "<sep>", "special": true}
 ],
 "normalizer": {"type": "BertNormalizer", "lowercase": true},
 "pre_tokenizer": {"type": "BertPreTokenizer"},
 "post_processor": {"type": "BertProcessing", "sep": ["<sep>", 8], "cls": ["<cls>", 2]},
 "model": {"type": "WordPiece", "unk_token": "<unk>", "vocab": {
  "<pad>": 0, "<unk>": 1, "<cls>": 2, "[MASK]": 3, "hello": 4, "x": 5, "##emoji": 6}}
}`
	dir := t.TempDir()
	p := filepath.Join(dir, "tokenizer.json")
	if err := os.WriteFile(p, []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := `{"pad_token": "<pad>", "mask_token": {"content": "[MASK]"}}`
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := []int32{tok.PAD(), tok.UNK(), tok.CLS(), tok.SEP(), tok.MASK()}; !reflect.DeepEqual(got, []int32{0, 1, 2, 8, 3}) {
		t.Errorf("PAD UNK CLS SEP MASK = %v", got)
	}
	if tok.VocabSize() != 9 || tok.IDToken(7) != "Emoji" || tok.IsSpecial(7) || !tok.IsSpecial(8) {
		t.Errorf("VocabSize %d, IDToken(7) %q, IsSpecial(7) %v", tok.VocabSize(), tok.IDToken(7), tok.IsSpecial(7))
	}
	enc := tok.Encode("Hello EMOJI xemoji")
	if want := []int32{2, 4, 7, 5, 6, 8}; !reflect.DeepEqual(enc.IDs, want) {
		t.Errorf("ids %v %q, want %v", enc.IDs, enc.Tokens, want)
	}
}
