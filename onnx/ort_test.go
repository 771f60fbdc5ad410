//go:build cgo

// The ONNX Runtime tests need cgo (github.com/yalue/onnxruntime_go) and the
// runtime's shared library: $ONNXRUNTIME_SHARED_LIBRARY_PATH, else the copy
// .ci/run installs under the user cache directory. Without either they skip;
// a library named by the variable that does not load is a failure.

package onnx_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"
	ort "github.com/yalue/onnxruntime_go"

	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/infer"
	"github.com/vitbert/vitbert/internal/testutil"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/onnx"
	"github.com/vitbert/vitbert/safetensors"
)

// ortVersion is the ONNX Runtime release whose C API headers
// onnxruntime_go v1.27.0 was built against; .ci/run installs it.
const ortVersion = "1.24.3"

var (
	ortOnce sync.Once
	ortErr  error
	ortSkip string
)

// needORT initialises ONNX Runtime once, or skips the test when no library
// is installed.
func needORT(t *testing.T) {
	t.Helper()
	ortOnce.Do(func() {
		lib := os.Getenv("ONNXRUNTIME_SHARED_LIBRARY_PATH")
		if lib == "" {
			cache, err := os.UserCacheDir()
			if err == nil {
				lib = filepath.Join(cache, "vitbert", "onnxruntime-"+ortVersion, "libonnxruntime.so.1")
			}
			if _, err := os.Stat(lib); err != nil {
				ortSkip = "no ONNX Runtime library: set ONNXRUNTIME_SHARED_LIBRARY_PATH or run .ci/run once (it installs " + lib + ")"
				return
			}
		}
		ort.SetSharedLibraryPath(lib)
		if err := ort.InitializeEnvironment(); err != nil {
			ortErr = fmt.Errorf("loading ONNX Runtime from %s: %w", lib, err)
		}
	})
	if ortSkip != "" {
		t.Skip(ortSkip)
	}
	if ortErr != nil {
		t.Fatal(ortErr)
	}
}

// feed is one set of graph inputs by name.
type feed map[string]ort.Value

func ints64(rows [][]int32) (*ort.Tensor[int64], error) {
	var flat []int64
	for _, r := range rows {
		for _, v := range r {
			flat = append(flat, int64(v))
		}
	}
	return ort.NewTensor(ort.NewShape(int64(len(rows)), int64(len(rows[0]))), flat)
}

// runORT runs the graph in file on the inputs and returns the named outputs.
func runORT(t *testing.T, file string, in feed, outputs []string) map[string]*ort.Tensor[float32] {
	t.Helper()
	var names []string
	var values []ort.Value
	for n, v := range in {
		names = append(names, n)
		values = append(values, v)
	}
	s, err := ort.NewDynamicAdvancedSession(file, names, outputs, nil)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	defer s.Destroy()
	outs := make([]ort.Value, len(outputs))
	if err := s.Run(values, outs); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	res := map[string]*ort.Tensor[float32]{}
	for i, n := range outputs {
		res[n] = outs[i].(*ort.Tensor[float32])
		t.Cleanup(func() { outs[i].Destroy() })
	}
	return res
}

// closeTo compares ONNX Runtime's output with a reference of the given shape.
func closeTo(t *testing.T, what string, got *ort.Tensor[float32], want []float32, wantShape []int) {
	t.Helper()
	shape := got.GetShape()
	if len(shape) != len(wantShape) {
		t.Errorf("%s: shape %v, want %v", what, shape, wantShape)
		return
	}
	for i := range shape {
		if int(shape[i]) != wantShape[i] {
			t.Errorf("%s: shape %v, want %v", what, shape, wantShape)
			return
		}
	}
	testutil.ExpectClose(t, what, got.GetData(), want, 1e-4)
}

// textRun is one text batch for a check.
type textRun struct {
	ids, segments, mask, positions [][]int32
}

func (r textRun) feed(t *testing.T, withPositions bool) feed {
	t.Helper()
	f := feed{}
	for name, rows := range map[string][][]int32{"input_ids": r.ids, "token_type_ids": r.segments, "attention_mask": r.mask} {
		v, err := ints64(rows)
		if err != nil {
			t.Fatal(err)
		}
		f[name] = v
	}
	if withPositions {
		v, err := ints64(r.positions)
		if err != nil {
			t.Fatal(err)
		}
		f[onnx.PositionsInput] = v
	}
	t.Cleanup(func() {
		for _, v := range f {
			v.Destroy()
		}
	})
	return f
}

