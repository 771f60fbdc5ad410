package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/compute"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/pretrain"
	"github.com/vitbert/vitbert/serve"
)

// testOptions keep the compiled shapes few: batches of 1, 2 and 4, texts of
// 16, 32 and the model's maximum.
func testOptions() serve.Options {
	o := serve.DefaultOptions()
	o.MaxBatch, o.Lengths = 4, []int{16, 32}
	return o
}

// startServer serves name=dir pairs on an httptest server after warm-up.
func startServer(t *testing.T, opts serve.Options, limits serve.Limits, specs ...string) (*httptest.Server, *serve.Server) {
	t.Helper()
	b, err := compute.New()
	if err != nil {
		t.Fatal(err)
	}
	var ms []*serve.Model
	for _, spec := range specs {
		name, dir := parseModel(spec)
		m, err := serve.LoadModel(b, name, dir, "", opts)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	if limits.MaxBody == 0 {
		limits.MaxBody = 1 << 20
	}
	srv, err := serve.New(ms, limits)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Warmup(); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return ts, srv
}

func postJSON(t *testing.T, url string, body any) (int, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, "POST", url, "application/json", bytes.NewReader(b))
}

func do(t *testing.T, method, url, ctype string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func mustOK(t *testing.T, what string, status int, body []byte, v any) {
	t.Helper()
	if status != 200 {
		t.Fatalf("%s: status %d: %s", what, status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, body)
	}
}

// predicted runs vitbert predict --json --hidden and returns its logits and
// hidden states as nested float64 slices.
type predicted struct {
	Logits [][]any       `json:"logits"`
	Hidden [][][]float64 `json:"last_hidden_state"`
}

func runPredictJSON(t *testing.T, args ...string) predicted {
	t.Helper()
	out, err := capture(t, runPredict, append(args, "--json", "--hidden")...)
	if err != nil {
		t.Fatalf("predict %v: %v", args, err)
	}
	var p predicted
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("predict %v: %v\n%.300s", args, err, out)
	}
	return p
}

// probs is the softmax of logits, computed here independently of the code under test.
func probs(logits []float64) []float64 {
	m := math.Inf(-1)
	for _, v := range logits {
		m = math.Max(m, v)
	}
	out := make([]float64, len(logits))
	s := 0.0
	for i, v := range logits {
		out[i] = math.Exp(v - m)
		s += out[i]
	}
	for i := range out {
		out[i] /= s
	}
	return out
}

func floats(v any) []float64 {
	var out []float64
	flatten(v, &out)
	return out
}

const tol = 1e-4

func near(a, b float64) bool { return math.Abs(a-b) <= tol*(1+math.Abs(b)) }

// nearP compares probabilities relatively: a random model's are all tiny.
func nearP(a, b float64) bool { return math.Abs(a-b) <= tol*math.Abs(b)+1e-12 }

