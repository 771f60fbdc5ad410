// Package serve answers fill-mask, classification and embedding requests for
// one or more loaded models over HTTP, batching concurrent inputs of the same
// model, modality and head into one forward pass.
package serve

import (
	"bytes"
	"context"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // decoders for image.Decode
	_ "image/jpeg"
	_ "image/png"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vitbert/vitbert/data/images"
)

// Error is an API error: an HTTP status and a JSON body
// {"error": {"code": ..., "message": ...}}.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

func errf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Limits are the server-wide request limits.
type Limits struct {
	MaxBody int64  // bytes per request body
	APIKey  string // when set, /v1/ requests need "Authorization: Bearer KEY" or "X-API-Key: KEY"
}

// Server serves models over HTTP.
type Server struct {
	models   []*Model
	byName   map[string]*Model
	limits   Limits
	metrics  *metrics
	ready    atomic.Bool
	draining atomic.Bool
	mux      *http.ServeMux
}

//go:embed web openapi.json
var assets embed.FS

// New serves models (the first is the default); call Warmup before traffic.
func New(models []*Model, limits Limits) (*Server, error) {
	if len(models) == 0 {
		return nil, errors.New("no model to serve")
	}
	if limits.MaxBody <= 0 {
		return nil, fmt.Errorf("the body limit must be positive, got %d", limits.MaxBody)
	}
	s := &Server{models: models, byName: map[string]*Model{}, limits: limits, metrics: newMetrics()}
	for _, m := range models {
		if _, dup := s.byName[m.Name]; dup {
			return nil, fmt.Errorf("two models are named %q", m.Name)
		}
		s.byName[m.Name] = m
		m.metrics = s.metrics
	}
	mux := http.NewServeMux()
	web, _ := fs.Sub(assets, "web")
	mux.Handle("GET /{$}", http.FileServerFS(web))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /ready", s.handleReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		b, _ := assets.ReadFile("openapi.json")
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	mux.Handle("GET /v1/models", s.api("models", false, s.handleModels))
	mux.Handle("POST /v1/fill-mask", s.api("fill-mask", true, s.handleFillMask))
	mux.Handle("POST /v1/classify", s.api("classify", true, s.handleClassify))
	mux.Handle("POST /v1/classify-image", s.api("classify-image", true, s.handleClassifyImage))
	mux.Handle("POST /v1/embed", s.api("embed", true, s.handleEmbed))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errf(404, "not_found", "no endpoint %s %s (see /openapi.json)", r.Method, r.URL.Path))
	})
	s.mux = mux
	return s, nil
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Warmup compiles every input shape of every model, then marks the server ready.
func (s *Server) Warmup() error {
	for _, m := range s.models {
		if err := m.Warmup(); err != nil {
			return err
		}
	}
	s.ready.Store(true)
	return nil
}

// Drain makes the server refuse new API requests with 503 (and /ready say
// no) while the in-flight ones finish.
func (s *Server) Drain() { s.draining.Store(true) }

// Close stops the models' batching queues.
func (s *Server) Close() {
	for _, m := range s.models {
		m.Close()
	}
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	switch {
	case s.draining.Load():
		writeError(w, errf(503, "unavailable", "shutting down"))
	case !s.ready.Load():
		writeError(w, errf(503, "unavailable", "compiling the models' input shapes"))
	default:
		writeJSON(w, 200, map[string]string{"status": "ready"})
	}
}

