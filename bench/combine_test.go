package bench

import (
	"testing"

	"github.com/gomlx/compute"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/train"
)

// The pcgrad and cagrad modes time the pre-training step with that combine
// rule; joint keeps the plain sum.
func TestCombineModesSetTheRule(t *testing.T) {
	p, err := Lookup("micro")
	if err != nil {
		t.Fatal(err)
	}
	for mode, want := range map[string]train.CombineRule{ModeJoint: "", ModePCGrad: train.CombinePCGrad, ModeCAGrad: train.CombineCAGrad} {
		s, tr, err := p.newStepper(compute.MustNew(), mode, Options{Seed: 1, Precision: model.PrecisionF32})
		if err != nil {
			t.Fatal(err)
		}
		if got := tr.Config().Combine.Rule; got != want {
			t.Errorf("%s: combine rule %q, want %q", mode, got, want)
		}
		s.close()
	}
}