// matchText exports m's text side and checks every text head's logits and
// the hidden states against vitbert on each batch; it returns the ONNX
// Runtime outputs of the last batch by name.
func matchText(t *testing.T, m *checkpoint.Model, file string, runs []textRun) map[string]*ort.Tensor[float32] {
	t.Helper()
	p, err := infer.New(compute.MustNew(), m)
	if err != nil {
		t.Fatal(err)
	}
	var heads []model.HeadConfig
	mlm := false
	for _, h := range m.Config.TaskHeads {
		if h.Modality == "text" {
			heads = append(heads, h)
			mlm = mlm || h.Kind == model.HeadMLM
		}
	}
	outputs := []string{onnx.HiddenOutput}
	for _, h := range heads {
		outputs = append(outputs, onnx.LogitsOutput(h.Name))
	}
	var got map[string]*ort.Tensor[float32]
	for i, r := range runs {
		got = runORT(t, file, r.feed(t, mlm), outputs)
		for j, h := range heads {
			var pos [][]int32
			if h.Kind == model.HeadMLM {
				pos = r.positions
			}
			want, err := p.Text(h.Name, r.ids, r.segments, r.mask, pos)
			if err != nil {
				t.Fatal(err)
			}
			if j == 0 {
				closeTo(t, fmt.Sprintf("batch %d: text hidden states", i), got[onnx.HiddenOutput], want.Hidden, want.HiddenShape)
			}
			closeTo(t, fmt.Sprintf("batch %d: head %s", i, h.Name), got[onnx.LogitsOutput(h.Name)], want.Logits, want.LogitsShape)
		}
	}
	return got
}

// matchImage does the same for the image side on a batch of pixels.
func matchImage(t *testing.T, m *checkpoint.Model, file string, pixels []float32, batch int) map[string]*ort.Tensor[float32] {
	t.Helper()
	c := &m.Config
	p, err := infer.New(compute.MustNew(), m)
	if err != nil {
		t.Fatal(err)
	}
	px, err := ort.NewTensor(ort.NewShape(int64(batch), int64(c.Channels), int64(c.ImageSize), int64(c.ImageSize)), pixels)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Destroy()
	outputs := []string{onnx.HiddenOutput}
	var heads []model.HeadConfig
	for _, h := range c.TaskHeads {
		if h.Modality == "image" {
			heads = append(heads, h)
			outputs = append(outputs, onnx.LogitsOutput(h.Name))
		}
	}
	got := runORT(t, file, feed{"pixel_values": px}, outputs)
	for j, h := range heads {
		want, err := p.Image(h.Name, pixels, batch)
		if err != nil {
			t.Fatal(err)
		}
		if j == 0 {
			closeTo(t, "image hidden states", got[onnx.HiddenOutput], want.Hidden, want.HiddenShape)
		}
		closeTo(t, "head "+h.Name, got[onnx.LogitsOutput(h.Name)], want.Logits, want.LogitsShape)
	}
	return got
}

