package finetune

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/vitbert/vitbert/data/images"
	"github.com/vitbert/vitbert/data/texts"
	"github.com/vitbert/vitbert/pretrain"
	"github.com/vitbert/vitbert/text"
)

// firstWords returns the prefix of s that ends with its n-th
// whitespace-separated word (all of s if it has fewer). WordPiece never joins
// pieces across whitespace, so those words tokenise exactly as in the whole
// text; a word gives at least one token (bar words of control characters
// alone), so keeping 2·L words keeps every token an input truncated to L
// uses, and spares tokenising whole e-mails.
func firstWords(s string, n int) string {
	words, inWord := 0, false
	for i, r := range s {
		if unicode.IsSpace(r) {
			if inWord {
				words++
				if words == n {
					return s[:i]
				}
			}
			inWord = false
			continue
		}
		inWord = true
	}
	return s
}

// encodeTexts turns a split into [CLS] A [SEP] (B [SEP]) sequences of at most
// L tokens (longest-first truncation), carrying their label or score.
func encodeTexts(tok *text.Tokenizer, s *textSplit, pair bool, L int) ([]texts.Sequence, error) {
	out := make([]texts.Sequence, s.Len())
	for i := range s.A {
		var b *string
		if pair {
			bi := firstWords(s.B[i], 2*L)
			b = &bi
		}
		seq, err := texts.Encode(tok, L, firstWords(s.A[i], 2*L), b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Src[i], err)
		}
		seq.Label, seq.Score = int32(s.Labels[i]), float32(s.Scores[i])
		out[i] = seq
	}
	return out, nil
}

// Stream feeds training (it implements train.Batches): one text or image
// batch per step, shuffled afresh every epoch. Every batch is a pure
// function of (seed, epoch, step).
type Stream struct {
	Text       *texts.Batcher
	Images     *images.Loader
	Regression bool // text targets are scores (STS-B), not class ids
	Pos        pretrain.Cursor
}

// State implements train.Stateful.
func (s *Stream) State() (json.RawMessage, error) { return json.Marshal(s.Pos) }

// Restore implements train.Stateful.
func (s *Stream) Restore(state json.RawMessage) error {
	if err := json.Unmarshal(state, &s.Pos); err != nil {
		return fmt.Errorf("data stream state: %w", err)
	}
	return nil
}

// Next returns the inputs of the next step: ids, segments, attention mask
// [B, L] and labels [B] (int32) or scores [B] (float32) for text; pixels
// [B, C, H, W] and labels [B] for images.
func (s *Stream) Next() ([]*tensors.Tensor, error) {
	if s.Text != nil {
		tb, err := s.Text.Batch(s.Pos.Epoch, s.Pos.Step)
		if err != nil {
			return nil, err
		}
		s.Pos.Advance(s.Text.StepsPerEpoch())
		return append(textInputs(tb), textTargets(tb, s.Regression)), nil
	}
	ib, err := s.Images.Batch(s.Pos.Epoch, s.Pos.Step)
	if err != nil {
		return nil, err
	}
	s.Pos.Advance(s.Images.StepsPerEpoch())
	return []*tensors.Tensor{pixelInputs(ib), tensors.FromFlatDataAndDimensions(ib.Labels, ib.B)}, nil
}

func textInputs(tb *texts.TextBatch) []*tensors.Tensor {
	return []*tensors.Tensor{
		tensors.FromFlatDataAndDimensions(tb.IDs, tb.B, tb.L),
		tensors.FromFlatDataAndDimensions(tb.TypeIDs, tb.B, tb.L),
		tensors.FromFlatDataAndDimensions(tb.Mask, tb.B, tb.L),
	}
}

func textTargets(tb *texts.TextBatch, regression bool) *tensors.Tensor {
	if regression {
		return tensors.FromFlatDataAndDimensions(tb.Scores, tb.B)
	}
	return tensors.FromFlatDataAndDimensions(tb.Labels, tb.B)
}

func pixelInputs(ib *images.Batch) *tensors.Tensor {
	return tensors.FromFlatDataAndDimensions(ib.Pixels, ib.B, ib.C, ib.H, ib.W)
}

// splitSuffix names the metrics of an extra evaluation split.
func splitSuffix(split string) string {
	return "_" + strings.ReplaceAll(split, "-", "_")
}
