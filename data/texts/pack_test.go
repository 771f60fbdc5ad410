package texts

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/vitbert/vitbert/text"
)

// toyVocab is a test vocabulary: [CLS] is 1, [SEP] is 2.
type toyVocab func(s string) []int32

func (f toyVocab) TokenIDs(s string) []int32 { return f(s) }
func (toyVocab) CLS() int32                  { return 1 }
func (toyVocab) SEP() int32                  { return 2 }

// numVocab maps each word "t<N>" to id N, so tests can read tokens back.
var numVocab = toyVocab(func(s string) []int32 {
	var ids []int32
	for _, w := range strings.Fields(s) {
		n, err := strconv.Atoi(strings.Trim(w, "t.!?"))
		if err == nil {
			ids = append(ids, int32(n))
		}
	}
	return ids
})

// sentence returns a sentence of n words whose ids encode (doc, sent, word)
// as doc*10000 + sent*100 + word + 100 (never a special id).
func sentence(doc, sent, n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = fmt.Sprintf("t%d", doc*10000+sent*100+i+100)
	}
	return strings.Join(w, " ") + "."
}

func docOf(id int32) int  { return int(id-100) / 10000 }
func sentOf(id int32) int { return (int(id-100) % 10000) / 100 }

func TestPackSingleRespectsMaxLengthAndKeepsAllTokens(t *testing.T) {
	// Sentence lengths 3, 4, 2, 9 with MaxLength 8 → 6 tokens of room:
	// [3] (3+4 > 6), [4 2] (=6), the 9 is cut into [6] and [3].
	doc := Document{Sentences: []string{sentence(0, 0, 3), sentence(0, 1, 4), sentence(0, 2, 2), sentence(0, 3, 9)}}
	seqs, err := Pack([]Document{doc}, numVocab, PackOptions{MaxLength: 8})
	if err != nil {
		t.Fatal(err)
	}
	var lens []int
	total := 0
	for _, s := range seqs {
		lens = append(lens, len(s.IDs))
		if s.IDs[0] != numVocab.CLS() || s.IDs[len(s.IDs)-1] != numVocab.SEP() {
			t.Errorf("sequence %v lacks [CLS] … [SEP]", s.IDs)
		}
		for _, ty := range s.TypeIDs {
			if ty != 0 {
				t.Errorf("single sequence has type id %d", ty)
			}
		}
		total += len(s.IDs) - 2
	}
	if !reflect.DeepEqual(lens, []int{5, 8, 8, 5}) || total != 3+4+2+9 {
		t.Errorf("lengths %v (tokens %d), want [5 8 8 5] (18)", lens, total)
	}
	if want := []int32{1, 100, 101, 102, 2}; !reflect.DeepEqual(seqs[0].IDs, want) {
		t.Errorf("first sequence %v, want %v", seqs[0].IDs, want)
	}
}

func pairCorpus() []Document {
	var docs []Document
	for d := 0; d < 30; d++ {
		var doc Document
		for s := 0; s < 3+d%7; s++ {
			doc.Sentences = append(doc.Sentences, sentence(d, s, 2+(d+s)%6))
		}
		docs = append(docs, doc)
	}
	return docs
}