// checkFillMask compares /v1/fill-mask with predict's MLM logits for each sentence.
func checkFillMask(t *testing.T, ts *httptest.Server, name, dir string, sentences []string) {
	t.Helper()
	const k = 5
	status, body := postJSON(t, ts.URL+"/v1/fill-mask", map[string]any{"model": name, "inputs": sentences, "top_k": k})
	var answers []json.RawMessage
	mustOK(t, "fill-mask", status, body, &answers)
	if len(answers) != len(sentences) {
		t.Fatalf("fill-mask: %d answers for %d sentences", len(answers), len(sentences))
	}
	for i, s := range sentences {
		nMasks := strings.Count(s, "[MASK]")
		var perMask [][]serve.Fill
		if nMasks == 1 {
			var one []serve.Fill
			if err := json.Unmarshal(answers[i], &one); err != nil {
				t.Fatalf("fill-mask %q: %v: %s", s, err, answers[i])
			}
			perMask = [][]serve.Fill{one}
		} else if err := json.Unmarshal(answers[i], &perMask); err != nil {
			t.Fatalf("fill-mask %q: %v: %s", s, err, answers[i])
		}
		p := runPredictJSON(t, "--model", dir, "--text", s)
		if len(perMask) != nMasks || len(p.Logits[0]) != nMasks {
			t.Fatalf("fill-mask %q: %d answers, predict %d rows, %d masks", s, len(perMask), len(p.Logits[0]), nMasks)
		}
		for m := range nMasks {
			want := probs(floats(p.Logits[0][m]))
			idx := make([]int, len(want))
			for j := range idx {
				idx[j] = j
			}
			sort.SliceStable(idx, func(a, b int) bool { return want[idx[a]] > want[idx[b]] })
			for r, f := range perMask[m] {
				if !nearP(f.Score, want[f.Token]) {
					t.Errorf("fill-mask %q mask %d: token %d score %g, predict %g", s, m, f.Token, f.Score, want[f.Token])
				}
				if !nearP(f.Score, want[idx[r]]) {
					t.Errorf("fill-mask %q mask %d rank %d: score %g, predict's rank-%d score %g", s, m, r, f.Score, r, want[idx[r]])
				}
				if f.TokenStr == "" || !strings.Contains(f.Sequence, strings.TrimPrefix(f.TokenStr, "##")) {
					t.Errorf("fill-mask %q: token_str %q, sequence %q", s, f.TokenStr, f.Sequence)
				}
			}
			if len(perMask[m]) != k {
				t.Errorf("fill-mask %q: %d candidates, want %d", s, len(perMask[m]), k)
			}
		}
	}
}

// checkEmbedTexts compares /v1/embed on texts with predict's final hidden states.
func checkEmbedTexts(t *testing.T, ts *httptest.Server, name, dir string, sentences []string) {
	t.Helper()
	for _, pooling := range []string{"cls", "mean"} {
		for _, norm := range []bool{false, true} {
			status, body := postJSON(t, ts.URL+"/v1/embed", map[string]any{"model": name, "inputs": sentences, "pooling": pooling, "normalize": norm})
			var got [][]float64
			mustOK(t, "embed", status, body, &got)
			for i, s := range sentences {
				// Hidden states do not depend on the MLM positions an MLM head reads.
				h := runPredictJSON(t, "--model", dir, "--text", s, "--mlm-positions", "0").Hidden[0]
				checkVector(t, fmt.Sprintf("embed %q %s normalize=%v", s, pooling, norm), got[i], poolRef(h, pooling, norm))
			}
		}
	}
}

// poolRef pools hidden states [S][D] as the API documents: [CLS] or the mean
// of every position, then L2 normalisation when asked.
func poolRef(h [][]float64, pooling string, norm bool) []float64 {
	D := len(h[0])
	v := make([]float64, D)
	if pooling == "cls" {
		copy(v, h[0])
	} else {
		for _, row := range h {
			for k := range v {
				v[k] += row[k] / float64(len(h))
			}
		}
	}
	if norm {
		n := 0.0
		for _, x := range v {
			n += x * x
		}
		for k := range v {
			v[k] /= math.Sqrt(n)
		}
	}
	return v
}

func checkVector(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for k := range want {
		if !near(got[k], want[k]) {
			t.Errorf("%s: [%d] = %g, predict gives %g", what, k, got[k], want[k])
			return
		}
	}
}

// checkLabels compares ranked labels with predict's logits for one input.
func checkLabels(t *testing.T, what string, got []serve.Label, logits []float64) {
	t.Helper()
	want := probs(logits)
	if len(got) != len(want) {
		t.Fatalf("%s: %d labels, want %d", what, len(got), len(want))
	}
	for r, l := range got {
		var i int
		if _, err := fmt.Sscanf(l.Label, "LABEL_%d", &i); err != nil {
			i = -1
		}
		if i < 0 || i >= len(want) {
			continue // a named label: checked by score order below
		}
		if !nearP(l.Score, want[i]) {
			t.Errorf("%s: %s score %g, predict %g", what, l.Label, l.Score, want[i])
		}
		if r > 0 && l.Score > got[r-1].Score {
			t.Errorf("%s: labels not sorted by score", what)
		}
	}
}

