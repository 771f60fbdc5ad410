package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/data/images"
	"github.com/vitbert/vitbert/infer"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/safetensors"
	"github.com/vitbert/vitbert/text"
	"github.com/vitbert/vitbert/train"
)

func init() {
	register("predict", "run a model on texts or images (logits, top-k, hidden states)", runPredict)
}

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ", ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type predictResult struct {
	Logits      any    `json:"logits"`
	Head        string `json:"head,omitempty"`
	Hidden      any    `json:"last_hidden_state,omitempty"`
	InputIDs    any    `json:"input_ids,omitempty"`
	MLMPosition any    `json:"mlm_positions,omitempty"`
}

func runPredict(args []string) error {
	fs := newFlags("predict", "--model DIR (--text T [--text-pair P] ... | --image FILE ... | --pixels FILE.safetensors | --input FILE.jsonl|FILE.csv|FOLDER --output OUT.jsonl) [flags]")
	modelDir := fs.String("model", "", "model directory: config.json + model.safetensors (Hugging Face BERT/ViT or vitbert)")
	var texts, pairs, imagesIn listFlag
	fs.Var(&texts, "text", "a text to run (repeatable; one row each)")
	fs.Var(&pairs, "text-pair", "second segment for the text at the same index (repeatable)")
	fs.Var(&imagesIn, "image", "a PNG or JPEG image, resized and normalised (repeatable)")
	pixels := fs.String("pixels", "", "safetensors file with tensor pixel_values [N, C, H, W], already normalised")
	maxLen := fs.IntIn("max-length", 0, train.AtLeast(0).With("0: the longest text"), "pad (and truncate, longest_first) texts to this many tokens")
	mlmPos := fs.String("mlm-positions", "", "comma-separated token positions for an MLM head (default: the [MASK] tokens)")
	tokPath := fs.String("tokenizer", "", "tokenizer.json or vocab.txt (default: from the model directory, else bert-base-uncased)")
	headName := fs.String("head", "", "head to run (default: the model's first head for the input's modality)")
	asJSON := fs.Bool("json", false, "print {\"logits\": ...} as JSON")
	hidden := fs.Bool("hidden", false, "with --json, also print the final hidden states")
	topK := fs.IntIn("top-k", 5, train.AtLeast(0), "classes or tokens to show per row without --json (with --input: per answer, 0 = every class)")
	var ff fileFlags
	fs.StringVar(&ff.input, "input", "", "batch prediction: a .jsonl or .csv file of texts or images, or a folder of images")
	fs.StringVar(&ff.output, "output", "", "with --input: where to write one JSON answer per line")
	fs.IntVar(&ff.batchSize, "batch-size", 32, "with --input: inputs per forward pass")
	fs.StringVar(&ff.task, "task", "", "with --input: fill-mask, classify, classify-image or embed (default: from the model's first head for the input's modality)")
	fs.StringVar(&ff.pooling, "pooling", "cls", "with --task embed: cls or mean")
	fs.BoolVar(&ff.normalize, "normalize", true, "with --task embed: L2-normalise the vectors")
	fs.BoolVar(&ff.quiet, "quiet", false, "with --input: no progress bar")
	if err := fs.ParseNoArgs(args); err != nil {
		return err
	}
	if *modelDir == "" {
		return fmt.Errorf("--model is required")
	}
	if ff.input != "" {
		if len(texts) > 0 || len(imagesIn) > 0 || *pixels != "" || *asJSON || *mlmPos != "" {
			return fmt.Errorf("--input takes its inputs from the file: drop --text, --image, --pixels, --json and --mlm-positions")
		}
		ff.model, ff.tokenizer, ff.head, ff.maxLen, ff.topK = *modelDir, *tokPath, *headName, *maxLen, *topK
		return predictFiles(ff)
	}
	if ff.output != "" {
		return fmt.Errorf("--output goes with --input")
	}
	nInputs := 0
	for _, used := range []bool{len(texts) > 0, len(imagesIn) > 0, *pixels != ""} {
		if used {
			nInputs++
		}
	}
	if nInputs != 1 {
		return fmt.Errorf("give exactly one kind of input: --text, --image or --pixels")
	}
	if len(pairs) > len(texts) {
		return fmt.Errorf("%d --text-pair for %d --text", len(pairs), len(texts))
	}
	m, p, err := loadPredictor(*modelDir)
	if err != nil {
		return err
	}
	modality := "image"
	if len(texts) > 0 {
		modality = "text"
	}
	head, err := infer.PickHead(&m.Config, *headName, modality)
	if err != nil {
		return err
	}
	var res predictResult
	var out *infer.Output
	var rowsLabels func(row int) []string
	if modality == "text" {
		tok, err := infer.LoadTokenizer(*tokPath, m.Source, m.Config.VocabSize)
		if err != nil {
			return err
		}
		ids, seg, mask, err := encodeTexts(tok, texts, pairs, *maxLen, m.Config.MaxTextLength)
		if err != nil {
			return err
		}
		var positions [][]int32
		if head != nil && head.Kind == model.HeadMLM {
			positions, err = mlmPositions(*mlmPos, ids, tok.MASK())
			if err != nil {
				return err
			}
			res.MLMPosition = positions
		}
		name := ""
		if head != nil {
			name = head.Name
		}
		out, err = p.Text(name, ids, seg, mask, positions)
		if err != nil {
			return err
		}
		res.InputIDs = ids
		rowsLabels = func(int) []string {
			if head != nil && head.Kind == model.HeadMLM {
				labels := make([]string, tok.VocabSize())
				for i := range labels {
					labels[i] = tok.IDToken(int32(i))
				}
				return labels
			}
			return head.Labels
		}
	} else {
		px, n, err := loadPixels(*pixels, imagesIn, m)
		if err != nil {
			return err
		}
		name := ""
		if head != nil {
			name = head.Name
		}
		if out, err = p.Image(name, px, n); err != nil {
			return err
		}
		rowsLabels = func(int) []string { return head.Labels }
	}
	if head != nil {
		res.Head = head.Name
		res.Logits = reshape(out.Logits, out.LogitsShape)
	}
	if *asJSON {
		if *hidden {
			res.Hidden = reshape(out.Hidden, out.HiddenShape)
		}
		enc := json.NewEncoder(os.Stdout)
		return enc.Encode(res)
	}
	if head == nil {
		fmt.Printf("no head: final hidden states have shape %v (use --json --hidden to print them)\n", out.HiddenShape)
		return nil
	}
	printTopK(out, head, rowsLabels(0), *topK)
	return nil
}