func exportOne(t *testing.T, m *checkpoint.Model) []string {
	t.Helper()
	files, err := onnx.Export(filepath.Join(t.TempDir(), "onnx"), &m.Config, m.Weights)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func fixtureRows(t *testing.T, exp *safetensors.File, name string) [][]int32 {
	t.Helper()
	ts := exp.Tensors[name]
	v, err := ts.Int64s()
	if err != nil {
		t.Fatal(err)
	}
	rows := make([][]int32, ts.Shape[0])
	for b := range rows {
		for l := range ts.Shape[1] {
			rows[b] = append(rows[b], int32(v[b*ts.Shape[1]+l]))
		}
	}
	return rows
}

func fixtureFloats(t *testing.T, exp *safetensors.File, name string) ([]float32, []int) {
	t.Helper()
	v, err := exp.Tensors[name].Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v, exp.Tensors[name].Shape
}

// bert-tiny (MLM and classifier): ONNX Runtime reproduces vitbert's logits
// and hidden states, and transformers' (the fixtures' expected outputs).
func TestORTBertTinyMatches(t *testing.T) {
	needORT(t)
	exp, err := safetensors.ReadFile("../testdata/hf/bert-tiny/expected.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	r := textRun{ids: fixtureRows(t, exp, "input_ids"), segments: fixtureRows(t, exp, "token_type_ids"),
		mask: fixtureRows(t, exp, "attention_mask"), positions: fixtureRows(t, exp, "mlm_positions")}
	for _, tc := range []struct{ dir, head, hidden, logits string }{
		{"mlm", checkpoint.MLMHead, "mlm_last_hidden_state", "mlm_logits_at_positions"},
		{"cls", checkpoint.ClassifierHead, "cls_last_hidden_state", "cls_logits"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			m, err := checkpoint.LoadDir("../testdata/hf/bert-tiny/" + tc.dir)
			if err != nil {
				t.Fatal(err)
			}
			files := exportOne(t, m)
			got := matchText(t, m, files[0], []textRun{r})
			v, shape := fixtureFloats(t, exp, tc.hidden)
			closeTo(t, "transformers hidden states", got[onnx.HiddenOutput], v, shape)
			v, shape = fixtureFloats(t, exp, tc.logits)
			closeTo(t, "transformers logits", got[onnx.LogitsOutput(tc.head)], v, shape)
		})
	}
}

// vit-tiny: the same for an image classifier.
func TestORTViTTinyMatches(t *testing.T) {
	needORT(t)
	exp, err := safetensors.ReadFile("../testdata/hf/vit-tiny/expected.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	m, err := checkpoint.LoadDir("../testdata/hf/vit-tiny/cls")
	if err != nil {
		t.Fatal(err)
	}
	px, pxShape := fixtureFloats(t, exp, "pixel_values")
	got := matchImage(t, m, exportOne(t, m)[0], px, pxShape[0])
	v, shape := fixtureFloats(t, exp, "last_hidden_state")
	closeTo(t, "transformers hidden states", got[onnx.HiddenOutput], v, shape)
	v, shape = fixtureFloats(t, exp, "logits")
	closeTo(t, "transformers logits", got[onnx.LogitsOutput(checkpoint.ClassifierHead)], v, shape)
}

// A small unified model (pre-LN as the presets, and post-LN with an
// embedding LayerNorm and tanh-GELU) exports as a text and an image graph
// that reproduce every head; the text graph takes other batch sizes and
// text lengths than those of the first run, and a text whose tokens are all
// masked.
func TestORTJointModelMatches(t *testing.T) {
	needORT(t)
	for _, norm := range []string{model.PreNorm, model.PostNorm} {
		t.Run(norm, func(t *testing.T) {
			m := jointModel(t, norm)
			files := exportOne(t, m)
			if len(files) != 2 {
				t.Fatalf("exported %v, want a text and an image graph", files)
			}
			matchText(t, m, files[0], []textRun{
				{
					ids:       [][]int32{{2, 7, 4, 9, 11, 3, 0, 0}, {2, 5, 5, 4, 30, 39, 17, 3}},
					segments:  [][]int32{{0, 0, 0, 0, 1, 1, 0, 0}, {0, 0, 0, 0, 0, 1, 1, 1}},
					mask:      [][]int32{{1, 1, 1, 1, 1, 1, 0, 0}, {1, 1, 1, 1, 1, 1, 1, 1}},
					positions: [][]int32{{2, 4}, {1, 6}},
				},
				{
					ids:       [][]int32{{2, 8, 3}, {2, 9, 3}, {1, 1, 1}},
					segments:  [][]int32{{0, 0, 0}, {0, 1, 1}, {0, 0, 0}},
					mask:      [][]int32{{1, 1, 1}, {1, 1, 0}, {0, 0, 0}},
					positions: [][]int32{{1, 2, 0}, {0, 1, 1}, {2, 2, 2}},
				},
			})
			const batch = 3
			px := make([]float32, batch*3*8*8)
			for i := range px {
				px[i] = float32(math.Sin(float64(i) * 0.37))
			}
			matchImage(t, m, files[1], px, batch)
		})
	}
}
