package main

import (
	"encoding/json"
	"image"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vitbert/vitbert/safetensors"
)

const fixtures = "../../testdata/hf/"

// capture runs a command in-process and returns what it printed on stdout.
func capture(t *testing.T, run func([]string) error, args ...string) (string, error) {
	t.Helper()
	var err error
	out := redirect(t, &os.Stdout, func() { err = run(args) })
	return out, err
}

// redirect points *f (os.Stdout or os.Stderr) at a pipe while fn runs and
// returns what was written to it.
func redirect(t *testing.T, f **os.File, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := *f
	*f = w
	done := make(chan string)
	go func() { b, _ := io.ReadAll(r); done <- string(b) }()
	fn()
	w.Close()
	*f = old
	return <-done
}

func flatten(v any, out *[]float64) {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			flatten(e, out)
		}
	case float64:
		*out = append(*out, x)
	}
}

func maxDiff(t *testing.T, got any, want *safetensors.Tensor) float64 {
	t.Helper()
	var g []float64
	flatten(got, &g)
	w, err := want.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	if len(g) != len(w) {
		t.Fatalf("got %d numbers, want %d (shape %v)", len(g), len(w), want.Shape)
	}
	d := 0.0
	for i := range w {
		d = math.Max(d, math.Abs(g[i]-float64(w[i])))
	}
	return d
}

