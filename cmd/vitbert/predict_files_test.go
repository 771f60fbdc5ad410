package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vitbert/vitbert/internal/testutil"
	"github.com/vitbert/vitbert/serve"
)

// answerLine is a line of predict's JSON-lines output.
type answerLine struct {
	Input  map[string]any  `json:"input"`
	Output json.RawMessage `json:"output"`
}

func readAnswers(t *testing.T, path string) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	for i, line := range testutil.ReadJSONL[answerLine](t, path) {
		if line.Input == nil {
			t.Fatalf("%s: line %d has no input", path, i+1)
		}
		out = append(out, line.Output)
	}
	return out
}

// sameNumbers compares two JSON answers: equal structure and strings, numbers within tolerance.
func sameNumbers(t *testing.T, what string, a, b json.RawMessage) {
	t.Helper()
	var x, y any
	json.Unmarshal(a, &x)
	json.Unmarshal(b, &y)
	var walk func(p string, x, y any)
	walk = func(p string, x, y any) {
		switch xv := x.(type) {
		case []any:
			yv, ok := y.([]any)
			if !ok || len(xv) != len(yv) {
				t.Errorf("%s%s: %v vs %v", what, p, x, y)
				return
			}
			for i := range xv {
				walk(p+"/"+string(rune('0'+i%10)), xv[i], yv[i])
			}
		case map[string]any:
			yv, ok := y.(map[string]any)
			if !ok || len(xv) != len(yv) {
				t.Errorf("%s%s: %v vs %v", what, p, x, y)
				return
			}
			for k := range xv {
				walk(p+"/"+k, xv[k], yv[k])
			}
		case float64:
			yv, ok := y.(float64)
			if !ok || !(nearP(xv, yv) || math.Abs(xv-yv) < 1e-5) {
				t.Errorf("%s%s: %v vs %v", what, p, x, y)
			}
		default:
			if x != y {
				t.Errorf("%s%s: %v vs %v", what, p, x, y)
			}
		}
	}
	walk("", x, y)
}

func TestPredictFilesMatchesServer(t *testing.T) {
	mlm, cls, vit := fixtures+"bert-tiny/mlm", fixtures+"bert-tiny/cls", fixtures+"vit-tiny/cls"
	ts, _ := startServer(t, testOptions(), serve.Limits{}, "mlm="+mlm, "cls="+cls, "vit="+vit)
	dir := t.TempDir()

	jsonl := filepath.Join(dir, "masks.jsonl")
	var lines []string
	for _, s := range sentences {
		b, _ := json.Marshal(s)
		lines = append(lines, string(b))
	}
	os.WriteFile(jsonl, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	out := filepath.Join(dir, "masks.out.jsonl")
	if _, err := capture(t, runPredict, "--model", mlm, "--input", jsonl, "--output", out, "--batch-size", "2", "--quiet"); err != nil {
		t.Fatal(err)
	}
	got := readAnswers(t, out)
	status, body := postJSON(t, ts.URL+"/v1/fill-mask", map[string]any{"model": "mlm", "inputs": sentences})
	var want []json.RawMessage
	mustOK(t, "fill-mask", status, body, &want)
	if len(got) != len(want) {
		t.Fatalf("fill-mask: %d answers from the file, %d from the server", len(got), len(want))
	}
	for i := range got {
		sameNumbers(t, "fill-mask "+sentences[i], got[i], want[i])
	}

	csvPath := filepath.Join(dir, "pairs.csv")
	os.WriteFile(csvPath, []byte("text,text_pair\nThe cat sat.,A second segment.\n\"Go, a language\",is fun\n"), 0o644)
	out = filepath.Join(dir, "pairs.out.jsonl")
	if _, err := capture(t, runPredict, "--model", cls, "--input", csvPath, "--output", out, "--top-k", "0", "--quiet"); err != nil {
		t.Fatal(err)
	}
	got = readAnswers(t, out)
	status, body = postJSON(t, ts.URL+"/v1/classify", map[string]any{"model": "cls", "inputs": []map[string]string{
		{"text": "The cat sat.", "text_pair": "A second segment."}, {"text": "Go, a language", "text_pair": "is fun"}}})
	mustOK(t, "classify", status, body, &want)
	for i := range got {
		sameNumbers(t, "classify pair", got[i], want[i])
	}

	imgDir := filepath.Join(dir, "images")
	os.Mkdir(imgDir, 0o755)
	writePNG(t, imgDir, "a.png", 30, 20, 5)
	writePNG(t, imgDir, "b.png", 16, 16, 6)
	os.WriteFile(filepath.Join(imgDir, "notes.txt"), []byte("not an image"), 0o644)
	for _, task := range []string{"classify-image", "embed"} {
		out = filepath.Join(dir, task+".out.jsonl")
		if _, err := capture(t, runPredict, "--model", vit, "--input", imgDir, "--output", out, "--task", task, "--top-k", "0", "--quiet"); err != nil {
			t.Fatal(err)
		}
		got = readAnswers(t, out)
		if len(got) != 2 {
			t.Fatalf("%s: %d answers for the 2 images of the folder", task, len(got))
		}
		for i, name := range []string{"a.png", "b.png"} {
			p := runPredictJSON(t, "--model", vit, "--image", filepath.Join(imgDir, name))
			if task == "embed" {
				var v []float64
				json.Unmarshal(got[i], &v)
				checkVector(t, "embed "+name, v, poolRef(p.Hidden[0], "cls", true))
			} else {
				var l []serve.Label
				json.Unmarshal(got[i], &l)
				checkLabels(t, "classify-image "+name, l, floats(p.Logits[0]))
			}
		}
	}

	bad := []struct {
		args []string
		want string
	}{
		{[]string{"--model", cls, "--input", csvPath}, "--output"},
		{[]string{"--model", cls, "--input", csvPath, "--output", out, "--text", "x"}, "drop --text"},
		{[]string{"--model", cls, "--input", csvPath, "--output", out, "--task", "fill"}, `--task "fill"`},
		{[]string{"--model", cls, "--input", imgDir, "--output", out}, "no image side"},
		{[]string{"--model", vit, "--input", csvPath, "--output", out, "--task", "classify-image"}, "reads image inputs"},
		{[]string{"--model", cls, "--input", filepath.Join(dir, "x.txt"), "--output", out}, "x.txt"},
		{[]string{"--model", cls, "--output", out, "--text", "x"}, "--output goes with --input"},
	}
	for _, tc := range bad {
		if _, err := capture(t, runPredict, append(tc.args, "--quiet")...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: want an error containing %q, got %v", tc.args, tc.want, err)
		}
	}
}