// loadPredictor loads the model in dir onto the backend.
func loadPredictor(dir string) (*checkpoint.Model, *infer.Predictor, error) {
	m, err := checkpoint.LoadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	backend, err := newBackend()
	if err != nil {
		return nil, nil, err
	}
	p, err := infer.New(backend, m)
	if err != nil {
		return nil, nil, err
	}
	return m, p, nil
}

func encodeTexts(tok *text.Tokenizer, texts, pairs []string, maxLen, modelMax int) (ids, seg, mask [][]int32, err error) {
	encs := make([]text.Encoding, len(texts))
	longest := 0
	for i, a := range texts {
		var b *string
		if i < len(pairs) {
			b = &pairs[i]
		}
		encs[i], err = tok.EncodeWith(a, b, text.EncodeOpts{MaxLength: maxLen, Pad: maxLen > 0})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--text %d: %w", i+1, err)
		}
		longest = max(longest, encs[i].Len())
	}
	if longest > modelMax {
		return nil, nil, nil, fmt.Errorf("a text has %d tokens, longer than the model's position table (%d); use --max-length %d to truncate", longest, modelMax, modelMax)
	}
	ids, seg, mask = infer.PadBatch(encs, longest, tok.PAD())
	return ids, seg, mask, nil
}

func mlmPositions(spec string, ids [][]int32, maskID int32) ([][]int32, error) {
	if spec != "" {
		var row []int32
		for _, f := range strings.Split(spec, ",") {
			v, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || v < 0 || v >= len(ids[0]) {
				return nil, fmt.Errorf("--mlm-positions: %q is not a position in texts of %d tokens", f, len(ids[0]))
			}
			row = append(row, int32(v))
		}
		out := make([][]int32, len(ids))
		for i := range out {
			out[i] = row
		}
		return out, nil
	}
	out := make([][]int32, len(ids))
	for i, r := range ids {
		for j, id := range r {
			if id == maskID {
				out[i] = append(out[i], int32(j))
			}
		}
		if len(out[i]) == 0 || len(out[i]) != len(out[0]) {
			return nil, fmt.Errorf("an MLM head needs --mlm-positions, or the same number of [MASK] tokens in every text (text %d has %d)", i+1, len(out[i]))
		}
	}
	return out, nil
}

