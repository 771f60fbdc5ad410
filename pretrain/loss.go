package pretrain

import (
	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like the equations.
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/train"
)

// LossFn builds the pre-training losses of one step from its Inputs (see
// Inputs.Flatten for the order the trainer passes them). A task with a
// teacher is distilled: the teacher runs forward in the same graph, frozen.
func LossFn(c *Config, t Teachers) train.LossFn {
	mc := c.Model
	return func(scope *mlmodel.Scope, g *Graph, flat []*Node) train.Losses {
		in, err := UnflattenInputs(flat, c.HasText(), c.HasImage())
		if err != nil {
			exceptions.Panicf("pre-training step: %v", err)
		}
		z := t.logits(scope, in)
		var l train.Losses
		if x := in.Text; x != nil {
			h, _ := mc.Head(MLMHead)
			logits := mc.HeadLogits(scope, h, model.GatherPositions(mc.EncodeText(scope, x.IDs, x.Segments, x.Mask), x.Positions))
			l.Text = taskLoss(logits, z.Text, x.Labels, x.Weights, c.DistillText)
		}
		if x := in.Image; x != nil {
			h, _ := mc.Head(ImageHead)
			logits := mc.HeadLogits(scope, h, model.CLS(mc.EncodeImage(scope, x.Pixels)))
			l.Image = taskLoss(logits, z.Image, x.Labels, nil, c.DistillImage)
		}
		return l
	}
}

func taskLoss(logits, teacher, labels, weights *Node, d Distill) *Node {
	if teacher == nil {
		return train.SoftmaxCrossEntropy(logits, labels, weights)
	}
	return train.DistillationLoss(logits, teacher, labels, weights, d.Alpha, d.Tau)
}

// NewTrainer returns the trainer of the pre-training step of c: store holds
// the student at its root and the teachers (if any) under their scopes,
// frozen. The benchmark times the step this returns.
func NewTrainer(backend compute.Backend, store *mlmodel.Store, c *Config, t Teachers) (*train.Trainer, error) {
	return train.NewTrainer(backend, store, LossFn(c, t), train.Config{
		Optimizer: c.Optimizer, Mask: c.Mask, SharedPrefix: "/" + model.EncoderScope, Seed: c.Seed,
		Devices: c.Devices, Mesh: c.Mesh, Frozen: t.Frozen(),
		Combine: c.Combine, DiagnosticsEvery: c.Diagnostics,
	})
}
