package text

import (
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// TrainOptions configures TrainWordPiece.
type TrainOptions struct {
	// VocabSize is the size to reach, special tokens included. The vocabulary
	// can end larger when the corpus has more distinct characters (every
	// character is kept, as the tokenizers library does without
	// limit_alphabet), or smaller when no pair is left to merge.
	VocabSize int
	// MinFrequency stops training at the first pair seen fewer times (0 or 1:
	// any pair seen at least once is merged).
	MinFrequency int
	// prefix is the continuing-subword prefix ("##"); tests set "" to compare
	// with the tokenizers library's plain BPE trainer.
	prefix *string
}

// SpecialTokens are the special tokens a trained vocabulary starts with, ids 0
// to 4 in this order.
var SpecialTokens = []string{defaultPAD, defaultUNK, defaultCLS, defaultSEP, defaultMASK}

// WordPieceTrainer learns a WordPiece vocabulary from text the way the
// tokenizers library's WordPieceTrainer does: texts go through BERT's
// normalisation (uncased: clean text, split CJK ideographs, strip accents,
// lower-case) and pre-tokenisation (whitespace and punctuation), words are
// counted, and BPE merges are learned on the words spelled as characters with
// every character but the first carrying the "##" prefix; each merge of a
// and b adds the token a+b (b without its prefix). The vocabulary is the
// special tokens, then the characters in code-point order, then the
// "##"-characters and the merged tokens in the order they were made.
//
// The merge chosen at each step is the pair with the highest count, ties
// going to the smallest pair of ids, as in tokenizers. Unlike tokenizers,
// whose words come out of a hash map, words are visited in sorted order, so
// the ids of the "##"-characters, and through the tie rule the whole
// vocabulary, are the same on every run.
type WordPieceTrainer struct {
	norm   normalizer
	counts map[string]int
	words  []string // scratch for pre-tokenisation
}

// NewWordPieceTrainer returns a trainer with BERT's uncased normalisation.
func NewWordPieceTrainer() *WordPieceTrainer {
	return &WordPieceTrainer{
		norm:   normalizer{cleanText: true, chineseChars: true, stripAccents: true, lowercase: true},
		counts: map[string]int{},
	}
}

// Feed counts the words of one text (a sentence, a line, a document).
// Special tokens written literally in it ("[MASK]") are not counted, as the
// tokenizers library leaves its added tokens out of training.
func (tr *WordPieceTrainer) Feed(s string) {
	for _, tok := range SpecialTokens {
		if strings.Contains(s, tok) {
			s = strings.ReplaceAll(s, tok, " ")
		}
	}
	tr.words = preTokenize(tr.norm.normalize(s), tr.words[:0])
	for _, w := range tr.words {
		tr.counts[w]++
	}
}

// Words is the number of distinct words fed so far.
func (tr *WordPieceTrainer) Words() int { return len(tr.counts) }

// Train learns the vocabulary from the words fed so far and returns its
// tokenizer (uncased BERT normalisation, "##" prefix, [CLS]/[SEP] template).
func (tr *WordPieceTrainer) Train(opt TrainOptions) (*Tokenizer, error) {
	if opt.VocabSize < len(SpecialTokens)+1 {
		return nil, fmt.Errorf("training a vocabulary: size %d leaves no room beside the %d special tokens", opt.VocabSize, len(SpecialTokens))
	}
	if opt.MinFrequency < 0 {
		return nil, fmt.Errorf("training a vocabulary: negative minimum frequency %d", opt.MinFrequency)
	}
	if len(tr.counts) == 0 {
		return nil, errors.New("training a vocabulary: the corpus has no words")
	}
	prefix := "##"
	if opt.prefix != nil {
		prefix = *opt.prefix
	}
	idToTok := trainBPE(tr.counts, opt.VocabSize, opt.MinFrequency, prefix)
	vocab := make(map[string]int32, len(idToTok))
	for i, t := range idToTok {
		vocab[t] = int32(i)
	}
	var added []addedToken
	for i, t := range SpecialTokens {
		added = append(added, addedToken{content: t, id: int32(i), special: true})
	}
	o := defaultOptions()
	o.prefix = prefix
	return build("trained vocabulary", vocab, idToTok, added, o)
}

// pair is two adjacent symbols of a word.
type pair struct{ a, b int32 }

func (p pair) less(q pair) bool { return p.a < q.a || p.a == q.a && p.b < q.b }

// merge is a candidate in the queue, carrying the words it was counted in.
type merge struct {
	p     pair
	count int
	pos   map[int32]struct{}
	seq   int // insertion order: the last tie-break, for determinism
}

type mergeQueue []*merge

func (q mergeQueue) Len() int { return len(q) }
func (q mergeQueue) Less(i, j int) bool {
	a, b := q[i], q[j]
	if a.count != b.count {
		return a.count > b.count
	}
	if a.p != b.p {
		return a.p.less(b.p)
	}
	return a.seq < b.seq
}
func (q mergeQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *mergeQueue) Push(x any)   { *q = append(*q, x.(*merge)) }
func (q *mergeQueue) Pop() any {
	old := *q
	m := old[len(old)-1]
	*q = old[:len(old)-1]
	return m
}

// trainBPE is the tokenizers library's BpeTrainer::do_train with
// continuing_subword_prefix set and no end-of-word suffix, limit on the
// alphabet or on token length; it returns the tokens by id.
func trainBPE(counts map[string]int, vocabSize, minFrequency int, prefix string) []string {
	idToTok := slices.Clone(SpecialTokens)
	ids := map[string]int32{}
	for i, t := range idToTok {
		ids[t] = int32(i)
	}
	add := func(t string) int32 {
		if id, ok := ids[t]; ok {
			return id
		}
		id := int32(len(idToTok))
		idToTok = append(idToTok, t)
		ids[t] = id
		return id
	}
	// The alphabet, in code-point order.
	wordList := make([]string, 0, len(counts))
	alphabet := map[rune]bool{}
	for w := range counts {
		wordList = append(wordList, w)
		for _, r := range w {
			alphabet[r] = true
		}
	}
	slices.Sort(wordList)
	chars := make([]rune, 0, len(alphabet))
	for r := range alphabet {
		chars = append(chars, r)
	}
	slices.Sort(chars)
	for _, r := range chars {
		add(string(r))
	}
	// Words as symbols; "##c" tokens are added as they are met.
	words := make([][]int32, len(wordList))
	wc := make([]int, len(wordList))
	for i, w := range wordList {
		wc[i] = counts[w]
		first := true
		for _, r := range w {
			s := string(r)
			if !first {
				s = prefix + s
			}
			first = false
			words[i] = append(words[i], add(s))
		}
	}
	// Pair counts and where each pair occurs.
	pairCounts := map[pair]int{}
	where := map[pair]map[int32]struct{}{}
	for i, w := range words {
		for j := 0; j+1 < len(w); j++ {
			p := pair{w[j], w[j+1]}
			pairCounts[p] += wc[i]
			if where[p] == nil {
				where[p] = map[int32]struct{}{}
			}
			where[p][int32(i)] = struct{}{}
		}
	}
	q := &mergeQueue{}
	seq := 0
	flush := func() {
		ps := make([]pair, 0, len(where))
		for p := range where {
			ps = append(ps, p)
		}
		slices.SortFunc(ps, func(x, y pair) int {
			if x.less(y) {
				return -1
			}
			if y.less(x) {
				return 1
			}
			return 0
		})
		for _, p := range ps {
			if c := pairCounts[p]; c > 0 {
				heap.Push(q, &merge{p: p, count: c, pos: where[p], seq: seq})
				seq++
			}
		}
		clear(where)
	}
	flush()
	type change struct {
		p     pair
		delta int
		word  int32
	}
	var changes []change
	for len(idToTok) < vocabSize && q.Len() > 0 {
		top := heap.Pop(q).(*merge)
		if c := pairCounts[top.p]; top.count != c {
			top.count, top.seq = c, seq
			seq++
			heap.Push(q, top)
			continue
		}
		if top.count < 1 || top.count < minFrequency {
			break
		}
		newID := add(idToTok[top.p.a] + strings.TrimPrefix(idToTok[top.p.b], prefix))
		positions := make([]int32, 0, len(top.pos))
		for i := range top.pos {
			positions = append(positions, i)
		}
		slices.Sort(positions)
		changes = changes[:0]
		for _, i := range positions {
			w := words[i]
			// Word::merge: replace each non-overlapping (a, b), left to
			// right, reporting the pairs it breaks and forms.
			for j := 0; j+1 < len(w); j++ {
				if w[j] != top.p.a || w[j+1] != top.p.b {
					continue
				}
				if j > 0 {
					changes = append(changes, change{pair{w[j-1], w[j]}, -1, i}, change{pair{w[j-1], newID}, 1, i})
				}
				w[j] = newID
				w = append(w[:j+1], w[j+2:]...)
				if j+1 < len(w) {
					changes = append(changes, change{pair{top.p.b, w[j+1]}, -1, i}, change{pair{newID, w[j+1]}, 1, i})
				}
			}
			words[i] = w
		}
		for _, ch := range changes {
			pairCounts[ch.p] += ch.delta * wc[ch.word]
			if ch.delta > 0 {
				if where[ch.p] == nil {
					where[ch.p] = map[int32]struct{}{}
				}
				where[ch.p][ch.word] = struct{}{}
			}
		}
		flush()
	}
	return idToTok
}
