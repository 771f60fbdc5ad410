package text

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// Synthetic vocabulary: ids 0..4 are special (PAD UNK CLS SEP MASK), 5..999 words.
const (
	tPAD, tCLS, tSEP, tMASK = 0, 2, 3, 4
	tVocab                  = 1000
)

func tSpecial(id int32) bool { return id < 5 }

// sequence builds [CLS] w… [SEP] [PAD]… with n words and pad paddings.
func sequence(rng *rand.Rand, n, pad int) []int32 {
	ids := []int32{tCLS}
	for range n {
		ids = append(ids, 5+int32(rng.IntN(tVocab-5)))
	}
	ids = append(ids, tSEP)
	for range pad {
		ids = append(ids, tPAD)
	}
	return ids
}

// checkInvariants verifies what must hold for every masked sequence.
func checkInvariants(t *testing.T, ids []int32, m Masked, cfg MaskConfig) (chosen int) {
	t.Helper()
	if len(m.Inputs) != len(ids) {
		t.Fatalf("Inputs has %d ids, want %d", len(m.Inputs), len(ids))
	}
	if cfg.MaxPredictions > 0 && (len(m.Positions) != cfg.MaxPredictions || len(m.Labels) != cfg.MaxPredictions || len(m.Weights) != cfg.MaxPredictions) {
		t.Fatalf("lengths %d/%d/%d, want MaxPredictions %d", len(m.Positions), len(m.Labels), len(m.Weights), cfg.MaxPredictions)
	}
	isChosen := map[int32]bool{}
	for k, w := range m.Weights {
		if w == 0 {
			if m.Positions[k] != 0 || m.Labels[k] != 0 {
				t.Fatalf("padding slot %d has position %d label %d", k, m.Positions[k], m.Labels[k])
			}
			for _, w2 := range m.Weights[k:] {
				if w2 != 0 {
					t.Fatalf("real prediction after padding: weights %v", m.Weights)
				}
			}
			break
		}
		if w != 1 {
			t.Fatalf("weight %v", w)
		}
		p := m.Positions[k]
		if k > 0 && p <= m.Positions[k-1] {
			t.Fatalf("positions not strictly ascending: %v", m.Positions)
		}
		if tSpecial(ids[p]) {
			t.Fatalf("special id %d at position %d was chosen", ids[p], p)
		}
		if m.Labels[k] != ids[p] {
			t.Fatalf("label %d at position %d, original id %d", m.Labels[k], p, ids[p])
		}
		if in := m.Inputs[p]; in != tMASK && (tSpecial(in) || in < 0 || in >= tVocab) {
			t.Fatalf("replacement %d at position %d is special or out of range", in, p)
		}
		isChosen[p] = true
		chosen++
	}
	for i := range ids {
		if !isChosen[int32(i)] && m.Inputs[i] != ids[i] {
			t.Fatalf("position %d changed (%d → %d) without being chosen", i, ids[i], m.Inputs[i])
		}
	}
	return chosen
}

func TestMaskSequenceStatistics(t *testing.T) {
	cfg := DefaultMaskConfig(tMASK, 40)
	rng := rand.New(rand.NewPCG(1, 2))
	var candidates, chosen, masked, random, kept int
	for range 3000 {
		n := 5 + rng.IntN(120)
		ids := sequence(rng, n, rng.IntN(20))
		m := MaskSequence(ids, tSpecial, tVocab, cfg, rng)
		c := checkInvariants(t, ids, m, cfg)
		if want := min(max(1, int(math.RoundToEven(0.15*float64(n)))), 40); c != want {
			t.Fatalf("%d candidates: chose %d, want %d", n, c, want)
		}
		candidates += n
		chosen += c
		for k := range c {
			switch p := m.Positions[k]; {
			case m.Inputs[p] == tMASK:
				masked++
			case m.Inputs[p] != ids[p]:
				random++
			default:
				kept++
			}
		}
	}
	// Rounding and the floor of one move the rate slightly; 20k+ predictions
	// put the split's standard error near 0.002.
	near := func(name string, got, want, tol float64) {
		if math.Abs(got-want) > tol {
			t.Errorf("%s = %.4f, want %.2f ± %.3f", name, got, want, tol)
		}
	}
	near("chosen rate", float64(chosen)/float64(candidates), 0.15, 0.005)
	// A random draw equal to the original (1/995) counts as kept.
	near("[MASK] share", float64(masked)/float64(chosen), 0.8, 0.01)
	near("random share", float64(random)/float64(chosen), 0.1, 0.01)
	near("kept share", float64(kept)/float64(chosen), 0.1, 0.01)
	t.Logf("%d candidates, %d chosen: %d mask, %d random, %d kept", candidates, chosen, masked, random, kept)
}

