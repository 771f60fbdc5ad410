package pretrain

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/vitbert/vitbert/data/images"
	"github.com/vitbert/vitbert/data/texts"
	"github.com/vitbert/vitbert/text"
)

// TextData is the MLM side: packed sequences and their batcher, masked
// afresh every epoch from (seed, epoch, sequence).
type TextData struct {
	Seqs    []texts.Sequence // the packed sequences
	Batcher *texts.Batcher
	Tok     *text.Tokenizer
	P       int // predictions per sequence
}

// LoadCorpus reads the corpus named in the config ("embedded" or paths).
func LoadCorpus(spec string) ([]texts.Document, error) {
	if spec == "" || spec == "embedded" {
		return texts.DefaultCorpus()
	}
	return texts.ReadCorpus(texts.CorpusOptions{}, strings.Split(spec, ",")...)
}

// Vocabulary returns the run's text vocabulary (Data.Vocab, a vocabulary of
// Data.VocabSize tokens trained from docs, or the built-in one).
func Vocabulary(d Data, docs []texts.Document) (*text.Tokenizer, error) {
	switch {
	case d.VocabSize > 0:
		tok, err := texts.TrainVocab(docs, d.VocabSize, 0)
		if err != nil {
			return nil, fmt.Errorf("training the vocabulary: %w", err)
		}
		return tok, nil
	case d.Vocab != "":
		return text.Load(d.Vocab)
	}
	return text.Default()
}

// NewTextData packs the corpus into sequences of the model's length and
// prepares MLM masking.
func NewTextData(c *Config, tok *text.Tokenizer, docs []texts.Document) (*TextData, error) {
	L := c.Model.MaxTextLength
	seqs, err := texts.Pack(docs, tok, texts.PackOptions{MaxLength: L, Seed: uint64(c.Seed)})
	if err != nil {
		return nil, err
	}
	if len(seqs) < c.TextBatch {
		return nil, fmt.Errorf("the corpus packs into %d sequences of %d tokens, fewer than one batch of %d", len(seqs), L, c.TextBatch)
	}
	P := c.MaxPredictions()
	mcfg := text.DefaultMaskConfig(tok.MASK(), P)
	mcfg.Prob = c.Data.MaskProb
	seed := uint64(c.Seed)
	mask := text.DynamicMask(tok, mcfg, seed)
	b, err := texts.NewBatcher(seqs, texts.BatchOptions{BatchSize: c.TextBatch, MaxLength: L, PAD: tok.PAD(),
		Seed: seed, Mask: mask, MaxPredictions: P})
	if err != nil {
		return nil, err
	}
	return &TextData{Seqs: seqs, Batcher: b, Tok: tok, P: P}, nil
}

// textInputs turns a batch into the model's text inputs: ids, segments,
// attention mask [B, L]; MLM positions, labels, weights [B, P].
func (d *TextData) textInputs(tb *texts.TextBatch) (ids, seg, mask, pos, lab [][]int32, w [][]float32) {
	B, L, P := tb.B, tb.L, tb.P
	for r := range B {
		ids = append(ids, tb.IDs[r*L:(r+1)*L])
		seg = append(seg, tb.TypeIDs[r*L:(r+1)*L])
		mask = append(mask, tb.Mask[r*L:(r+1)*L])
		pos = append(pos, tb.MLMPositions[r*P:(r+1)*P])
		lab = append(lab, tb.MLMLabels[r*P:(r+1)*P])
		w = append(w, tb.MLMWeights[r*P:(r+1)*P])
	}
	return
}

// inputs returns the text inputs of a batch.
func (d *TextData) inputs(epoch, step int) (*TextInputs[*tensors.Tensor], error) {
	tb, err := d.Batcher.Batch(epoch, step)
	if err != nil {
		return nil, err
	}
	ids, seg, mask, pos, lab, w := d.textInputs(tb)
	return &TextInputs[*tensors.Tensor]{IDs: i32(ids), Segments: i32(seg), Mask: i32(mask),
		Positions: i32(pos), Labels: i32(lab), Weights: f32(w)}, nil
}

// imageInputs returns the image inputs of a batch.
func imageInputs(b *images.Batch) *ImageInputs[*tensors.Tensor] {
	return &ImageInputs[*tensors.Tensor]{Pixels: tensors.FromFlatDataAndDimensions(b.Pixels, b.B, b.C, b.H, b.W),
		Labels: tensors.FromFlatDataAndDimensions(b.Labels, b.B)}
}

// Cursor is a resumable position in an endless sequence of epochs.
type Cursor struct {
	Epoch, Step int
}

// Advance moves to the next step, into the next epoch after the last one.
func (c *Cursor) Advance(stepsPerEpoch int) {
	c.Step++
	if c.Step >= stepsPerEpoch {
		c.Epoch, c.Step = c.Epoch+1, 0
	}
}

// Stream feeds the training loop: one text and/or one image batch per step
// (the teachers, if any, run inside the training graph). Its state is the
// two cursors: every batch is a pure function of (seed, epoch, step), so a
// resumed run sees exactly the batches of an uninterrupted one.
type Stream struct {
	Text   *TextData
	Images *images.Loader

	TextPos, ImagePos Cursor
}

// State implements train.Stateful.
func (s *Stream) State() (json.RawMessage, error) {
	return json.Marshal(map[string]Cursor{"text": s.TextPos, "image": s.ImagePos})
}

// Restore implements train.Stateful.
func (s *Stream) Restore(state json.RawMessage) error {
	var m map[string]Cursor
	if err := json.Unmarshal(state, &m); err != nil {
		return fmt.Errorf("data stream state: %w", err)
	}
	s.TextPos, s.ImagePos = m["text"], m["image"]
	return nil
}

func i32(rows [][]int32) *tensors.Tensor   { return tensors.FromValue(rows) }
func f32(rows [][]float32) *tensors.Tensor { return tensors.FromValue(rows) }

// Next implements train.Batches: the next step's Inputs, flattened.
func (s *Stream) Next() ([]*tensors.Tensor, error) {
	in, err := s.NextInputs()
	if err != nil {
		return nil, err
	}
	return in.Flatten(), nil
}

// NextInputs returns the inputs of the next step and advances the cursors.
func (s *Stream) NextInputs() (HostInputs, error) {
	var in HostInputs
	if s.Text != nil {
		var err error
		if in.Text, err = s.Text.inputs(s.TextPos.Epoch, s.TextPos.Step); err != nil {
			return in, err
		}
		s.TextPos.Advance(s.Text.Batcher.StepsPerEpoch())
	}
	if s.Images != nil {
		ib, err := s.Images.Batch(s.ImagePos.Epoch, s.ImagePos.Step)
		if err != nil {
			return in, err
		}
		in.Image = imageInputs(ib)
		s.ImagePos.Advance(s.Images.StepsPerEpoch())
	}
	return in, nil
}