// checkImages compares classify-image (multipart and base64) and embed on
// images with predict --image.
func checkImages(t *testing.T, ts *httptest.Server, name, dir string, files []string, head bool) {
	t.Helper()
	args := []string{"--model", dir}
	for _, f := range files {
		args = append(args, "--image", f)
	}
	p := runPredictJSON(t, args...)
	if head {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		mw.WriteField("model", name)
		for _, f := range files {
			w, _ := mw.CreateFormFile("image", filepath.Base(f))
			b, _ := os.ReadFile(f)
			w.Write(b)
		}
		mw.Close()
		status, body := do(t, "POST", ts.URL+"/v1/classify-image", mw.FormDataContentType(), &buf)
		var got [][]serve.Label
		mustOK(t, "classify-image multipart", status, body, &got)
		for i := range files {
			checkLabels(t, "classify-image multipart "+files[i], got[i], floats(p.Logits[i]))
			if len(got[i]) > 0 && !strings.HasPrefix(got[i][0].Label, "LABEL_") {
				checkNamedLabels(t, dir, got[i], floats(p.Logits[i]))
			}
		}
		b, _ := os.ReadFile(files[0])
		status, body = postJSON(t, ts.URL+"/v1/classify-image", map[string]any{"model": name, "inputs": "data:image/png;base64," + base64.StdEncoding.EncodeToString(b), "top_k": 2})
		var one []serve.Label
		mustOK(t, "classify-image base64", status, body, &one)
		if len(one) != 2 || one[0].Label != got[0][0].Label || one[1].Label != got[0][1].Label || !near(one[0].Score, got[0][0].Score) || !near(one[1].Score, got[0][1].Score) {
			t.Errorf("classify-image base64 top 2 = %v, multipart gave %v", one, got[0][:2])
		}
	}
	var b64 []string
	for _, f := range files {
		b, _ := os.ReadFile(f)
		b64 = append(b64, base64.StdEncoding.EncodeToString(b))
	}
	for _, pooling := range []string{"cls", "mean"} {
		status, body := postJSON(t, ts.URL+"/v1/embed", map[string]any{"model": name, "images": b64, "pooling": pooling, "normalize": false})
		var got [][]float64
		mustOK(t, "embed images", status, body, &got)
		for i := range files {
			checkVector(t, "embed image "+files[i]+" "+pooling, got[i], poolRef(p.Hidden[i], pooling, false))
		}
	}
}

// checkNamedLabels checks scores of named labels through the model's label order.
func checkNamedLabels(t *testing.T, dir string, got []serve.Label, logits []float64) {
	t.Helper()
	m, err := checkpoint.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := probs(logits)
	for _, h := range m.Config.TaskHeads {
		if h.Modality != "image" || len(h.Labels) != len(want) {
			continue
		}
		for _, l := range got {
			for i, name := range h.Labels {
				if name == l.Label && !nearP(l.Score, want[i]) {
					t.Errorf("label %s: score %g, predict %g", name, l.Score, want[i])
				}
			}
		}
		return
	}
	t.Errorf("%s: no image head with %d labels", dir, len(want))
}

func writePNG(t *testing.T, dir, name string, w, h int, seed uint64) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(rng.IntN(256)), uint8(x * 255 / w), uint8(y * 255 / h), 255})
		}
	}
	p := filepath.Join(dir, name)
	savePNG(t, p, img)
	return p
}

var sentences = []string{
	"The cat sat on the [MASK].",
	"Paris is the [MASK] of France, a country in [MASK] Europe with a long and storied history of art and food.",
	"[MASK]!",
}

