package pretrain

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like the equations.
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/train"
)

// LossFn builds the pre-training losses. Inputs, in order: for text, ids,
// segments, attention mask [B, L], MLM positions, labels, weights [B, P] and,
// when distilling, the teacher's logits [B, P, V]; for images, pixels
// [B, C, H, W], labels [B] and, when distilling, the teacher's logits [B, K].
func LossFn(c *Config) train.LossFn {
	mc := c.Model
	return func(scope *mlmodel.Scope, g *Graph, in []*Node) train.Losses {
		var l train.Losses
		i := 0
		if c.HasText() {
			ids, seg, mask, pos, labels, weights := in[0], in[1], in[2], in[3], in[4], in[5]
			i = 6
			h, _ := mc.Head(MLMHead)
			logits := mc.HeadLogits(scope, h, model.GatherPositions(mc.EncodeText(scope, ids, seg, mask), pos))
			var teacher *Node
			if c.DistillText.Teacher != "" {
				teacher = in[i]
				i++
			}
			l.Text = taskLoss(logits, teacher, labels, weights, c.DistillText)
		}
		if c.HasImage() {
			pixels, labels := in[i], in[i+1]
			h, _ := mc.Head(ImageHead)
			logits := mc.HeadLogits(scope, h, model.CLS(mc.EncodeImage(scope, pixels)))
			var teacher *Node
			if c.DistillImage.Teacher != "" {
				teacher = in[i+2]
			}
			l.Image = taskLoss(logits, teacher, labels, nil, c.DistillImage)
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