func TestPackPairsSegmentsAndNextSentence(t *testing.T) {
	const maxLen = 20
	seqs, err := Pack(pairCorpus(), numVocab, PackOptions{MaxLength: maxLen, Pairs: true, Seed: 7, ShortSeqProb: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	random := 0
	for i, s := range seqs {
		if len(s.IDs) > maxLen || len(s.IDs) != len(s.TypeIDs) {
			t.Fatalf("seq %d: %d ids, %d types, max %d", i, len(s.IDs), len(s.TypeIDs), maxLen)
		}
		// Layout [CLS] A [SEP] B [SEP] with types 0…0 1…1.
		sep := -1
		for j, id := range s.IDs {
			if id == numVocab.SEP() {
				sep = j
				break
			}
		}
		if s.IDs[0] != numVocab.CLS() || sep < 2 || sep >= len(s.IDs)-2 || s.IDs[len(s.IDs)-1] != numVocab.SEP() {
			t.Fatalf("seq %d: bad layout %v", i, s.IDs)
		}
		for j, ty := range s.TypeIDs {
			if want := int32(0); j > sep {
				want = 1
				if ty != want {
					t.Fatalf("seq %d: type %d at %d, want 1 (sep at %d)", i, ty, j, sep)
				}
			} else if ty != want {
				t.Fatalf("seq %d: type %d at %d, want 0", i, ty, j)
			}
		}
		a, b := s.IDs[1:sep], s.IDs[sep+1:len(s.IDs)-1]
		da := docOf(a[0])
		maxA, minB := 0, 1<<30
		for _, id := range a {
			if docOf(id) != da {
				t.Fatalf("seq %d: A spans documents", i)
			}
			maxA = max(maxA, sentOf(id))
		}
		for _, id := range b {
			minB = min(minB, sentOf(id))
		}
		if s.RandomNext {
			random++
			if docOf(b[0]) == da {
				t.Errorf("seq %d: random B from A's own document %d", i, da)
			}
		} else {
			for _, id := range b {
				if docOf(id) != da {
					t.Fatalf("seq %d: real-next B from another document", i)
				}
			}
			if minB <= maxA {
				t.Errorf("seq %d: B (from sentence %d) does not follow A (to sentence %d)", i, minB, maxA)
			}
		}
	}
	if frac := float64(random) / float64(len(seqs)); len(seqs) < 50 || frac < 0.3 || frac > 0.8 {
		t.Errorf("%d sequences, %.2f random next; want ≥50 and about half", len(seqs), frac)
	}
	again, _ := Pack(pairCorpus(), numVocab, PackOptions{MaxLength: maxLen, Pairs: true, Seed: 7, ShortSeqProb: 0.1})
	if !reflect.DeepEqual(seqs, again) {
		t.Error("packing with the same seed differs")
	}
	other, _ := Pack(pairCorpus(), numVocab, PackOptions{MaxLength: maxLen, Pairs: true, Seed: 8, ShortSeqProb: 0.1})
	if reflect.DeepEqual(seqs, other) {
		t.Error("packing with another seed is identical")
	}
}

func TestPackRejectsTinyMaxLength(t *testing.T) {
	if _, err := Pack(pairCorpus(), numVocab, PackOptions{MaxLength: 4, Pairs: true}); err == nil {
		t.Error("MaxLength 4 with pairs accepted")
	}
}

func TestEncodeSingleAndPair(t *testing.T) {
	tok, err := text.Default()
	if err != nil {
		t.Fatal(err)
	}
	// "one two three" is 3 word pieces: MaxLength 4 keeps [CLS] one two [SEP].
	s, err := Encode(tok, 4, "one two three", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{tok.CLS(), 2028, 2048, tok.SEP()}; !reflect.DeepEqual(s.IDs, want) || !reflect.DeepEqual(s.TypeIDs, []int32{0, 0, 0, 0}) {
		t.Errorf("single: %v %v, want %v and type ids 0", s.IDs, s.TypeIDs, want)
	}
	b := "four"
	if s, err = Encode(tok, 16, "one", &b); err != nil {
		t.Fatal(err)
	}
	if want := []int32{tok.CLS(), 2028, tok.SEP(), 2176, tok.SEP()}; !reflect.DeepEqual(s.IDs, want) || !reflect.DeepEqual(s.TypeIDs, []int32{0, 0, 0, 1, 1}) {
		t.Errorf("pair: %v %v, want %v and type ids 0 0 0 1 1", s.IDs, s.TypeIDs, want)
	}
	if _, err := Encode(tok, 0, "one", nil); err == nil {
		t.Error("MaxLength 0 accepted")
	}
	if _, err := Encode(tok, 2, "one", &b); err == nil {
		t.Error("MaxLength 2 accepted for a pair (3 special tokens)")
	}
}

// wordVocab gives each distinct lower-cased word an id ≥ 10.
func wordVocab() Vocab {
	ids := map[string]int32{}
	return toyVocab(func(s string) []int32 {
		var out []int32
		for _, w := range strings.Fields(strings.ToLower(s)) {
			id, ok := ids[w]
			if !ok {
				id = int32(len(ids) + 10)
				ids[w] = id
			}
			out = append(out, id)
		}
		return out
	})
}

func TestPackDefaultCorpusFillsSequences(t *testing.T) {
	docs, err := DefaultCorpus()
	if err != nil {
		t.Fatal(err)
	}
	words := 0
	for _, d := range docs {
		for _, s := range d.Sentences {
			words += len(strings.Fields(s))
		}
	}
	seqs, err := Pack(docs, wordVocab(), PackOptions{MaxLength: 128})
	if err != nil {
		t.Fatal(err)
	}
	tokens := 0
	for _, s := range seqs {
		if len(s.IDs) > 128 {
			t.Fatalf("sequence of %d tokens", len(s.IDs))
		}
		tokens += len(s.IDs) - 2
	}
	// Single-sequence packing loses no token, and greedy packing of
	// ~25-word sentences into 126 slots fills most of each sequence.
	if tokens != words {
		t.Errorf("packed %d tokens of %d words", tokens, words)
	}
	if fill := float64(tokens) / float64(126*len(seqs)); fill < 0.75 {
		t.Errorf("sequences %.0f%% full, want ≥ 75%%", 100*fill)
	}
	t.Logf("%d documents, %d words → %d sequences of ≤128", len(docs), words, len(seqs))
}

// TestEncodePairMatchesHuggingFaceTruncation is the 6+5-token pair with room
// for 7 (MaxLength 10): Hugging Face's longest_first keeps 4+3, not 3+4.
func TestEncodePairMatchesHuggingFaceTruncation(t *testing.T) {
	tok, err := text.Default()
	if err != nil {
		t.Fatal(err)
	}
	a, b := "one two three four five six", "seven eight nine ten eleven"
	want, err := tok.EncodeWith(a, &b, text.EncodeOpts{MaxLength: 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(tok.Tokenize(a)) + len(tok.Tokenize(b)); got != 11 {
		t.Fatalf("the pair has %d word pieces, want 6+5", got)
	}
	got, err := Encode(tok, 10, a, &b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.IDs, want.IDs) || !reflect.DeepEqual(got.TypeIDs, want.TypeIDs) {
		t.Errorf("Encode = %v %v, want (text.EncodeWith) %v %v", got.IDs, got.TypeIDs, want.IDs, want.TypeIDs)
	}
	// [CLS] one two three four [SEP] seven eight nine [SEP]
	if ids := []int32{101, 2028, 2048, 2093, 2176, 102, 2698, 2809, 3157, 102}; !reflect.DeepEqual(got.IDs, ids) {
		t.Errorf("Encode = %v, want 4+3 tokens %v", got.IDs, ids)
	}
}