func TestServeMatchesPredictOnHuggingFaceModels(t *testing.T) {
	mlm, cls, vit := fixtures+"bert-tiny/mlm", fixtures+"bert-tiny/cls", fixtures+"vit-tiny/cls"
	ts, _ := startServer(t, testOptions(), serve.Limits{}, "mlm="+mlm, "cls="+cls, "vit="+vit)
	checkFillMask(t, ts, "mlm", mlm, sentences)
	checkEmbedTexts(t, ts, "cls", cls, []string{"hello world", sentences[1]})

	// Texts and text pairs, batched together, against predict one at a time.
	b := "A second segment."
	status, body := postJSON(t, ts.URL+"/v1/classify", map[string]any{"model": "cls",
		"inputs": []any{map[string]string{"text": "The cat sat.", "text_pair": b}, "Go is a programming language."}})
	var got [][]serve.Label
	mustOK(t, "classify", status, body, &got)
	p1 := runPredictJSON(t, "--model", cls, "--text", "The cat sat.", "--text-pair", b)
	p2 := runPredictJSON(t, "--model", cls, "--text", "Go is a programming language.")
	checkLabels(t, "classify pair", got[0], floats(p1.Logits[0]))
	checkLabels(t, "classify text", got[1], floats(p2.Logits[0]))
	status, body = postJSON(t, ts.URL+"/v1/classify", map[string]any{"model": "cls", "inputs": "Go is a programming language.", "top_k": 1})
	var top []serve.Label
	mustOK(t, "classify one", status, body, &top)
	if len(top) != 1 || top[0].Label != got[1][0].Label || !near(top[0].Score, got[1][0].Score) {
		t.Errorf("classify top_k 1 = %v, want %v", top, got[1][0])
	}

	dir := t.TempDir()
	files := []string{writePNG(t, dir, "a.png", 45, 30, 1), writePNG(t, dir, "b.png", 17, 17, 2)}
	checkImages(t, ts, "vit", vit, files, true)

	// Many clients at once get the same answers as one at a time.
	want := map[string][]serve.Label{}
	texts := []string{"one", "two words", "three little words", "a somewhat longer text of several words"}
	for _, s := range texts {
		status, body := postJSON(t, ts.URL+"/v1/classify", map[string]any{"model": "cls", "inputs": s})
		var l []serve.Label
		mustOK(t, "classify", status, body, &l)
		want[s] = l
	}
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() {
			s := texts[i%len(texts)]
			status, body := postJSON(t, ts.URL+"/v1/classify", map[string]any{"model": "cls", "inputs": s})
			var l []serve.Label
			if status != 200 || json.Unmarshal(body, &l) != nil {
				t.Errorf("concurrent classify: %d %s", status, body)
				return
			}
			for k := range l {
				if l[k].Label != want[s][k].Label || !near(l[k].Score, want[s][k].Score) {
					t.Errorf("concurrent classify %q: %v, alone %v", s, l, want[s])
					return
				}
			}
		})
	}
	wg.Wait()
}

// pretrainedModel trains a micro unified model for two steps with vitbert's
// pre-training and returns its model directory.
func pretrainedModel(t *testing.T) string {
	t.Helper()
	c, err := pretrain.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	c.Mode, c.Steps = pretrain.ModeJoint, 2
	c.Model.Hidden, c.Model.Layers, c.Model.Heads, c.Model.MLP = 32, 1, 2, 64
	c.Model.MaxTextLength, c.Model.PatchSize = 32, 7
	c.TextBatch, c.ImageBatch = 4, 4
	c.CheckpointEvery = 0
	out := t.TempDir()
	if err := pretrain.Run(context.Background(), compute.MustNew(), c, pretrain.Options{OutDir: out, Quiet: true}); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(out, pretrain.ModelDir)
}

func TestServeMatchesPredictOnPretrainedModel(t *testing.T) {
	dir := pretrainedModel(t)
	ts, _ := startServer(t, testOptions(), serve.Limits{}, "joint="+dir)
	checkFillMask(t, ts, "joint", dir, []string{"The cat sat on the [MASK].", "[MASK] and [MASK] are here."})
	checkEmbedTexts(t, ts, "joint", dir, []string{"hello world"})
	tmp := t.TempDir()
	checkImages(t, ts, "joint", dir, []string{writePNG(t, tmp, "a.png", 28, 28, 3), writePNG(t, tmp, "b.png", 64, 40, 4)}, true)
	// The model has no text classification head.
	status, body := postJSON(t, ts.URL+"/v1/classify", map[string]any{"inputs": "x"})
	if status != 404 || !strings.Contains(string(body), "no text head") {
		t.Errorf("classify on a model without a text head: %d %s", status, body)
	}
}