func TestMaskSequenceDeterministicPerSeed(t *testing.T) {
	ids := sequence(rand.New(rand.NewPCG(9, 9)), 60, 4)
	cfg := DefaultMaskConfig(tMASK, 12)
	run := func(seed uint64) Masked {
		return MaskSequence(ids, tSpecial, tVocab, cfg, rand.New(rand.NewPCG(seed, 7)))
	}
	a, b, c := run(1), run(1), run(2)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("same seed gave different results:\n%v\n%v", a, b)
	}
	if reflect.DeepEqual(a.Positions, c.Positions) && reflect.DeepEqual(a.Inputs, c.Inputs) {
		t.Errorf("seeds 1 and 2 gave identical masks %v", a.Positions)
	}
	if orig := sequence(rand.New(rand.NewPCG(9, 9)), 60, 4); !reflect.DeepEqual(ids, orig) {
		t.Errorf("MaskSequence modified its input ids")
	}
}

func TestMaskSequenceEdgeCases(t *testing.T) {
	always := MaskConfig{Prob: 0.15, MaskFrac: 1, MaxPredictions: 4, MaskID: tMASK}
	tests := []struct {
		name          string
		ids           []int32
		cfg           MaskConfig
		wantChosen    int
		wantPositions []int32
	}{
		{"no candidates", []int32{tCLS, tSEP, tPAD, tPAD}, always, 0, []int32{0, 0, 0, 0}},
		{"empty", nil, always, 0, []int32{0, 0, 0, 0}},
		{"one candidate is always chosen", []int32{tCLS, 42, tSEP, tPAD}, always, 1, []int32{1, 0, 0, 0}},
		{"zero prob still chooses one", []int32{tCLS, 42, 43, tSEP}, MaskConfig{Prob: 0, MaskFrac: 1, MaxPredictions: 2, MaskID: tMASK}, 1, nil},
		{"cap at MaxPredictions", []int32{tCLS, 10, 11, 12, 13, 14, 15, tSEP}, MaskConfig{Prob: 1, MaskFrac: 1, MaxPredictions: 3, MaskID: tMASK}, 3, nil},
		{"no cap, no padding", []int32{tCLS, 10, 11, 12, 13, tSEP}, MaskConfig{Prob: 1, MaskFrac: 1, MaskID: tMASK}, 4, []int32{1, 2, 3, 4}},
		{"NaN prob", []int32{tCLS, 10, 11, tSEP}, MaskConfig{Prob: math.NaN(), MaskFrac: 1, MaxPredictions: 2, MaskID: tMASK}, 1, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := MaskSequence(tc.ids, tSpecial, tVocab, tc.cfg, rand.New(rand.NewPCG(3, 4)))
			if got := checkInvariants(t, tc.ids, m, tc.cfg); got != tc.wantChosen {
				t.Errorf("chose %d, want %d", got, tc.wantChosen)
			}
			if tc.wantPositions != nil && !reflect.DeepEqual(m.Positions, tc.wantPositions) {
				t.Errorf("positions %v, want %v", m.Positions, tc.wantPositions)
			}
			for k := range tc.wantChosen {
				if m.Inputs[m.Positions[k]] != tMASK {
					t.Errorf("MaskFrac 1 left position %d as %d", m.Positions[k], m.Inputs[m.Positions[k]])
				}
			}
		})
	}
}

func TestMaskSequenceRandomTokensAreNotSpecial(t *testing.T) {
	tok := mustLoad(t, tokenizerDir)
	enc, err := tok.EncodeWith("the quick brown fox jumps over the lazy dog", nil, EncodeOpts{MaxLength: 16, Pad: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := MaskConfig{Prob: 0.5, RandomFrac: 1, MaxPredictions: 8, MaskID: tok.MASK()}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 500 {
		m := MaskSequence(enc.IDs, tok.IsSpecial, tok.VocabSize(), cfg, rng)
		for k, w := range m.Weights {
			if w == 0 {
				continue
			}
			p := m.Positions[k]
			if enc.Tokens[p] == "[CLS]" || enc.Tokens[p] == "[SEP]" || enc.Tokens[p] == "[PAD]" {
				t.Fatalf("chose special %s at %d", enc.Tokens[p], p)
			}
			if in := m.Inputs[p]; tok.IsSpecial(in) || in < 0 || int(in) >= tok.VocabSize() {
				t.Fatalf("random replacement %d (%q) is special or out of range", in, tok.IDToken(in))
			}
		}
	}
}
