package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/vitbert/vitbert/infer"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/serve"
)

// fileFlags are predict's batch-prediction flags.
type fileFlags struct {
	input, output, task, pooling, model, tokenizer, head string
	batchSize, maxLen, topK                              int
	normalize, quiet                                     bool
}

// record is one input of a batch file: a text (with an optional pair) or an
// image path. Its JSON form is the line written back as "input".
type record struct {
	Text     *string `json:"text,omitempty"`
	TextPair *string `json:"text_pair,omitempty"`
	Image    string  `json:"image,omitempty"`
	where    string  // file:line, for errors
}

// Tasks of predict --input, named as the server's endpoints.
const (
	taskFillMask      = "fill-mask"
	taskClassify      = "classify"
	taskClassifyImage = "classify-image"
	taskEmbed         = "embed"
)

var imageExts = []string{".png", ".jpg", ".jpeg", ".gif"}

// readRecords reads a .jsonl file (one JSON string, or an object with text
// [and text_pair] or image, per line), a .csv file with a header naming the
// columns text [and text_pair] or image, or a folder of images (sorted by
// name). Image paths are relative to the file's folder.
func readRecords(path string) ([]record, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if info.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, err
		}
		var out []record
		for _, e := range entries {
			if !e.IsDir() && slices.Contains(imageExts, strings.ToLower(filepath.Ext(e.Name()))) {
				out = append(out, record{Image: filepath.Join(path, e.Name()), where: filepath.Join(path, e.Name())})
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%s: no %v images", path, imageExts)
		}
		return out, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	base := filepath.Dir(path)
	var out []record
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl":
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for n := 1; sc.Scan(); n++ {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			r := record{where: fmt.Sprintf("%s:%d", path, n)}
			if line[0] == '"' {
				var s string
				if err := json.Unmarshal(line, &s); err != nil {
					return nil, fmt.Errorf("%s: %v", r.where, err)
				}
				r.Text = &s
			} else {
				dec := json.NewDecoder(bytes.NewReader(line))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&r); err != nil {
					return nil, fmt.Errorf("%s: want a JSON string or {\"text\", \"text_pair\"} or {\"image\"}: %v", r.where, err)
				}
			}
			out = append(out, r)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	case ".csv":
		rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(rows) < 2 {
			return nil, fmt.Errorf("%s: want a header (text[,text_pair] or image) and at least one row", path)
		}
		col := map[string]int{}
		for i, h := range rows[0] {
			col[strings.TrimSpace(h)] = i
		}
		it, hasText := col["text"]
		ip, hasPair := col["text_pair"]
		ii, hasImage := col["image"]
		if hasText == hasImage {
			return nil, fmt.Errorf("%s: the header %v must name a text or an image column", path, rows[0])
		}
		for n, row := range rows[1:] {
			r := record{where: fmt.Sprintf("%s:%d", path, n+2)}
			if hasText {
				r.Text = &row[it]
				if hasPair {
					r.TextPair = &row[ip]
				}
			} else {
				r.Image = row[ii]
			}
			out = append(out, r)
		}
	default:
		return nil, fmt.Errorf("%s: --input takes a .jsonl or .csv file or a folder of images", path)
	}
	for i := range out {
		r := &out[i]
		if (r.Text != nil) == (r.Image != "") {
			return nil, fmt.Errorf("%s: give a text or an image", r.where)
		}
		if r.Image != "" && !filepath.IsAbs(r.Image) {
			r.Image = filepath.Join(base, r.Image)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no inputs", path)
	}
	return out, nil
}

// defaultTask picks the task from the model's first head for the modality.
func defaultTask(c *model.Config, modality string) (string, error) {
	h, err := infer.PickHead(c, "", modality)
	if err != nil {
		return "", err
	}
	switch {
	case h == nil:
		return taskEmbed, nil
	case h.Kind == model.HeadMLM:
		return taskFillMask, nil
	case modality == "image":
		return taskClassifyImage, nil
	}
	return taskClassify, nil
}

