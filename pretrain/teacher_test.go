package pretrain

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/infer"
	"github.com/vitbert/vitbert/model"
)

func TestInputsRoundTrip(t *testing.T) {
	a, b, c, d, e, f, g, h := 1, 2, 3, 4, 5, 6, 7, 8
	text := &TextInputs[*int]{IDs: &a, Segments: &b, Mask: &c, Positions: &d, Labels: &e, Weights: &f}
	image := &ImageInputs[*int]{Pixels: &g, Labels: &h}
	for _, in := range []Inputs[*int]{{Text: text}, {Image: image}, {Text: text, Image: image}} {
		flat := in.Flatten()
		got, err := UnflattenInputs(flat, in.Text != nil, in.Image != nil)
		if err != nil {
			t.Fatal(err)
		}
		if (got.Text == nil) != (in.Text == nil) || got.Text != nil && *got.Text != *in.Text ||
			(got.Image == nil) != (in.Image == nil) || got.Image != nil && *got.Image != *in.Image {
			t.Errorf("round trip of %d inputs changed them", len(flat))
		}
		if _, err := UnflattenInputs(flat[1:], in.Text != nil, in.Image != nil); err == nil || !strings.Contains(err.Error(), "step inputs") {
			t.Errorf("%d inputs for a %d-input step: error %v", len(flat)-1, len(flat), err)
		}
	}
}

// saveRandomModel writes a randomly initialised model directory, its heads'
// output weights scaled up so that its logits differ clearly from a fresh
// student's.
func saveRandomModel(t *testing.T, c model.Config, seed int64, dir string) {
	t.Helper()
	store, err := model.NewStore(compute.MustNew(), &c, seed)
	if err != nil {
		t.Fatal(err)
	}
	w, err := checkpoint.Weights(store, &c)
	if err != nil {
		t.Fatal(err)
	}
	for path, v := range w {
		if strings.HasPrefix(path, "/heads/") && strings.HasSuffix(path, "/output/dense/weights") {
			for i := range v {
				v[i] *= 200
			}
		}
	}
	if err := checkpoint.SaveDir(dir, &c, w); err != nil {
		t.Fatal(err)
	}
}