// api wraps an endpoint: key check, readiness, body cap, metrics, JSON errors.
func (s *Server) api(name string, needsReady bool, h func(r *http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		status := 200
		defer func() { s.metrics.request(name, status, time.Since(start)) }()
		var res any
		var err error
		switch {
		case s.limits.APIKey != "" && !s.keyOK(r):
			err = errf(401, "unauthorized", "missing or wrong API key (send Authorization: Bearer KEY)")
		case s.draining.Load():
			err = errf(503, "unavailable", "shutting down")
		case needsReady && !s.ready.Load():
			err = errf(503, "unavailable", "not ready: compiling the models' input shapes")
		default:
			r.Body = http.MaxBytesReader(w, r.Body, s.limits.MaxBody)
			res, err = h(r)
		}
		if err != nil {
			var ae *Error
			var mb *http.MaxBytesError
			switch {
			case errors.As(err, &ae):
			case errors.As(err, &mb):
				ae = errf(413, "too_large", "request body over the limit of %d bytes", mb.Limit)
			case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
				ae = errf(503, "unavailable", "request cancelled: %v", err)
			default:
				ae = errf(500, "internal", "%v", err)
			}
			status = ae.Status
			writeError(w, ae)
			return
		}
		writeJSON(w, 200, res)
	})
}

func (s *Server) keyOK(r *http.Request) bool {
	got := r.Header.Get("X-API-Key")
	if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		got = b
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.limits.APIKey)) == 1
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Status, map[string]any{"error": map[string]string{"code": e.Code, "message": e.Message}})
}

// decode reads a JSON body into v, refusing unknown fields and trailing data.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		// curl -d sends application/x-www-form-urlencoded unless told otherwise: read it as JSON too.
		if err != nil || (mt != "application/json" && mt != "application/x-www-form-urlencoded") {
			return errf(415, "unsupported_media_type", "Content-Type %q: send application/json", ct)
		}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return errf(400, "bad_request", "empty body: send a JSON object")
		}
		return errf(400, "bad_request", "body is not valid JSON for this endpoint: %v", err)
	}
	if dec.More() {
		return errf(400, "bad_request", "body holds more than one JSON value")
	}
	return nil
}

func (s *Server) model(name string) (*Model, error) {
	if name == "" {
		return s.models[0], nil
	}
	m, ok := s.byName[name]
	if !ok {
		names := make([]string, len(s.models))
		for i, m := range s.models {
			names[i] = m.Name
		}
		return nil, errf(404, "not_found", "no model %q (serving %v)", name, names)
	}
	return m, nil
}

// oneOrMany is a JSON value that is either one item or an array of them.
type oneOrMany[T any] struct {
	items []T
	many  bool
}

func (o *oneOrMany[T]) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '[' {
		o.many = true
		return json.Unmarshal(b, &o.items)
	}
	var one T
	if err := json.Unmarshal(b, &one); err != nil {
		return err
	}
	o.items = []T{one}
	return nil
}

// modelFor resolves the named model and checks a request's number of inputs
// and its top_k.
func (s *Server) modelFor(name string, n int, what string, topK int) (*Model, error) {
	m, err := s.model(name)
	if err != nil {
		return nil, err
	}
	if err := s.checkCount(m, n, what); err != nil {
		return nil, err
	}
	if topK < 0 {
		return nil, errf(400, "bad_request", "top_k %d is negative", topK)
	}
	return m, nil
}

func (s *Server) checkCount(m *Model, n int, what string) error {
	if n == 0 {
		return errf(400, "bad_request", "no %s given", what)
	}
	if n > m.Opts.MaxInputs {
		return errf(413, "too_large", "%d %s in one request, over the limit of %d", n, what, m.Opts.MaxInputs)
	}
	return nil
}

// shape returns the answers for one input as the input was given: the
// first answer alone for a single input, all of them for an array.
func shape[T any](many bool, out []T) any {
	if many {
		return out
	}
	return out[0]
}

// inputsRequest is the body every prediction endpoint shares: a model and
// head by name (empty: the defaults), one input or an array, and top_k.
type inputsRequest[T any] struct {
	Model  string       `json:"model"`
	Head   string       `json:"head"`
	Inputs oneOrMany[T] `json:"inputs"`
	TopK   int          `json:"top_k"`
}

// decodeInputs reads a JSON inputsRequest and finds its model, checking
// the number of inputs and top_k against the server's limits.
func decodeInputs[T any](s *Server, r *http.Request) (inputsRequest[T], *Model, error) {
	var req inputsRequest[T]
	if err := decode(r, &req); err != nil {
		return req, nil, err
	}
	m, err := s.modelFor(req.Model, len(req.Inputs.items), "inputs", req.TopK)
	return req, m, err
}