func loadPixels(path string, files []string, m *checkpoint.Model) ([]float32, int, error) {
	c := &m.Config
	if path != "" {
		f, err := safetensors.ReadFile(path)
		if err != nil {
			return nil, 0, err
		}
		t, ok := f.Tensors["pixel_values"]
		if !ok {
			return nil, 0, fmt.Errorf("%s: no tensor pixel_values (it has %v)", path, f.Names())
		}
		if len(t.Shape) != 4 || t.Shape[1] != c.Channels || t.Shape[2] != c.ImageSize || t.Shape[3] != c.ImageSize {
			return nil, 0, fmt.Errorf("%s: pixel_values has shape %v, the model wants [N, %d, %d, %d]", path, t.Shape, c.Channels, c.ImageSize, c.ImageSize)
		}
		px, err := t.Float32s()
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
		for i, v := range px {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, 0, fmt.Errorf("%s: pixel_values has a non-finite value (%g at flat index %d): inputs must be finite", path, v, i)
			}
		}
		return px, t.Shape[0], nil
	}
	proc, err := images.ReadHFProcessor(m.Source)
	if err != nil {
		return nil, 0, err
	}
	var px []float32
	for _, f := range files {
		img, err := images.LoadForModel(f, proc, c.ImageSize, c.Channels)
		if err != nil {
			return nil, 0, err
		}
		px = append(px, img...)
	}
	return px, len(files), nil
}

// reshape turns flat row-major data into nested slices for JSON.
func reshape(data []float32, shape []int) any {
	if len(shape) <= 1 {
		return data
	}
	n := len(data) / shape[0]
	rows := make([]any, shape[0])
	for i := range rows {
		rows[i] = reshape(data[i*n:(i+1)*n], shape[1:])
	}
	return rows
}

func printTopK(out *infer.Output, head *model.HeadConfig, labels []string, k int) {
	K := out.LogitsShape[len(out.LogitsShape)-1]
	rows := len(out.Logits) / K
	perInput := rows / out.LogitsShape[0]
	for r := range rows {
		logits := out.Logits[r*K : (r+1)*K]
		if head.Kind == model.HeadRegress {
			fmt.Printf("input %d: %.4f\n", r+1, logits[0])
			continue
		}
		probs := infer.Softmax(logits)
		idx := make([]int, K)
		for i := range idx {
			idx[i] = i
		}
		sort.Slice(idx, func(a, b int) bool { return probs[idx[a]] > probs[idx[b]] })
		prefix := fmt.Sprintf("input %d", r/perInput+1)
		if head.Kind == model.HeadMLM {
			prefix += fmt.Sprintf(" mask %d", r%perInput+1)
		}
		var parts []string
		if k <= 0 {
			k = K // every class
		}
		for _, i := range idx[:min(k, K)] {
			name := strconv.Itoa(i)
			if i < len(labels) && labels[i] != "" {
				name = labels[i]
			}
			parts = append(parts, fmt.Sprintf("%s %.3f", name, probs[i]))
		}
		fmt.Printf("%s: %s\n", prefix, strings.Join(parts, "  "))
	}
}