func TestPredictJSONMatchesHuggingFace(t *testing.T) {
	exp, err := safetensors.ReadFile(fixtures + "bert-tiny/expected.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	var inputs struct {
		Sentences []string `json:"sentences"`
		MaxLength int      `json:"max_length"`
	}
	b, _ := os.ReadFile(fixtures + "bert-tiny/inputs.json")
	if err := json.Unmarshal(b, &inputs); err != nil {
		t.Fatal(err)
	}
	pos, _ := exp.Tensors["mlm_positions"].Int64s()
	cases := []struct {
		dir, logits, hidden string
		extra               []string
	}{
		{"bert-tiny/mlm", "mlm_logits_at_positions", "mlm_last_hidden_state", nil},
		{"bert-tiny/cls", "cls_logits", "cls_last_hidden_state", nil},
	}
	for _, tc := range cases {
		args := []string{"--model", fixtures + tc.dir, "--json", "--hidden", "--max-length", "16",
			"--tokenizer", fixtures + "tokenizer/tokenizer.json"}
		for _, s := range inputs.Sentences {
			args = append(args, "--text", s)
		}
		if strings.HasSuffix(tc.dir, "mlm") {
			// The fixture's positions are the same in every row.
			if pos[0] != pos[2] || pos[1] != pos[3] {
				t.Fatalf("fixture positions differ per row: %v", pos)
			}
			args = append(args, "--mlm-positions", strings.Trim(jsonString(pos[:2]), "[]"))
		}
		out, err := capture(t, runPredict, args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.dir, err)
		}
		var res struct {
			Logits any `json:"logits"`
			Hidden any `json:"last_hidden_state"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%s: output is not JSON: %v\n%s", tc.dir, err, out)
		}
		if d := maxDiff(t, res.Logits, exp.Tensors[tc.logits]); d > 1e-4 {
			t.Errorf("%s logits: max diff %g", tc.dir, d)
		}
		if d := maxDiff(t, res.Hidden, exp.Tensors[tc.hidden]); d > 1e-4 {
			t.Errorf("%s hidden: max diff %g", tc.dir, d)
		}
	}

	vexp, err := safetensors.ReadFile(fixtures + "vit-tiny/expected.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	out, err := capture(t, runPredict, "--model", fixtures+"vit-tiny/cls", "--pixels", fixtures+"vit-tiny/expected.safetensors", "--json", "--hidden")
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Logits any `json:"logits"`
		Hidden any `json:"last_hidden_state"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(t, res.Logits, vexp.Tensors["logits"]); d > 1e-4 {
		t.Errorf("vit logits: max diff %g", d)
	}
	if d := maxDiff(t, res.Hidden, vexp.Tensors["last_hidden_state"]); d > 1e-4 {
		t.Errorf("vit hidden: max diff %g", d)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestPredictBadInput(t *testing.T) {
	dir := t.TempDir()
	noPixels := filepath.Join(dir, "other.safetensors")
	if err := safetensors.WriteFile(noPixels, []*safetensors.Tensor{safetensors.NewF32("images", []int{1}, []float32{0})}, nil); err != nil {
		t.Fatal(err)
	}
	wrongSize := filepath.Join(dir, "wrong.safetensors")
	if err := safetensors.WriteFile(wrongSize, []*safetensors.Tensor{safetensors.NewF32("pixel_values", []int{1, 3, 16, 16}, make([]float32, 768))}, nil); err != nil {
		t.Fatal(err)
	}
	nan := filepath.Join(dir, "nan.safetensors")
	px := make([]float32, 1*3*32*32)
	px[7] = float32(math.NaN())
	if err := safetensors.WriteFile(nan, []*safetensors.Tensor{safetensors.NewF32("pixel_values", []int{1, 3, 32, 32}, px)}, nil); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("word ", 100)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--model", fixtures + "vit-tiny/cls", "--pixels", noPixels}, "no tensor pixel_values"},
		{[]string{"--model", fixtures + "vit-tiny/cls", "--pixels", wrongSize}, "pixel_values has shape [1 3 16 16]"},
		{[]string{"--model", fixtures + "vit-tiny/cls", "--pixels", nan}, "non-finite value (NaN at flat index 7)"},
		{[]string{"--model", fixtures + "bert-tiny/cls", "--text", long}, "longer than the model's position table (64)"},
		{[]string{"--model", fixtures + "bert-tiny/cls"}, "exactly one kind of input"},
		{[]string{"--model", dir, "--text", "x"}, "config.json"},
		{[]string{"--model", fixtures + "bert-tiny/mlm", "--text", "no mask here"}, "--mlm-positions"},
		{[]string{"--model", fixtures + "bert-tiny/cls", "--text", "x", "--head", "nope"}, `no head "nope"`},
		{[]string{"--model", fixtures + "vit-tiny/cls", "--image", filepath.Join(dir, "missing.png")}, "missing.png"},
	}
	for _, tc := range cases {
		_, err := capture(t, runPredict, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: want error containing %q, got %v", tc.args, tc.want, err)
		}
	}
}

// An image predicted with the model's preprocessor_config.json gives the
// logits of pixels normalised by hand with that file's mean and std.
func TestPredictUsesPreprocessorConfig(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors"} {
		b, err := os.ReadFile(fixtures + "vit-tiny/cls/" + f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	rgb := [3]uint8{200, 100, 50}
	img := image.NewRGBA(image.Rect(0, 0, 40, 20))
	for y := range 20 {
		for x := range 40 {
			img.Set(x, y, color.RGBA{rgb[0], rgb[1], rgb[2], 255})
		}
	}
	pngPath := filepath.Join(t.TempDir(), "solid.png")
	savePNG(t, pngPath, img)
	mean, std := []float64{0.485, 0.456, 0.406}, []float64{0.229, 0.224, 0.225}
	px := make([]float32, 3*32*32)
	for k := range 3 {
		for i := range 32 * 32 {
			px[k*1024+i] = float32((float64(rgb[k])/255 - mean[k]) / std[k])
		}
	}
	pxPath := filepath.Join(t.TempDir(), "px.safetensors")
	if err := safetensors.WriteFile(pxPath, []*safetensors.Tensor{safetensors.NewF32("pixel_values", []int{1, 3, 32, 32}, px)}, nil); err != nil {
		t.Fatal(err)
	}
	logits := func(args ...string) []float64 {
		out, err := capture(t, runPredict, append([]string{"--model", dir, "--json"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		var res struct{ Logits any }
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		var l []float64
		flatten(res.Logits, &l)
		return l
	}
	diff := func(a, b []float64) float64 {
		d := 0.0
		for i := range a {
			d = math.Max(d, math.Abs(a[i]-b[i]))
		}
		return d
	}
	want := logits("--pixels", pxPath)
	if d := diff(logits("--image", pngPath), want); d < 1e-3 {
		t.Fatalf("without preprocessor_config.json the ImageNet-normalised logits already match (%g): the test cannot tell", d)
	}
	os.WriteFile(filepath.Join(dir, "preprocessor_config.json"), []byte(`{"do_resize": true, "size": {"height": 32, "width": 32},
		"resample": 2, "do_rescale": true, "rescale_factor": 0.00392156862745098, "do_normalize": true,
		"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}`), 0o644)
	if d := diff(logits("--image", pngPath), want); d > 1e-5 {
		t.Errorf("with preprocessor_config.json: logits differ from the hand-normalised pixels by %g", d)
	}
}

func TestPredictChecksTokenizerVocab(t *testing.T) {
	vocab := filepath.Join(t.TempDir(), "vocab.txt")
	os.WriteFile(vocab, []byte("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nday\n"), 0o644)
	_, err := capture(t, runPredict, "--model", fixtures+"bert-tiny/mlm", "--tokenizer", vocab, "--text", "a [MASK] day")
	if err == nil || !strings.Contains(err.Error(), "has 7 tokens but the model's vocabulary has 30522") {
		t.Errorf("bert-tiny with a 7-token vocabulary: want a vocabulary error, got %v", err)
	}
}