func (s *Server) handleFillMask(r *http.Request) (any, error) {
	req, m, err := decodeInputs[string](s, r)
	if err != nil {
		return nil, err
	}
	res, err := m.FillMask(r.Context(), req.Head, req.Inputs.items, req.TopK)
	if err != nil {
		return nil, err
	}
	return shape(req.Inputs.many, FillMaskShape(res)), nil
}

// FillMaskShape shapes each text's answer as Hugging Face's fill-mask
// pipeline: the candidates alone for one [MASK], a list per [MASK] otherwise.
func FillMaskShape(res [][][]Fill) []any {
	out := make([]any, len(res))
	for i, r := range res {
		out[i] = shape(len(r) > 1, r)
	}
	return out
}

// textInput is a text or {"text", "text_pair"}.
type textInput struct{ TextPair }

func (t *textInput) UnmarshalJSON(b []byte) error {
	if t2 := bytes.TrimSpace(b); len(t2) > 0 && t2[0] == '"' {
		return json.Unmarshal(b, &t.Text)
	}
	type plain TextPair
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode((*plain)(&t.TextPair))
}

func (s *Server) handleClassify(r *http.Request) (any, error) {
	req, m, err := decodeInputs[textInput](s, r)
	if err != nil {
		return nil, err
	}
	pairs := make([]TextPair, len(req.Inputs.items))
	for i, in := range req.Inputs.items {
		pairs[i] = in.TextPair
	}
	res, err := m.Classify(r.Context(), req.Head, pairs, req.TopK)
	if err != nil {
		return nil, err
	}
	return shape(req.Inputs.many, res), nil
}

func (s *Server) handleClassifyImage(r *http.Request) (any, error) {
	// The JSON form: base64 images (a data: URL prefix is allowed).
	var req inputsRequest[string]
	var raw [][]byte
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		if err := r.ParseMultipartForm(s.limits.MaxBody); err != nil {
			var mb *http.MaxBytesError
			if errors.As(err, &mb) {
				return nil, err
			}
			return nil, errf(400, "bad_request", "multipart form: %v", err)
		}
		req.Model, req.Head = r.FormValue("model"), r.FormValue("head")
		if k := r.FormValue("top_k"); k != "" {
			var err error
			if req.TopK, err = strconv.Atoi(k); err != nil {
				return nil, errf(400, "bad_request", "top_k %q is not an integer", k)
			}
		}
		files := r.MultipartForm.File["image"]
		req.Inputs.many = len(files) > 1
		for _, fh := range files {
			f, err := fh.Open()
			if err != nil {
				return nil, errf(400, "bad_request", "image %s: %v", fh.Filename, err)
			}
			b, err := io.ReadAll(f)
			f.Close()
			if err != nil {
				return nil, errf(400, "bad_request", "image %s: %v", fh.Filename, err)
			}
			raw = append(raw, b)
		}
	} else {
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		var err error
		if raw, err = decodeBase64(req.Inputs.items); err != nil {
			return nil, err
		}
	}
	m, err := s.modelFor(req.Model, len(raw), `images (multipart field "image" or JSON "inputs")`, req.TopK)
	if err != nil {
		return nil, err
	}
	if err := m.needImage(); err != nil {
		return nil, err
	}
	px, err := m.Pixels(raw)
	if err != nil {
		return nil, err
	}
	res, err := m.ClassifyImages(r.Context(), req.Head, px, req.TopK)
	if err != nil {
		return nil, err
	}
	return shape(req.Inputs.many, res), nil
}

func decodeBase64(in []string) ([][]byte, error) {
	out := make([][]byte, len(in))
	for i, s := range in {
		if strings.HasPrefix(s, "data:") {
			if _, after, ok := strings.Cut(s, ","); ok {
				s = after
			}
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, errf(400, "bad_request", "image %d is not base64: %v", i, err)
		}
		out[i] = b
	}
	return out, nil
}

