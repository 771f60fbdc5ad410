package pretrain

import (
	"testing"

	"github.com/vitbert/vitbert/text"
)

// TestTextBatchesAreBERTInputs checks the packed MLM rows: [CLS] first, [SEP]
// after the last real token, [PAD] after that, and every MLM target a real
// token of the row that is not special.
func TestTextBatchesAreBERTInputs(t *testing.T) {
	c := micro(t, ModeText, 1)
	tok, err := text.Default()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := LoadCorpus("embedded")
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewTextData(&c, tok, docs)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := d.Batcher.Batch(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	L, P := tb.L, tb.P
	for r := range tb.B {
		ids, mask := tb.IDs[r*L:(r+1)*L], tb.Mask[r*L:(r+1)*L]
		n := 0
		for _, m := range mask {
			n += int(m)
		}
		if ids[0] != tok.CLS() || ids[n-1] != tok.SEP() {
			t.Errorf("row %d: %v does not run from [CLS] to [SEP]", r, ids[:n])
		}
		for j := n; j < L; j++ {
			if ids[j] != tok.PAD() {
				t.Errorf("row %d: position %d after the text is %d, not [PAD]", r, j, ids[j])
			}
		}
		for k := r * P; k < (r+1)*P; k++ {
			if tb.MLMWeights[k] == 0 {
				continue
			}
			if p := tb.MLMPositions[k]; p <= 0 || int(p) >= n-1 || tok.IsSpecial(tb.MLMLabels[k]) {
				t.Errorf("row %d: MLM target %d at position %d of %d", r, tb.MLMLabels[k], p, n)
			}
		}
	}
}
