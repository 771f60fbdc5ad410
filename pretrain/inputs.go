package pretrain

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like the equations.
	"github.com/gomlx/gomlx/core/tensors"
)

// TextInputs are the MLM inputs of one step: token ids, segment ids and the
// attention mask (1 for real tokens), int32 [B, L]; the masked positions and
// their labels, int32 [B, P], and the positions' weights, float32 [B, P]
// (0 for padding predictions).
type TextInputs[T any] struct {
	IDs, Segments, Mask        T
	Positions, Labels, Weights T
}

// ImageInputs are the classification inputs of one step: pixels, float32
// [B, C, H, W], and labels, int32 [B].
type ImageInputs[T any] struct {
	Pixels, Labels T
}

// Inputs are one step's inputs, by name: T is *tensors.Tensor on the host
// (the data stream, the benchmark) and *graph.Node in the graph (the loss).
// A task the run does not train is nil. Flatten and UnflattenInputs fix the
// order in which the trainer passes them, in this one place.
type Inputs[T any] struct {
	Text  *TextInputs[T]
	Image *ImageInputs[T]
}

// HostInputs are a step's inputs on the host, as the data stream makes them.
type HostInputs = Inputs[*tensors.Tensor]

// Flatten lists the inputs in the order the trainer passes them: the text
// inputs in field order, then the image inputs.
func (in Inputs[T]) Flatten() []T {
	var out []T
	if t := in.Text; t != nil {
		out = append(out, t.IDs, t.Segments, t.Mask, t.Positions, t.Labels, t.Weights)
	}
	if im := in.Image; im != nil {
		out = append(out, im.Pixels, im.Labels)
	}
	return out
}

// UnflattenInputs is the inverse of Flatten for a run that trains text
// and/or images.
func UnflattenInputs[T any](flat []T, hasText, hasImage bool) (Inputs[T], error) {
	var in Inputs[T]
	want := 0
	if hasText {
		want += 6
	}
	if hasImage {
		want += 2
	}
	if len(flat) != want {
		return in, fmt.Errorf("got %d step inputs, want %d (text: %v, images: %v)", len(flat), want, hasText, hasImage)
	}
	if hasText {
		in.Text = &TextInputs[T]{IDs: flat[0], Segments: flat[1], Mask: flat[2],
			Positions: flat[3], Labels: flat[4], Weights: flat[5]}
		flat = flat[6:]
	}
	if hasImage {
		in.Image = &ImageInputs[T]{Pixels: flat[0], Labels: flat[1]}
	}
	return in, nil
}

// TeacherLogits are the frozen teachers' logits of one step, computed in the
// training graph: Text [B, P, V] at the MLM positions, Image [B, K]; nil for
// a task without a teacher.
type TeacherLogits struct {
	Text, Image *Node
}
