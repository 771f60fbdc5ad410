package pretrain

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gomlx/compute"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/data/images"
	"github.com/vitbert/vitbert/data/texts"
	"github.com/vitbert/vitbert/infer"
)

func TestSplitDocumentsByDocument(t *testing.T) {
	var docs []texts.Document
	for i := range 40 {
		docs = append(docs, texts.Document{Source: "doc" + string(rune('A'+i)), Sentences: []string{"s"}})
	}
	train, held := SplitDocuments(docs, 0.1)
	if len(held) != 4 || len(train) != 36 {
		t.Fatalf("split 40 documents at 10%% into %d train + %d held out, want 36 + 4", len(train), len(held))
	}
	sources := func(ds []texts.Document) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Source)
		}
		slices.Sort(out)
		return out
	}
	for _, h := range sources(held) {
		if slices.Contains(sources(train), h) {
			t.Errorf("document %s is both held out and trained on", h)
		}
	}
	// The same documents in another order: the same held-out set.
	shuffled := slices.Clone(docs)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	_, held2 := SplitDocuments(shuffled, 0.1)
	if !slices.Equal(sources(held), sources(held2)) {
		t.Errorf("held-out documents depend on the order: %v vs %v", sources(held), sources(held2))
	}
	if tr, h := SplitDocuments(docs[:1], 0.5); len(tr) != 1 || len(h) != 0 {
		t.Errorf("one document: %d train, %d held out; want it trained on", len(tr), len(h))
	}
	if _, h := SplitDocuments(docs, 0.001); len(h) != 1 {
		t.Errorf("a small positive share held out %d documents, want 1", len(h))
	}
}

func TestSplitImages(t *testing.T) {
	ds := &images.Dataset{Name: "toy", Split: "train", N: 20, H: 1, W: 1, C: 1, Classes: []string{"a", "b"}}
	for i := range 20 {
		ds.Pixels = append(ds.Pixels, uint8(i))
		ds.Labels = append(ds.Labels, int32(i%2))
	}
	train, held, err := SplitImages(ds, 0.25)
	if err != nil {
		t.Fatal(err)
	}
	if train.N != 15 || held.N != 5 {
		t.Fatalf("%d train + %d held out, want 15 + 5", train.N, held.N)
	}
	seen := map[uint8]bool{}
	for _, p := range append(slices.Clone(train.Pixels), held.Pixels...) {
		if seen[p] {
			t.Errorf("image %d in both parts", p)
		}
		seen[p] = true
	}
	_, again, _ := SplitImages(ds, 0.25)
	if !slices.Equal(held.Pixels, again.Pixels) {
		t.Errorf("the held-out images changed between calls: %v vs %v", held.Pixels, again.Pixels)
	}
}

// Hand-computed: training tokens a a b c (specials excluded), held-out a d.
func TestUnigramStats(t *testing.T) {
	const cls, sep, a, b, c, d, V = 0, 1, 2, 3, 4, 5, 10
	special := func(id int32) bool { return id == cls || id == sep }
	train := []texts.Sequence{{IDs: []int32{cls, a, a, sep}}, {IDs: []int32{cls, b, c, sep}}}
	held := []texts.Sequence{{IDs: []int32{cls, a, d, sep}}}
	st := unigramStats(train, held, special, V)
	wantH := -(0.5*math.Log(0.5) + 2*0.25*math.Log(0.25))
	wantX := -(math.Log(3.0/14) + math.Log(1.0/14)) / 2
	if st.Tokens != 4 || math.Abs(st.Entropy-wantH) > 1e-12 || math.Abs(st.HeldOutCrossEntropy-wantX) > 1e-12 {
		t.Errorf("stats %+v, want 4 tokens, entropy %.6f, held-out cross-entropy %.6f", st, wantH, wantX)
	}
}

