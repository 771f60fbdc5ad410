package serve

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/vitbert/vitbert/infer"
)

const fixtures = "../testdata/hf/"

func newServer(t *testing.T, opts Options, limits Limits, warm bool) (*httptest.Server, *Server) {
	t.Helper()
	b := compute.MustNew()
	var ms []*Model
	for _, spec := range [][2]string{{"mlm", "bert-tiny/mlm"}, {"cls", "bert-tiny/cls"}, {"vit", "vit-tiny/cls"}} {
		m, err := LoadModel(b, spec[0], fixtures+spec[1], "", opts)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	srv, err := New(ms, limits)
	if err != nil {
		t.Fatal(err)
	}
	if warm {
		if err := srv.Warmup(); err != nil {
			t.Fatal(err)
		}
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return ts, srv
}

func send(t *testing.T, method, url, ctype string, body []byte, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func pngBytes(t *testing.T, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bombPNG is a PNG header claiming side×side pixels with no image data: a
// server that decoded before checking the size would fail on the data (415)
// or allocate side² pixels first.
func bombPNG(side uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], side)
	binary.BigEndian.PutUint32(ihdr[4:], side)
	ihdr[8], ihdr[9] = 8, 0 // 8-bit grey
	binary.Write(&b, binary.BigEndian, uint32(13))
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func multipartImage(t *testing.T, data []byte) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("model", "vit")
	w, _ := mw.CreateFormFile("image", "x.png")
	w.Write(data)
	mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}

// TestBadRequestsThenGood sends each kind of bad request, checks its status
// and JSON error, and then that a good request still gets its answer.
func TestBadRequestsThenGood(t *testing.T) {
	opts := DefaultOptions()
	opts.MaxBatch, opts.Lengths, opts.MaxInputs, opts.MaxTokens, opts.MaxPixels = 2, []int{16}, 3, 16, 10000
	ts, srv := newServer(t, opts, Limits{MaxBody: 32 << 10}, true)
	js := "application/json"
	bigImage, bigCT := multipartImage(t, pngBytes(t, 101, 100))
	bombBody, bombCT := multipartImage(t, bombPNG(1<<20))
	notImage, notImageCT := multipartImage(t, []byte("this is text, not an image"))
	cases := []struct {
		name, path, ctype, body string
		status                  int
		code, want              string
	}{
		{"bad JSON", "/v1/fill-mask", js, `{"inputs": "a [MASK]"`, 400, "bad_request", "not valid JSON"},
		{"empty body", "/v1/classify", js, ``, 400, "bad_request", "empty body"},
		{"unknown field", "/v1/classify", js, `{"model":"cls","input":"x"}`, 400, "bad_request", `unknown field "input"`},
		{"wrong field type", "/v1/classify", js, `{"model":"cls","inputs":3}`, 400, "bad_request", "not valid JSON"},
		{"no inputs", "/v1/embed", js, `{"inputs":[]}`, 400, "bad_request", "neither"},
		{"texts and images", "/v1/embed", js, `{"model":"vit","inputs":["a"],"images":["a"]}`, 400, "bad_request", "not both"},
		{"bad pooling", "/v1/embed", js, `{"model":"cls","inputs":"a","pooling":"max"}`, 400, "bad_request", `pooling "max"`},
		{"no mask", "/v1/fill-mask", js, `{"inputs":"no mask here"}`, 400, "bad_request", "no [MASK] token"},
		{"too many masks", "/v1/fill-mask", js, `{"inputs":"[MASK] [MASK] [MASK] [MASK] [MASK]"}`, 400, "bad_request", "over the limit of 4"},
		{"negative top_k", "/v1/fill-mask", js, `{"inputs":"a [MASK]","top_k":-1}`, 400, "bad_request", "negative"},
		{"bad base64", "/v1/classify-image", js, `{"model":"vit","inputs":"%%%"}`, 400, "bad_request", "not base64"},
		{"unknown model", "/v1/classify", js, `{"model":"nope","inputs":"x"}`, 404, "not_found", `no model "nope"`},
		{"unknown head", "/v1/classify", js, `{"model":"cls","head":"nope","inputs":"x"}`, 404, "not_found", `no head "nope"`},
		{"no text side", "/v1/embed", js, `{"model":"vit","inputs":"x"}`, 404, "not_found", "no text side"},
		{"no image side", "/v1/classify-image", js, `{"model":"cls","inputs":"` + base64.StdEncoding.EncodeToString(pngBytes(t, 4, 4)) + `"}`, 404, "not_found", "no image side"},
		{"unknown path", "/v1/translate", js, `{}`, 404, "not_found", "no endpoint"},
		{"body too large", "/v1/classify", js, `{"model":"cls","inputs":"` + strings.Repeat("a", 40<<10) + `"}`, 413, "too_large", "body over the limit"},
		{"too many inputs", "/v1/classify", js, `{"model":"cls","inputs":["a","b","c","d"]}`, 413, "too_large", "over the limit of 3"},
		{"text too long", "/v1/classify", js, `{"model":"cls","inputs":"` + strings.Repeat("word ", 20) + `"}`, 413, "too_large", "22 tokens, over the limit of 16"},
		{"image too large", "/v1/classify-image", bigCT, string(bigImage), 413, "too_large", "10100 pixels"},
		{"image bomb", "/v1/classify-image", bombCT, string(bombBody), 413, "too_large", "1048576×1048576"},
		{"not an image", "/v1/classify-image", notImageCT, string(notImage), 415, "unsupported_media_type", "not a PNG, JPEG or GIF"},
		{"wrong content type", "/v1/classify", "text/plain", `{"inputs":"x"}`, 415, "unsupported_media_type", "send application/json"},
	}
	for _, tc := range cases {
		status, body := send(t, "POST", ts.URL+tc.path, tc.ctype, []byte(tc.body))
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			t.Errorf("%s: body is not a JSON error: %q", tc.name, body)
			continue
		}
		if status != tc.status || e.Error.Code != tc.code || !strings.Contains(e.Error.Message, tc.want) {
			t.Errorf("%s: got %d %s %q, want %d %s containing %q", tc.name, status, e.Error.Code, e.Error.Message, tc.status, tc.code, tc.want)
		}
	}
	status, body := send(t, "POST", ts.URL+"/v1/fill-mask", js, []byte(`{"model":"mlm","inputs":"the cat sat on the [MASK].","top_k":2}`))
	var fills []Fill
	if status != 200 || json.Unmarshal([]byte(body), &fills) != nil || len(fills) != 2 || fills[0].Score < fills[1].Score {
		t.Errorf("good request after the bad ones: %d %s", status, body)
	}
	if fills[0].Sequence != "the cat sat on the "+fills[0].TokenStr+"." {
		t.Errorf("sequence %q for token %q", fills[0].Sequence, fills[0].TokenStr)
	}
	status, body = send(t, "POST", ts.URL+"/v1/classify-image", js, []byte(`{"model":"vit","inputs":"`+base64.StdEncoding.EncodeToString(pngBytes(t, 100, 100))+`"}`))
	if status != 200 {
		t.Errorf("good image after the bad ones: %d %s", status, body)
	}

	// Every shape was compiled before /ready; traffic compiled none.
	_, metrics := send(t, "GET", ts.URL+"/metrics", "", nil)
	total := 0.0
	for _, m := range regexp.MustCompile(`(?m)^vitbert_compilations_total\{[^}]*\} (\S+)$`).FindAllStringSubmatch(metrics, -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		total += v
	}
	shapes := 0
	for _, m := range srv.models {
		shapes += m.Shapes()
	}
	if total != float64(shapes) || shapes == 0 {
		t.Errorf("compilations_total = %v, want the %d shapes compiled at warm-up", total, shapes)
	}
	for _, want := range []string{`vitbert_requests_total{code="413",endpoint="classify"} 3`, `vitbert_request_duration_seconds_count{endpoint="fill-mask"}`, `vitbert_batch_size_bucket`, `vitbert_queue_depth{model="mlm",queue="text/mlm"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Draining: new requests and /ready get 503.
	srv.Drain()
	if status, body := send(t, "POST", ts.URL+"/v1/classify", js, []byte(`{"model":"cls","inputs":"x"}`)); status != 503 || !strings.Contains(body, "shutting down") {
		t.Errorf("while draining: %d %s", status, body)
	}
	if status, _ := send(t, "GET", ts.URL+"/ready", "", nil); status != 503 {
		t.Errorf("/ready while draining: %d", status)
	}
}

func TestNotReadyTruncateAndKey(t *testing.T) {
	opts := DefaultOptions()
	opts.MaxBatch, opts.Lengths, opts.MaxTokens, opts.Truncate = 1, []int{16}, 16, true
	ts, srv := newServer(t, opts, Limits{MaxBody: 1 << 20, APIKey: "sesame"}, false)
	js := "application/json"
	good := []byte(`{"model":"cls","inputs":"` + strings.Repeat("word ", 20) + `"}`)
	if status, _ := send(t, "GET", ts.URL+"/ready", "", nil); status != 503 {
		t.Errorf("/ready before warm-up: %d", status)
	}
	if status, body := send(t, "POST", ts.URL+"/v1/classify", js, good, "Authorization", "Bearer sesame"); status != 503 || !strings.Contains(body, "not ready") {
		t.Errorf("before warm-up: %d %s", status, body)
	}
	if status, _ := send(t, "GET", ts.URL+"/health", "", nil); status != 200 {
		t.Errorf("/health before warm-up: %d", status)
	}
	if err := srv.Warmup(); err != nil {
		t.Fatal(err)
	}
	if status, body := send(t, "POST", ts.URL+"/v1/classify", js, good); status != 401 || !strings.Contains(body, "unauthorized") {
		t.Errorf("without the key: %d %s", status, body)
	}
	if status, _ := send(t, "POST", ts.URL+"/v1/classify", js, good, "Authorization", "Bearer wrong"); status != 401 {
		t.Errorf("with a wrong key: %d", status)
	}
	// With --truncate a long text is cut to 16 tokens, not refused.
	if status, body := send(t, "POST", ts.URL+"/v1/classify", js, good, "X-API-Key", "sesame"); status != 200 {
		t.Errorf("truncated text with the key: %d %s", status, body)
	}
	status, body := send(t, "GET", ts.URL+"/v1/models", "", nil, "Authorization", "Bearer sesame")
	var info struct{ Models []ModelInfo }
	if status != 200 || json.Unmarshal([]byte(body), &info) != nil || len(info.Models) != 3 || !info.Models[0].Default || info.Models[0].Shapes == 0 {
		t.Errorf("/v1/models: %d %s", status, body)
	}
	status, body = send(t, "GET", ts.URL+"/openapi.json", "", nil)
	var doc map[string]any
	if status != 200 || json.Unmarshal([]byte(body), &doc) != nil || doc["openapi"] == nil {
		t.Errorf("/openapi.json: %d %.200s", status, body)
	}
	status, body = send(t, "GET", ts.URL+"/", "", nil)
	if status != 200 || !strings.Contains(body, "<html") {
		t.Errorf("/: %d %.200s", status, body)
	}
}

func TestTopIndices(t *testing.T) {
	p := []float64{0.1, 0.5, 0.2, 0.5, 0.05, 0.9, 0.2}
	for _, want := range [][]int{{}, {5}, {5, 1}, {5, 1, 3}, {5, 1, 3, 2}, {5, 1, 3, 2, 6}, {5, 1, 3, 2, 6, 0, 4}} {
		k := len(want)
		got := topIndices(p, k)
		if k2s(got) != k2s(want) {
			t.Errorf("top %d = %v, want %v", k, got, want)
		}
	}
	if got := topIndices(p, 20); len(got) != len(p) {
		t.Errorf("top 20 of 7 = %v", got)
	}
}

func k2s(v []int) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestTopSoftmax checks the fast normaliser against float64 softmax.
func TestTopSoftmax(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, 30522)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64() * 6)
	}
	idx, probs := topSoftmax(logits, 5)
	want := infer.Softmax(logits)
	for r, i := range idx {
		if d := math.Abs(probs[r]-want[i]) / want[i]; d > 1e-6 {
			t.Errorf("rank %d token %d: %g, float64 softmax %g (relative %g)", r, i, probs[r], want[i], d)
		}
	}
	for _, x := range []float32{0, -0.3, -0.5, -0.7, -1, -10.25, -80, -125.9} {
		if got, want := float64(exp2f(x)), math.Exp2(float64(x)); math.Abs(got-want) > 2e-7*want {
			t.Errorf("exp2f(%g) = %g, want %g", x, got, want)
		}
	}
	if exp2f(-200) != 0 {
		t.Errorf("exp2f(-200) = %g", exp2f(-200))
	}
}

func TestLoadLoopbackOnly(t *testing.T) {
	opts := DefaultOptions()
	opts.MaxBatch, opts.Lengths = 2, []int{16}
	ts, _ := newServer(t, opts, Limits{MaxBody: 1 << 20}, true)
	if _, err := Load(t.Context(), "http://10.1.2.3:80/v1/fill-mask", [][]byte{[]byte(`{}`)}, 1, 1, time.Second, nil); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("load against 10.1.2.3: %v", err)
	}
	bodies := [][]byte{[]byte(`{"model":"mlm","inputs":"a [MASK]."}`), []byte(`{"model":"mlm","inputs":"no mask"}`)}
	res, err := Load(t.Context(), ts.URL+"/v1/fill-mask", bodies, 4, 20, time.Minute, nil)
	if err != nil || res.Requests != 20 || res.Errors != 10 || !strings.Contains(res.FirstError, "400") || res.P50 <= 0 || res.P99 < res.P50 {
		t.Errorf("load: %+v, %v", res, err)
	}
}
