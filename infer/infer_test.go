package infer

import (
	"slices"
	"sync"
	"testing"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/internal/testutil"
	"github.com/vitbert/vitbert/safetensors"
)

const fixtures = "../testdata/hf/"

func rows(t *testing.T, ts *safetensors.Tensor) [][]int32 {
	t.Helper()
	v, err := ts.Int64s()
	if err != nil {
		t.Fatal(err)
	}
	B, L := ts.Shape[0], ts.Shape[1]
	out := make([][]int32, B)
	for b := range out {
		out[b] = make([]int32, L)
		for l := range out[b] {
			out[b][l] = int32(v[b*L+l])
		}
	}
	return out
}

func expectClose(t *testing.T, what string, got []float32, gotShape []int, want *safetensors.Tensor) {
	t.Helper()
	w, err := want.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(w) {
		t.Fatalf("%s: got %d values (shape %v), want %d (shape %v)", what, len(got), gotShape, len(w), want.Shape)
	}
	testutil.ExpectClose(t, what, got, w, 1e-4)
}

// loadPredictor loads the checkpoint directory dir into a Predictor.
func loadPredictor(t *testing.T, backend compute.Backend, dir string) *Predictor {
	t.Helper()
	m, err := checkpoint.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(backend, m)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readExpected reads a fixture's expected.safetensors.
func readExpected(t *testing.T, dir string) *safetensors.File {
	t.Helper()
	exp, err := safetensors.ReadFile(fixtures + dir + "/expected.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	return exp
}

func TestBertTinyMatchesHuggingFace(t *testing.T) {
	exp := readExpected(t, "bert-tiny")
	ids, seg, mask := rows(t, exp.Tensors["input_ids"]), rows(t, exp.Tensors["token_type_ids"]), rows(t, exp.Tensors["attention_mask"])
	backend := compute.MustNew()

	p := loadPredictor(t, backend, fixtures+"bert-tiny/mlm")
	out, err := p.Text(checkpoint.MLMHead, ids, seg, mask, rows(t, exp.Tensors["mlm_positions"]))
	if err != nil {
		t.Fatal(err)
	}
	expectClose(t, "mlm last hidden state", out.Hidden, out.HiddenShape, exp.Tensors["mlm_last_hidden_state"])
	expectClose(t, "mlm logits", out.Logits, out.LogitsShape, exp.Tensors["mlm_logits_at_positions"])

	p = loadPredictor(t, backend, fixtures+"bert-tiny/cls")
	out, err = p.Text(checkpoint.ClassifierHead, ids, seg, mask, nil)
	if err != nil {
		t.Fatal(err)
	}
	expectClose(t, "cls last hidden state", out.Hidden, out.HiddenShape, exp.Tensors["cls_last_hidden_state"])
	expectClose(t, "cls logits", out.Logits, out.LogitsShape, exp.Tensors["cls_logits"])
}

func TestViTTinyMatchesHuggingFace(t *testing.T) {
	exp := readExpected(t, "vit-tiny")
	p := loadPredictor(t, compute.MustNew(), fixtures+"vit-tiny/cls")
	px, err := exp.Tensors["pixel_values"].Float32s()
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Image(checkpoint.ClassifierHead, px, exp.Tensors["pixel_values"].Shape[0])
	if err != nil {
		t.Fatal(err)
	}
	expectClose(t, "vit last hidden state", out.Hidden, out.HiddenShape, exp.Tensors["last_hidden_state"])
	expectClose(t, "vit logits", out.Logits, out.LogitsShape, exp.Tensors["logits"])
}

// TestConcurrentUse runs passes of two heads from many goroutines at once on
// a fresh Predictor: every answer equals the one computed alone. The map
// race it guards against shows only under -race (which needs
// -gcflags=all=-d=checkptr=0: the backend's assembly trips checkptr).
func TestConcurrentUse(t *testing.T) {
	m, err := checkpoint.LoadDir(fixtures + "bert-tiny/cls")
	if err != nil {
		t.Fatal(err)
	}
	backend := compute.MustNew()
	ids, seg, mask := [][]int32{{101, 7592, 102}}, [][]int32{{0, 0, 0}}, [][]int32{{1, 1, 1}}
	alone, err := New(backend, m)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*Output{}
	for _, head := range []string{"", checkpoint.ClassifierHead} {
		if want[head], err = alone.Text(head, ids, seg, mask, nil); err != nil {
			t.Fatal(err)
		}
	}
	p, err := New(backend, m)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			head := []string{"", checkpoint.ClassifierHead}[i%2]
			out, err := p.Text(head, ids, seg, mask, nil)
			if err != nil {
				t.Error(err)
				return
			}
			if !slices.Equal(out.Hidden, want[head].Hidden) || !slices.Equal(out.Logits, want[head].Logits) {
				t.Errorf("head %q: concurrent answer differs from the one computed alone", head)
			}
		})
	}
	wg.Wait()
}