// A run with --eval-every logs the held-out metrics at the right steps, and
// the last ones equal the loss and accuracy of the saved model on the
// held-out batches, computed from a separate forward pass.
func TestHeldOutMetrics(t *testing.T) {
	c := micro(t, ModeJoint, 6)
	c.EvalEvery, c.EvalExamples, c.Data.HeldOut = 4, 8, 0.1
	out := t.TempDir()
	run(t, c, out, Options{})
	rows := readMetrics(t, out)
	keys := []string{MetricHeldOutTextLoss, MetricHeldOutTextAcc, MetricHeldOutImageLoss, MetricHeldOutImageAcc}
	var evalSteps []int
	for _, r := range rows {
		if _, ok := r[MetricHeldOutTextLoss]; ok {
			evalSteps = append(evalSteps, int(r["step"]))
			for _, k := range keys {
				if _, ok := r[k]; !ok {
					t.Errorf("step %v: %s missing", r["step"], k)
				}
			}
		}
	}
	if !slices.Equal(evalSteps, []int{4, 6}) {
		t.Fatalf("held-out metrics at steps %v, want [4 6]", evalSteps)
	}
	last := rows[len(rows)-1]

	// A run stopped early (to be resumed) evaluates only where an
	// uninterrupted one does.
	stopped := filepath.Join(t.TempDir(), "stopped")
	run(t, c, stopped, Options{StopAfter: 5})
	for _, r := range readMetrics(t, stopped) {
		if _, ok := r[MetricHeldOutTextLoss]; ok && r["step"] != 4 {
			t.Errorf("the stopped run evaluated at step %v", r["step"])
		}
	}

	// The reference: the saved model on the held-out batches.
	s, err := NewSetup(compute.MustNew(), c)
	if err != nil {
		t.Fatal(err)
	}
	s.Trainer.Close()
	m, err := checkpoint.LoadDir(filepath.Join(out, ModelDir))
	if err != nil {
		t.Fatal(err)
	}
	p, err := infer.New(compute.MustNew(), m)
	if err != nil {
		t.Fatal(err)
	}
	score := func(logits []float32, K int, labels []int32, weights []float32) (loss, acc float64) {
		var total float64
		for r := range labels {
			row := logits[r*K : (r+1)*K]
			mx := math.Inf(-1)
			best := 0
			for k, x := range row {
				if float64(x) > mx {
					mx, best = float64(x), k
				}
			}
			sum := 0.0
			for _, x := range row {
				sum += math.Exp(float64(x) - mx)
			}
			w := float64(weights[r])
			loss += w * (mx + math.Log(sum) - float64(row[labels[r]]))
			if best == int(labels[r]) {
				acc += w
			}
			total += w
		}
		return loss, acc
	}
	var tl, ta, tw float64
	for step := range len(s.eval.text) {
		x := s.eval.text[step]
		o, err := p.Text(MLMHead, x.IDs.Value().([][]int32), x.Segments.Value().([][]int32), x.Mask.Value().([][]int32), x.Positions.Value().([][]int32))
		if err != nil {
			t.Fatal(err)
		}
		w := values(t, x.Weights)
		l, a := score(o.Logits, m.Config.VocabSize, slices.Concat(x.Labels.Value().([][]int32)...), w)
		tl, ta = tl+l, ta+a
		for _, v := range w {
			tw += float64(v)
		}
	}
	var il, ia, iw float64
	for i, x := range s.eval.image {
		o, err := p.Image(ImageHead, values(t, x.Pixels), x.Pixels.Shape().Dim(0))
		if err != nil {
			t.Fatal(err)
		}
		w := values(t, s.eval.weights[i])
		l, a := score(o.Logits, len(s.Classes), x.Labels.Value().([]int32), w)
		il, ia = il+l, ia+a
		for _, v := range w {
			iw += float64(v)
		}
	}
	if len(s.eval.text) == 0 || len(s.eval.image) == 0 || tw == 0 || iw == 0 {
		t.Fatalf("no held-out batches: %d text, %d image", len(s.eval.text), len(s.eval.image))
	}
	for _, x := range []struct {
		key  string
		want float64
	}{{MetricHeldOutTextLoss, tl / tw}, {MetricHeldOutTextAcc, ta / tw}, {MetricHeldOutImageLoss, il / iw}, {MetricHeldOutImageAcc, ia / iw}} {
		if got := last[x.key]; math.Abs(got-x.want) > 1e-4*math.Max(1, math.Abs(x.want)) {
			t.Errorf("%s at the end: logged %.6g, the saved model gives %.6g", x.key, got, x.want)
		}
	}

	var rec DataRecord
	b, err := os.ReadFile(filepath.Join(out, DataFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Text == nil || rec.Image == nil || len(rec.Text.HeldOutDocuments) == 0 || rec.Image.HeldOut == 0 ||
		!(rec.Text.Unigram.Entropy > 1) || !(rec.Text.Unigram.HeldOutCrossEntropy > rec.Text.Unigram.Entropy) {
		t.Errorf("%s: %s", DataFile, b)
	}
}