func values(t *testing.T, x *tensors.Tensor) []float32 {
	t.Helper()
	v, err := tensors.CopyFlatData[float32](x)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// klLoss is τ²·KL(softmax(zt/τ) ‖ softmax(zs/τ)) per row of K logits, then the
// weighted mean (weights nil: all ones): the distillation loss at α = 1.
func klLoss(zs, zt []float32, K int, weights []float32, tau float64) float64 {
	logSoftmax := func(z []float32) []float64 {
		m := math.Inf(-1)
		for _, x := range z {
			m = math.Max(m, float64(x)/tau)
		}
		s := 0.0
		for _, x := range z {
			s += math.Exp(float64(x)/tau - m)
		}
		out := make([]float64, len(z))
		for i, x := range z {
			out[i] = float64(x)/tau - m - math.Log(s)
		}
		return out
	}
	num, den := 0.0, 0.0
	for r := 0; r < len(zs)/K; r++ {
		w := 1.0
		if weights != nil {
			w = float64(weights[r])
		}
		ls, lt := logSoftmax(zs[r*K:(r+1)*K]), logSoftmax(zt[r*K:(r+1)*K])
		kl := 0.0
		for k := range K {
			kl += math.Exp(lt[k]) * (lt[k] - ls[k])
		}
		num += w * tau * tau * kl
		den += w
	}
	return num / den
}

// TestTeachersRunInGraph distils from two random teachers with α = 1, so that
// the first step's losses are the KL terms alone, and checks them against the
// KL computed on the host from the teachers' and the student's logits of a
// separate forward pass; the stream carries no logits, and the teachers'
// weights do not move.
func TestTeachersRunInGraph(t *testing.T) {
	dir := t.TempDir()
	c := micro(t, ModeJoint, 5)
	c.DistillText = Distill{Teacher: filepath.Join(dir, "bert"), Alpha: 1, Tau: 2}
	c.DistillImage = Distill{Teacher: filepath.Join(dir, "vit"), Alpha: 1, Tau: 3}
	// The teachers: the student's sizes, two blocks, their own heads.
	tm := c.Model
	tm.Layers = 2
	tc, ic := tm, tm
	tc.ImageSize = 0
	tc.AddHead(model.PaperHead("lm", model.HeadMLM, "text", tm.VocabSize))
	ic.VocabSize = 0
	ic.AddHead(model.PaperHead("classes", model.HeadClassify, "image", 10))
	saveRandomModel(t, tc, 11, c.DistillText.Teacher)
	saveRandomModel(t, ic, 12, c.DistillImage.Teacher)

	backend := compute.MustNew()
	s, err := NewSetup(backend, c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Trainer.Close()
	in, err := s.Stream.NextInputs()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(in.Flatten()); n != 8 {
		t.Fatalf("the stream gives %d inputs per step, want 8 (6 text, 2 image; no logits)", n)
	}
	// References: every model's logits from its own forward pass.
	sw, err := checkpoint.Weights(s.Store, &s.Config.Model)
	if err != nil {
		t.Fatal(err)
	}
	forward := func(m *checkpoint.Model, head string) (text, image []float32) {
		t.Helper()
		p, err := infer.New(backend, m)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := m.Config.Head(head)
		if h.Modality == "text" {
			x := in.Text
			o, err := p.Text(head, x.IDs.Value().([][]int32), x.Segments.Value().([][]int32), x.Mask.Value().([][]int32), x.Positions.Value().([][]int32))
			if err != nil {
				t.Fatal(err)
			}
			return o.Logits, nil
		}
		o, err := p.Image(head, values(t, in.Image.Pixels), in.Image.Pixels.Shape().Dim(0))
		if err != nil {
			t.Fatal(err)
		}
		return nil, o.Logits
	}
	student := &checkpoint.Model{Config: s.Config.Model, Weights: sw}
	zsText, _ := forward(student, MLMHead)
	_, zsImage := forward(student, ImageHead)
	load := func(d string) *checkpoint.Model {
		m, err := checkpoint.LoadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ztText, _ := forward(load(c.DistillText.Teacher), "lm")
	_, ztImage := forward(load(c.DistillImage.Teacher), "classes")
	wantText := klLoss(zsText, ztText, tm.VocabSize, values(t, in.Text.Weights), c.DistillText.Tau)
	wantImage := klLoss(zsImage, ztImage, 10, nil, c.DistillImage.Tau)

	frozen := s.Store.GetVariable("/" + TextTeacherScope + "/encoder/layer_1/mlp_norm/layer_normalization/gain")
	if frozen == nil {
		t.Fatal("no text teacher variable in the store")
	}
	v, _ := frozen.Value()
	frozenBefore := values(t, v)

	res, err := s.Trainer.Step(in.Flatten()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct {
		name      string
		got, want float64
	}{{"text", res.LossText, wantText}, {"image", res.LossImage, wantImage}} {
		if rel := math.Abs(l.got-l.want) / l.want; !(rel < 1e-4) {
			t.Errorf("%s distillation loss %.6g, host KL from separate forward passes %.6g", l.name, l.got, l.want)
		}
	}
	for v := range s.Store.IterVariables() {
		if strings.HasPrefix(v.Path(), "/optimizer/") && (strings.Contains(v.Path(), "/"+TextTeacherScope+"/") || strings.Contains(v.Path(), "/"+ImageTeacherScope+"/")) {
			t.Errorf("the optimiser trains a teacher variable: %s", v.Path())
		}
	}
	v, _ = frozen.Value()
	after := values(t, v)
	for i := range after {
		if after[i] != frozenBefore[i] {
			t.Fatalf("a frozen teacher weight moved: %g → %g", frozenBefore[i], after[i])
		}
	}
}

// The small presets tie the MLM output layer to the word embeddings; the
// head then has its own bias and no output matrix.
func TestTiedMLMPreset(t *testing.T) {
	for name, want := range map[string]bool{"tiny": true, "small": true, "base": false} {
		c, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		if c.TiedMLM != want {
			t.Errorf("preset %s: tied_mlm %v, want %v", name, c.TiedMLM, want)
		}
	}
	for _, tied := range []bool{true, false} {
		c := micro(t, ModeText, 1)
		c.TiedMLM = tied
		s, err := NewSetup(compute.MustNew(), c)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := s.Config.Model.Head(MLMHead)
		hasMatrix := s.Store.GetVariable("/heads/mlm/output/dense/weights") != nil
		hasBias := s.Store.GetVariable("/heads/mlm/output/biases") != nil
		if h.Tied != tied || hasMatrix == tied || hasBias != tied {
			t.Errorf("tied_mlm %v: head tied %v, output matrix %v, own bias %v", tied, h.Tied, hasMatrix, hasBias)
		}
		s.Trainer.Close()
	}
}
