package main

import (
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vitbert/vitbert/checkpoint"
)

const fixtures = "../../testdata/hf/"

// capture runs a command in-process and returns what it printed on stdout.
func capture(t *testing.T, run func([]string) error, args ...string) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() { b, _ := io.ReadAll(r); done <- string(b) }()
	err = run(args)
	w.Close()
	os.Stdout = old
	return <-done, err
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

func maxDiff(t *testing.T, got any, want *checkpoint.Tensor) float64 {
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
	exp, err := checkpoint.ReadSafetensors(fixtures + "bert-tiny/expected.safetensors")
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

	vexp, err := checkpoint.ReadSafetensors(fixtures + "vit-tiny/expected.safetensors")
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
	if err := checkpoint.WriteSafetensors(noPixels, []*checkpoint.Tensor{checkpoint.F32("images", []int{1}, []float32{0})}, nil); err != nil {
		t.Fatal(err)
	}
	wrongSize := filepath.Join(dir, "wrong.safetensors")
	if err := checkpoint.WriteSafetensors(wrongSize, []*checkpoint.Tensor{checkpoint.F32("pixel_values", []int{1, 3, 16, 16}, make([]float32, 768))}, nil); err != nil {
		t.Fatal(err)
	}
	nan := filepath.Join(dir, "nan.safetensors")
	px := make([]float32, 1*3*32*32)
	px[7] = float32(math.NaN())
	if err := checkpoint.WriteSafetensors(nan, []*checkpoint.Tensor{checkpoint.F32("pixel_values", []int{1, 3, 32, 32}, px)}, nil); err != nil {
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
