package bench

import (
	"math"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/train"
)

// hand is a preset small enough to count by hand: one block, D=4, 2 heads,
// MLP 8; one text of 4 tokens with 1 MLM position (round(0.15·4)=1) over a
// vocabulary of 10; one 4×4 grey image in 2×2 patches (N=4) and 3 classes.
var hand = Preset{Name: "hand", Layers: 1, Hidden: 4, Heads: 2, MLP: 8, TextLen: 4,
	ImageSize: 4, Channels: 1, PatchSize: 2, TextBatch: 1, ImageBatch: 1, Classes: 3, Vocab: 10}

func TestFLOPsByHand(t *testing.T) {
	// Text block, S=4 tokens, D=4, M=8:
	//   Q,K,V,O projections 4 × 2·4·4·4 = 512
	//   QKᵀ and AV          2 × 2·4·4·4 = 256
	//   MLP                 2 × 2·4·4·8 = 512     → 1280
	// MLM head on 1 row: 2·1·4·4 + 2·1·4·10 = 32 + 80 = 112 → text forward 1392.
	// Image: patch projection 2·4 patches·(1·2·2)·4 = 128;
	//   block with S=5: 4 × 2·5·4·4 = 640, 2 × 2·5·5·4 = 400, 2 × 2·5·4·8 = 640 → 1680;
	//   head on [CLS]: 2·4·4 + 2·4·3 = 56 → image forward 1864.
	// Training: 3·(1392+1864) student + 1392 + 1864 teachers = 4·3256 = 13024.
	tests := []struct {
		mode string
		want float64
	}{
		{ModeInferText, 1392},
		{ModeInferImage, 1864},
		{ModeJoint, 13024},
		{ModeGradMask, 13024},
	}
	for _, tc := range tests {
		if got := hand.FLOPs(tc.mode); got != tc.want {
			t.Errorf("FLOPs(%s) = %g, want %g", tc.mode, got, tc.want)
		}
	}
	if got := hand.SamplesPerStep(ModeJoint); got != 2 {
		t.Errorf("SamplesPerStep(joint) = %d, want 2", got)
	}
}