func predictFiles(ff fileFlags) error {
	if ff.output == "" {
		return fmt.Errorf("--input needs --output OUT.jsonl")
	}
	if ff.batchSize < 1 {
		return fmt.Errorf("--batch-size %d: want at least 1", ff.batchSize)
	}
	recs, err := readRecords(ff.input)
	if err != nil {
		return err
	}
	modality := "text"
	if recs[0].Image != "" {
		modality = "image"
	}
	for _, r := range recs {
		if (r.Image != "") != (modality == "image") {
			return fmt.Errorf("%s: texts and images are mixed; give one kind per file", r.where)
		}
	}
	m, p, err := loadPredictor(ff.model)
	if err != nil {
		return err
	}
	task := ff.task
	if task == "" {
		if task, err = defaultTask(&m.Config, modality); err != nil {
			return err
		}
	}
	wantModality := map[string]string{taskFillMask: "text", taskClassify: "text", taskClassifyImage: "image", taskEmbed: modality}[task]
	if wantModality == "" {
		return fmt.Errorf("--task %q: want %s, %s, %s or %s", task, taskFillMask, taskClassify, taskClassifyImage, taskEmbed)
	}
	if wantModality != modality {
		return fmt.Errorf("--task %s reads %s inputs, and %s holds %ss", task, wantModality, ff.input, modality)
	}
	opts := serve.DefaultOptions()
	opts.MaxBatch, opts.MaxInputs, opts.MaxWait = ff.batchSize, ff.batchSize, 0
	opts.MaxTokens, opts.Truncate = ff.maxLen, ff.maxLen > 0
	sm, err := serve.NewModel(filepath.Base(ff.model), ff.model, p, ff.tokenizer, opts)
	if err != nil {
		return err
	}
	defer sm.Close()

	f, err := os.Create(ff.output)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	var bar *progressbar.ProgressBar
	if !ff.quiet {
		bar = progressbar.NewOptions(len(recs), progressbar.OptionSetWriter(os.Stderr), progressbar.OptionShowCount(),
			progressbar.OptionShowIts(), progressbar.OptionSetItsString("inputs"), progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionSetWidth(20),
			progressbar.OptionSetDescription("predict "+task))
	}
	ctx := context.Background()
	for start := 0; start < len(recs); start += ff.batchSize {
		batch := recs[start:min(start+ff.batchSize, len(recs))]
		outs, err := predictBatch(ctx, sm, ff, task, batch)
		if err != nil {
			f.Close()
			return fmt.Errorf("inputs %s to %s: %w", batch[0].where, batch[len(batch)-1].where, err)
		}
		for i, r := range batch {
			if err := enc.Encode(struct {
				Input  record `json:"input"`
				Output any    `json:"output"`
			}{r, outs[i]}); err != nil {
				f.Close()
				return err
			}
		}
		if bar != nil {
			bar.Add(len(batch))
		}
	}
	if bar != nil {
		bar.Finish()
		fmt.Fprintln(os.Stderr)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "predict: %d answers (%s) in %s\n", len(recs), task, ff.output)
	return nil
}

// predictBatch answers one batch with the server's code, in the server's
// shapes for a single input.
func predictBatch(ctx context.Context, m *serve.Model, ff fileFlags, task string, batch []record) ([]any, error) {
	out := make([]any, len(batch))
	var pixels [][]float32
	if batch[0].Image != "" {
		raw := make([][]byte, len(batch))
		for i, r := range batch {
			var err error
			if raw[i], err = os.ReadFile(r.Image); err != nil {
				return nil, err
			}
		}
		var err error
		if pixels, err = m.Pixels(raw); err != nil {
			return nil, err
		}
	}
	texts := make([]string, len(batch))
	pairs := make([]serve.TextPair, len(batch))
	for i, r := range batch {
		if r.Text != nil {
			texts[i] = *r.Text
			pairs[i] = serve.TextPair{Text: *r.Text, TextPair: r.TextPair}
			if r.TextPair != nil && task != taskClassify {
				return nil, fmt.Errorf("%s: text_pair is for --task classify", r.where)
			}
		}
	}
	switch task {
	case taskFillMask:
		res, err := m.FillMask(ctx, ff.head, texts, ff.topK)
		if err != nil {
			return nil, err
		}
		for i, a := range serve.FillMaskShape(res) {
			out[i] = a
		}
	case taskClassify, taskClassifyImage:
		var res [][]serve.Label
		var err error
		if task == taskClassify {
			res, err = m.Classify(ctx, ff.head, pairs, ff.topK)
		} else {
			res, err = m.ClassifyImages(ctx, ff.head, pixels, ff.topK)
		}
		if err != nil {
			return nil, err
		}
		for i, a := range res {
			out[i] = a
		}
	case taskEmbed:
		var res [][]float32
		var err error
		if pixels != nil {
			res, err = m.EmbedImages(ctx, pixels, ff.pooling, ff.normalize)
		} else {
			res, err = m.EmbedTexts(ctx, texts, ff.pooling, ff.normalize)
		}
		if err != nil {
			return nil, err
		}
		for i, a := range res {
			out[i] = a
		}
	}
	return out, nil
}
