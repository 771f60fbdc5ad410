package infer

import (
	"fmt"
	"math"

	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/text"
)

// PickHead returns the head called name, checking that it reads modality;
// with an empty name, the model's first head for modality (nil when it has
// none).
func PickHead(c *model.Config, name, modality string) (*model.HeadConfig, error) {
	if name != "" {
		h, ok := c.Head(name)
		if !ok {
			return nil, &NoHeadError{Name: name, Have: HeadNames(c)}
		}
		if h.Modality != modality {
			return nil, fmt.Errorf("head %q reads %s input, not %s", name, h.Modality, modality)
		}
		return h, nil
	}
	for i := range c.TaskHeads {
		if c.TaskHeads[i].Modality == modality {
			return &c.TaskHeads[i], nil
		}
	}
	return nil, nil
}

// NoHeadError says that a model has no head of the asked name.
type NoHeadError struct {
	Name string
	Have []string
}

func (e *NoHeadError) Error() string {
	return fmt.Sprintf("the model has no head %q (it has %v)", e.Name, e.Have)
}

// HeadNames lists the model's heads.
func HeadNames(c *model.Config) []string {
	names := []string{}
	for _, h := range c.TaskHeads {
		names = append(names, h.Name)
	}
	return names
}

// LoadTokenizer takes path (a --tokenizer file or directory), else the
// model's own vocabulary (text.ForModel: the one saved beside the model,
// else bert-base-uncased), and checks it against the model's vocabulary
// size (its embedding rows; 0 skips the check).
func LoadTokenizer(path, modelDir string, vocabSize int) (*text.Tokenizer, error) {
	if path == "" {
		return text.ForModel(modelDir, vocabSize)
	}
	tok, err := text.Load(path)
	if err != nil {
		return nil, err
	}
	if vocabSize > 0 && tok.VocabSize() != vocabSize {
		return nil, fmt.Errorf("--tokenizer %s has %d tokens but the model's vocabulary has %d", path, tok.VocabSize(), vocabSize)
	}
	return tok, nil
}

// PadBatch lays encodings out as a [len(encs), length] batch: ids padded with
// pad, segments and attention mask with 0. Every encoding must fit.
func PadBatch(encs []text.Encoding, length int, pad int32) (ids, seg, mask [][]int32) {
	ids = make([][]int32, len(encs))
	seg = make([][]int32, len(encs))
	mask = make([][]int32, len(encs))
	for i, e := range encs {
		ids[i] = make([]int32, length)
		seg[i] = make([]int32, length)
		mask[i] = make([]int32, length)
		copy(ids[i], e.IDs)
		copy(seg[i], e.TypeIDs)
		copy(mask[i], e.AttentionMask)
		for j := e.Len(); j < length; j++ {
			ids[i][j] = pad
		}
	}
	return ids, seg, mask
}

// Softmax returns the probabilities of logits x, computed in float64.
func Softmax(x []float32) []float64 {
	m := x[0]
	for _, v := range x {
		m = max(m, v)
	}
	out := make([]float64, len(x))
	sum := 0.0
	for i, v := range x {
		out[i] = math.Exp(float64(v - m))
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}