func TestPresets(t *testing.T) {
	tests := []struct {
		name          string
		predictions   int
		patches       int
		batch, layers int
	}{
		{"tiny", 10, 64, 16, 2},
		{"small", 19, 64, 32, 4},
		{"base", 19, 196, 8, 12},
	}
	for _, tc := range tests {
		p, err := Lookup(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if p.Predictions() != tc.predictions || p.NumPatches() != tc.patches || p.TextBatch != tc.batch || p.Layers != tc.layers {
			t.Errorf("%s: P=%d N=%d batch=%d layers=%d, want %d %d %d %d", tc.name, p.Predictions(), p.NumPatches(),
				p.TextBatch, p.Layers, tc.predictions, tc.patches, tc.batch, tc.layers)
		}
		c := p.ModelConfig()
		if err := c.Validate(); err != nil {
			t.Errorf("%s model: %v", tc.name, err)
		}
	}
	if _, err := Lookup("huge"); err == nil {
		t.Error("Lookup(huge) succeeded")
	}
	if _, err := ParseList("joint, infer-text", Modes, "mode"); err != nil {
		t.Error(err)
	}
	if _, err := ParseList("joint,train", Modes, "mode"); err == nil {
		t.Error("ParseList accepted an unknown mode")
	}
}

func TestBatch(t *testing.T) {
	p, _ := Lookup("tiny")
	b := p.NewBatch(3)
	ids := tensors.MustCopyFlatData[int32](b.Text.IDs)
	mask := tensors.MustCopyFlatData[int32](b.Text.Mask)
	pos := tensors.MustCopyFlatData[int32](b.Text.Positions)
	lab := tensors.MustCopyFlatData[int32](b.Text.Labels)
	L, P := p.TextLen, p.Predictions()
	if b.NumMaskedOK != p.TextBatch*P {
		t.Errorf("%d of %d masked positions are real tokens", b.NumMaskedOK, p.TextBatch*P)
	}
	if b.NumPadded == 0 {
		t.Error("no padding in the batch")
	}
	for r := range p.TextBatch {
		if ids[r*L] != clsID {
			t.Errorf("text %d starts with %d, not [CLS]", r, ids[r*L])
		}
		for k := range P {
			j := int(pos[r*P+k])
			if ids[r*L+j] != maskID || mask[r*L+j] != 1 || lab[r*P+k] < 1000 || lab[r*P+k] >= 30000 {
				t.Errorf("text %d position %d: id %d mask %d label %d", r, j, ids[r*L+j], mask[r*L+j], lab[r*P+k])
			}
			if k > 0 && pos[r*P+k] <= pos[r*P+k-1] {
				t.Errorf("text %d: positions not increasing: %v", r, pos[r*P:(r+1)*P])
			}
		}
	}
}

// TestRunMicro is the smoke test: one timed step of every mode of the micro
// preset, with sane numbers.
func TestRunMicro(t *testing.T) {
	p, err := Lookup("micro")
	if err != nil {
		t.Fatal(err)
	}
	backend := compute.MustNew()
	for _, mode := range Modes {
		r, err := Run(backend, p, mode, Options{Steps: 1, Warmup: 0, Seed: 1})
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if !(r.MedianMs > 0) || !(r.GFLOPs > 0) || !(r.PeakRSSMB > 0) || r.Steps != 1 || len(r.TimesMs) != 1 ||
			r.Devices != 1 || r.Mesh {
			t.Errorf("%s: implausible result %+v", mode, r)
		}
		want := float64(p.SamplesPerStep(mode)) / (r.MedianMs / 1e3)
		if math.Abs(r.SamplesPerSec-want) > 1e-2*want {
			t.Errorf("%s: samples/s %g, want %g", mode, r.SamplesPerSec, want)
		}
	}
	if _, err := Run(backend, p, "train", Options{Steps: 1}); err == nil {
		t.Error("unknown mode accepted")
	}
	if _, err := Run(backend, p, ModeJoint, Options{Steps: 0}); err == nil {
		t.Error("zero steps accepted")
	}
}

// The device options: a batch the devices do not split evenly, a negative
// count, and more devices than the backend has are errors; a one-device
// mesh runs where the backend has distributed execution (XLA) and is
// refused with an error on the pure-Go backend.
func TestRunDevices(t *testing.T) {
	p, err := Lookup("micro") // batches 2 + 2
	if err != nil {
		t.Fatal(err)
	}
	backend := compute.MustNew()
	for _, tc := range []struct {
		opt  Options
		want string
	}{
		{Options{Steps: 1, Devices: -1}, "devices must be >= 0"},
		{Options{Steps: 1, Devices: 4}, "the batches (text 2, image 2) must be divisible by devices 4"},
		{Options{Steps: 1, Devices: backend.NumDevices() + 1}, "device(s)"},
	} {
		if _, err := Run(backend, p, ModeJoint, tc.opt); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("devices %d: error %v, want %q", tc.opt.Devices, err, tc.want)
		}
	}
	r, err := Run(backend, p, ModeGradMask, Options{Steps: 1, Devices: 1, Mesh: true})
	if train.CheckDevices(backend, 1) != nil {
		if err == nil || !strings.Contains(err.Error(), "cannot run a distributed (AutoSharding) step") {
			t.Errorf("one-device mesh without distributed execution: error %v", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if r.Devices != 1 || !r.Mesh || !(r.MedianMs > 0) {
		t.Errorf("one-device mesh: %+v", r)
	}
}

// TestForceMask checks that gradmask mode runs with an active random mask of
// ratio 0.5 on every shared parameter, and only on those.
func TestForceMask(t *testing.T) {
	p, _ := Lookup("micro")
	s, tr, err := p.newStepper(compute.MustNew(), ModeGradMask, Options{Seed: 1, Precision: model.PrecisionF32})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if err := ForceMask(tr, 0.5, 7); err == nil {
		t.Error("ForceMask before the first step succeeded")
	}
	if err := s.step(); err != nil {
		t.Fatal(err)
	}
	if err := ForceMask(tr, 0.5, 7); err != nil {
		t.Fatal(err)
	}
	if err := s.step(); err != nil {
		t.Fatal(err)
	}
	params := tr.Mask().Params()
	if len(params) == 0 {
		t.Fatal("no shared parameters")
	}
	zeros, total := 0, 0
	for _, v := range params {
		if !strings.HasPrefix(v.Path(), "/encoder/") {
			t.Errorf("masked parameter %s is not in the shared encoder", v.Path())
		}
		val, err := tr.Mask().MaskValues(v)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range val {
			if x == 0 {
				zeros++
			}
			total++
		}
	}
	if share := float64(zeros) / float64(total); math.Abs(share-0.5) > 0.05 {
		t.Errorf("mask zero share %.3f over %d entries, want about 0.5", share, total)
	}
	active, err := tr.Store().GetVariable(maskActivePath).Value()
	if err != nil {
		t.Fatal(err)
	}
	if tensors.ToScalar[float32](active) != 1 {
		t.Error("mask not active")
	}
}