// Pixels decodes PNG, JPEG or GIF images into the model's input, checking
// their size from the header before decoding them.
func (m *Model) Pixels(raw [][]byte) ([][]float32, error) {
	if err := m.needImage(); err != nil {
		return nil, err
	}
	out := make([][]float32, len(raw))
	for i, b := range raw {
		cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			return nil, errf(415, "unsupported_media_type", "image %d is not a PNG, JPEG or GIF image: %v", i, err)
		}
		if px := int64(cfg.Width) * int64(cfg.Height); px > int64(m.Opts.MaxPixels) {
			return nil, errf(413, "too_large", "image %d is %d×%d = %d pixels, over the limit of %d", i, cfg.Width, cfg.Height, px, m.Opts.MaxPixels)
		}
		img, _, err := image.Decode(bytes.NewReader(b))
		if err != nil {
			return nil, errf(415, "unsupported_media_type", "image %d (%s) cannot be decoded: %v", i, format, err)
		}
		if out[i], err = images.ModelInput(img, m.Config.ImageSize, m.Config.Channels, images.ViTMean, images.ViTStd); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type embedRequest struct {
	Model     string            `json:"model"`
	Inputs    oneOrMany[string] `json:"inputs"`
	Images    oneOrMany[string] `json:"images"`
	Pooling   string            `json:"pooling"`
	Normalize *bool             `json:"normalize"`
}

func (s *Server) handleEmbed(r *http.Request) (any, error) {
	var req embedRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	m, err := s.model(req.Model)
	if err != nil {
		return nil, err
	}
	nt, ni := len(req.Inputs.items), len(req.Images.items)
	if (nt > 0) == (ni > 0) {
		return nil, errf(400, "bad_request", `give either "inputs" (texts) or "images" (base64), not both or neither`)
	}
	if err := s.checkCount(m, nt+ni, "inputs"); err != nil {
		return nil, err
	}
	normalize := req.Normalize == nil || *req.Normalize
	if nt > 0 {
		return m.EmbedTexts(r.Context(), req.Inputs.items, req.Pooling, normalize)
	}
	if err := m.needImage(); err != nil {
		return nil, err
	}
	raw, err := decodeBase64(req.Images.items)
	if err != nil {
		return nil, err
	}
	px, err := m.Pixels(raw)
	if err != nil {
		return nil, err
	}
	return m.EmbedImages(r.Context(), px, req.Pooling, normalize)
}

// ModelInfo describes a served model for GET /v1/models.
type ModelInfo struct {
	Name       string         `json:"name"`
	Dir        string         `json:"dir"`
	Default    bool           `json:"default"`
	Config     any            `json:"config"`
	Modalities []string       `json:"modalities"`
	Limits     map[string]any `json:"limits"`
	Shapes     int            `json:"compiled_shapes"`
}

func (s *Server) handleModels(r *http.Request) (any, error) {
	var out []ModelInfo
	for i, m := range s.models {
		var mods []string
		if m.Config.HasText() {
			mods = append(mods, "text")
		}
		if m.Config.HasImage() {
			mods = append(mods, "image")
		}
		lim := map[string]any{"max_inputs": m.Opts.MaxInputs, "max_batch": m.Opts.MaxBatch, "max_wait_ms": float64(m.Opts.MaxWait) / 1e6,
			"max_body_bytes": s.limits.MaxBody, "batch_sizes": m.batchSizes()}
		if m.Config.HasText() {
			lim["max_tokens"], lim["truncate"], lim["max_masks"], lim["length_buckets"] = m.Opts.MaxTokens, m.Opts.Truncate, m.Opts.MaxMasks, m.lengths
		}
		if m.Config.HasImage() {
			lim["max_image_pixels"] = m.Opts.MaxPixels
		}
		out = append(out, ModelInfo{Name: m.Name, Dir: m.Dir, Default: i == 0, Config: m.Config, Modalities: mods, Limits: lim, Shapes: m.Shapes()})
	}
	return map[string]any{"models": out}, nil
}
