package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vitbert/vitbert/serve"
)

func init() {
	register("serve", "serve models over HTTP: fill-mask, classify, classify-image, embed, a web page", runServe)
	register("serve-load", "load-test a running vitbert serve on loopback (benchmarks/serve.sh)", runServeLoad)
}

// runServeLoad sends concurrent requests to a local server and prints
// throughput and latency percentiles.
func runServeLoad(args []string) error {
	fs := newFlags("serve-load", "--url http://127.0.0.1:8080/v1/fill-mask --body FILE.jsonl [flags]")
	target := fs.String("url", "http://127.0.0.1:8080/v1/fill-mask", "endpoint to POST to (loopback only)")
	bodyFile := fs.String("body", "", "request bodies, one JSON object per line, sent in turn (required)")
	clients := fs.Int("clients", 32, "concurrent clients")
	requests := fs.Int("requests", 2000, "requests in all")
	duration := fs.Duration("duration", time.Minute, "stop after this long even if requests remain")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	apiKey := fs.String("api-key", os.Getenv("VITBERT_API_KEY"), "API key to send")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bodyFile == "" {
		return fmt.Errorf("--body is required")
	}
	b, err := os.ReadFile(*bodyFile)
	if err != nil {
		return err
	}
	var bodies [][]byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			bodies = append(bodies, line)
		}
	}
	header := http.Header{}
	if *apiKey != "" {
		header.Set("Authorization", "Bearer "+*apiKey)
	}
	res, err := serve.Load(context.Background(), *target, bodies, *clients, *requests, *duration, header)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{"requests": res.Requests, "errors": res.Errors, "seconds": res.Seconds,
			"per_second": res.PerSecond, "p50_ms": float64(res.P50) / 1e6, "p95_ms": float64(res.P95) / 1e6, "p99_ms": float64(res.P99) / 1e6, "first_error": res.FirstError})
	}
	fmt.Println(res)
	if res.Errors > 0 {
		fmt.Println("first error:", res.FirstError)
	}
	return nil
}

// serveFlags are the model options shared by serve and predict --input.
type serveFlags struct {
	maxBatch, maxTokens, maxMasks, maxPixels, maxInputs int
	maxWait                                             time.Duration
	lengths                                             string
	truncate                                            bool
	tokenizer                                           string
}

func (f *serveFlags) options() (serve.Options, error) {
	o := serve.DefaultOptions()
	o.MaxBatch, o.MaxWait, o.MaxTokens, o.Truncate, o.MaxMasks, o.MaxPixels, o.MaxInputs =
		f.maxBatch, f.maxWait, f.maxTokens, f.truncate, f.maxMasks, f.maxPixels, f.maxInputs
	o.Lengths = nil
	for _, s := range strings.Split(f.lengths, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return o, fmt.Errorf("--lengths: %q is not a positive token count", s)
		}
		o.Lengths = append(o.Lengths, n)
	}
	return o, nil
}

// parseModel reads --model DIR or NAME=DIR; the name defaults to the directory's base name.
func parseModel(spec string) (name, dir string) {
	if n, d, ok := strings.Cut(spec, "="); ok && n != "" && !strings.ContainsAny(n, `/\`) {
		return n, d
	}
	return filepath.Base(filepath.Clean(spec)), spec
}

func runServe(args []string) error {
	fs := newFlags("serve", "--model [NAME=]DIR [--model NAME=DIR ...] [--addr 127.0.0.1:8080] [flags]")
	var models listFlag
	fs.Var(&models, "model", "model directory, or NAME=DIR (repeatable; the first is the default)")
	addr := fs.String("addr", "127.0.0.1:8080", "listen address (loopback by default; give 0.0.0.0:PORT to listen on every interface)")
	d := serve.DefaultOptions()
	var sf serveFlags
	fs.IntVar(&sf.maxBatch, "max-batch", d.MaxBatch, "inputs per forward pass (1 turns batching off)")
	fs.DurationVar(&sf.maxWait, "max-wait", d.MaxWait, "how long a batch waits for more inputs after its first")
	fs.StringVar(&sf.lengths, "lengths", "16,32,64,128,256,512", "text length buckets in tokens (capped at --max-tokens)")
	fs.IntVar(&sf.maxTokens, "max-tokens", 0, "tokens per text, special tokens included (0: the model's position table)")
	fs.BoolVar(&sf.truncate, "truncate", false, "truncate longer texts to --max-tokens instead of answering 413")
	fs.IntVar(&sf.maxMasks, "max-masks", d.MaxMasks, "[MASK] tokens per fill-mask text")
	fs.IntVar(&sf.maxPixels, "max-image-pixels", d.MaxPixels, "width×height of an uploaded image, checked before decoding")
	fs.IntVar(&sf.maxInputs, "max-inputs", d.MaxInputs, "texts or images per request")
	fs.StringVar(&sf.tokenizer, "tokenizer", "", "tokenizer.json or vocab.txt for every text model (default: from each model directory, else bert-base-uncased)")
	maxBody := fs.Int64("max-body", 16<<20, "request body limit in bytes")
	readTimeout := fs.Duration("read-timeout", 30*time.Second, "time to read a request")
	writeTimeout := fs.Duration("write-timeout", 60*time.Second, "time to answer a request")
	shutdownTimeout := fs.Duration("shutdown-timeout", 30*time.Second, "time in-flight requests get to finish after SIGTERM or SIGINT")
	apiKey := fs.String("api-key", os.Getenv("VITBERT_API_KEY"), "require this key on /v1/ requests (Authorization: Bearer KEY); default $VITBERT_API_KEY")
	gcPercent := fs.Int("gc-percent", 10, "Go GC target: heap growth over the live heap before a collection (the weights and compiled shapes are most of the live heap and hold no pointers, so collecting often is cheap and keeps the resident memory near its warm-up value); ignored when GOGC is set")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(*gcPercent)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if len(models) == 0 {
		return fmt.Errorf("--model is required")
	}
	opts, err := sf.options()
	if err != nil {
		return err
	}
	backend, err := newBackend()
	if err != nil {
		return err
	}
	var ms []*serve.Model
	for _, spec := range models {
		name, dir := parseModel(spec)
		m, err := serve.LoadModel(backend, name, dir, sf.tokenizer, opts)
		if err != nil {
			return fmt.Errorf("--model %s: %w", spec, err)
		}
		ms = append(ms, m)
	}
	srv, err := serve.New(ms, serve.Limits{MaxBody: *maxBody, APIKey: *apiKey})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: *readTimeout, ReadTimeout: *readTimeout, WriteTimeout: *writeTimeout}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	fmt.Fprintf(os.Stderr, "vitbert serve: listening on http://%s (/ready says yes once every shape is compiled)\n", ln.Addr())
	start := time.Now()
	if err := srv.Warmup(); err != nil {
		hs.Close()
		return err
	}
	shapes := 0
	for _, m := range ms {
		shapes += m.Shapes()
	}
	fmt.Fprintf(os.Stderr, "vitbert serve: ready: %d model(s), %d input shapes compiled in %.1fs\n", len(ms), shapes, time.Since(start).Seconds())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	select {
	case err := <-served:
		return err
	case s := <-sig:
		fmt.Fprintf(os.Stderr, "vitbert serve: %v: finishing in-flight requests\n", s)
	}
	srv.Drain()
	ctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
