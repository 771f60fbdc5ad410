package pretrain

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like the equations.
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/model"
)

// Scopes of the frozen teachers in the training store.
const (
	TextTeacherScope  = "teacher_text"
	ImageTeacherScope = "teacher_image"
)

// Teacher is a frozen model distilled from. Its variables live in the
// student's store under its scope and are never trained; it runs forward in
// the training graph on the step's own inputs, so its logits never leave the
// device. Dropout is off: a teacher is evaluated, not trained.
type Teacher struct {
	Config model.Config
	Head   string // the head that gives the task's logits
}

// Teachers are the text and the image teacher of a run (nil: no
// distillation for that task).
type Teachers struct {
	Text, Image *Teacher
}

// Frozen lists the scopes of the teachers, for train.Config.Frozen.
func (t Teachers) Frozen() []string {
	var out []string
	if t.Text != nil {
		out = append(out, "/"+TextTeacherScope)
	}
	if t.Image != nil {
		out = append(out, "/"+ImageTeacherScope)
	}
	return out
}

// logits runs the teachers forward on the step's inputs, without gradient.
func (t Teachers) logits(scope *mlmodel.Scope, in Inputs[*Node]) TeacherLogits {
	var z TeacherLogits
	if t.Text != nil && in.Text != nil {
		c, ts := &t.Text.Config, scope.At(TextTeacherScope)
		h, _ := c.Head(t.Text.Head)
		x := in.Text
		z.Text = StopGradient(c.HeadLogits(ts, h, model.GatherPositions(c.EncodeText(ts, x.IDs, x.Segments, x.Mask), x.Positions)))
	}
	if t.Image != nil && in.Image != nil {
		c, is := &t.Image.Config, scope.At(ImageTeacherScope)
		h, _ := c.Head(t.Image.Head)
		z.Image = StopGradient(c.HeadLogits(is, h, model.CLS(c.EncodeImage(is, in.Image.Pixels))))
	}
	return z
}

// NewTeacher checks that a model can teach the student c on one task ("text"
// or "image") and returns it with dropout off. Its head is the first of the
// task's kind (MLM, or image classification) with the student's number of
// outputs.
func NewTeacher(m *model.Config, student *model.Config, task string, outputs int) (*Teacher, error) {
	c := *m
	c.TaskHeads = append([]model.HeadConfig(nil), m.TaskHeads...)
	c.Dropout, c.AttnDropout = 0, 0
	kind := model.HeadClassify
	switch task {
	case "text":
		kind = model.HeadMLM
		if !c.HasText() {
			return nil, fmt.Errorf("a text teacher needs a text side")
		}
		if c.VocabSize != student.VocabSize {
			return nil, fmt.Errorf("the text teacher's vocabulary has %d tokens, the student's %d", c.VocabSize, student.VocabSize)
		}
		if c.MaxTextLength < student.MaxTextLength || c.SegmentVocab < student.SegmentVocab {
			return nil, fmt.Errorf("the text teacher reads texts of up to %d tokens and %d segments, the student's have %d and %d",
				c.MaxTextLength, c.SegmentVocab, student.MaxTextLength, student.SegmentVocab)
		}
	case "image":
		if !c.HasImage() {
			return nil, fmt.Errorf("an image teacher needs an image side")
		}
		if c.ImageSize != student.ImageSize || c.Channels != student.Channels {
			return nil, fmt.Errorf("the image teacher reads %d×%d images with %d channels, the student's are %d×%d with %d",
				c.ImageSize, c.ImageSize, c.Channels, student.ImageSize, student.ImageSize, student.Channels)
		}
	default:
		return nil, fmt.Errorf("unknown teacher task %q (want text or image)", task)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	for _, h := range c.TaskHeads {
		if h.Kind != kind || h.Modality != task {
			continue
		}
		if h.Outputs != outputs {
			return nil, fmt.Errorf("head %q has %d outputs, the student's task has %d", h.Name, h.Outputs, outputs)
		}
		return &Teacher{Config: c, Head: h.Name}, nil
	}
	return nil, fmt.Errorf("no %s head for %s", kind, task)
}

// AddTeacher declares the teacher's variables in store under scope, frozen,
// with the given weights (keyed by the teacher's own variable paths), or with
// the model's initialisation when weights is nil (benchmarks: random
// teachers). Initialised variables get their values from the store's next
// InitializeVariables.
func AddTeacher(store *mlmodel.Store, scope string, t *Teacher, weights map[string][]float32) error {
	for _, v := range model.Variables(&t.Config) {
		path := "/" + scope + v.Path
		if store.GetVariable(path) != nil {
			return fmt.Errorf("teacher variable %s already exists", path)
		}
		var sv *mlmodel.Variable
		if weights == nil {
			sv = store.VariableWithShape(path, shapes.Make(dtypes.Float32, v.Shape...), model.Initializer(store, &t.Config, v.Path))
		} else {
			vals, ok := weights[v.Path]
			if !ok {
				return fmt.Errorf("the teacher has no weights for %s", v.Path)
			}
			var err error
			if sv, err = store.CreateVariable(path, tensors.FromFlatDataAndDimensions(append([]float32(nil), vals...), v.Shape...)); err != nil {
				return fmt.Errorf("teacher variable %s: %w", path, err)
			}
		}
		sv.SetTrainable(false)
	}
	return nil
}

// loadTeacher reads a teacher's model directory (a vitbert run's OUT/model or
// a Hugging Face checkpoint) and adds it to store under scope.
func loadTeacher(store *mlmodel.Store, scope, dir string, student *model.Config, task string, outputs int) (*Teacher, error) {
	m, err := checkpoint.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%s teacher: %w", task, err)
	}
	t, err := NewTeacher(&m.Config, student, task, outputs)
	if err != nil {
		return nil, fmt.Errorf("%s teacher %s: %w", task, dir, err)
	}
	if err := AddTeacher(store, scope, t, m.Weights); err != nil {
		return nil, fmt.Errorf("%s teacher %s: %w", task, dir, err)
	}
	return t, nil
}
