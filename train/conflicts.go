package train

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like the equations.
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
)

// Gradient-conflict diagnostics (Config.DiagnosticsEvery): on every K-th
// step the compiled step also measures, per block of the shared encoder
// (MaskConfig.BlockKey, DefaultBlockKey by default) and for the whole
// encoder, how the text and image gradients gt = ∇L_txt and gi = ∇L_img
// relate: cos(gt, gi), ‖gt‖, ‖gi‖, ‖gt‖/‖gi‖ and the share of parameters
// whose two gradient entries have opposite signs (gt·gi < 0 entrywise). The
// step computes the two gradients apart on those steps whatever the combine
// rule (the sum and weighted rules otherwise take one backward pass), and
// the update is the rule's as on any other step. Under gradient masking
// these are the raw task gradients, before the mask.

// ConflictsFile is the JSON-lines file of the diagnostics, one
// ConflictReport per measured step, under LoopConfig.OutDir.
const ConflictsFile = "conflicts.jsonl"

// ConflictStats describes gt and gi over a set of parameters.
type ConflictStats struct {
	// Cosine of gt and gi; nil when either is zero.
	Cosine    *float64 `json:"cosine"`
	NormText  float64  `json:"norm_text"`
	NormImage float64  `json:"norm_image"`
	// NormRatio is ‖gt‖/‖gi‖; nil when ‖gi‖ = 0.
	NormRatio *float64 `json:"norm_ratio"`
	// OppositeShare is the share of parameters with gt·gi < 0.
	OppositeShare float64 `json:"opposite_share"`
	Params        int     `json:"params"`
}

// ConflictReport is one line of conflicts.jsonl: the statistics after a step
// (Step counts completed steps, this one included; the gradients are those
// of this step's batch, before its update).
type ConflictReport struct {
	Step    int                      `json:"step"`
	Encoder ConflictStats            `json:"encoder"`
	Blocks  map[string]ConflictStats `json:"blocks"`
}

// conflictSums are the sums a ConflictStats is computed from.
type conflictSums struct {
	dot, text2, image2, opposite, params float64
}

func (s conflictSums) add(o conflictSums) conflictSums {
	return conflictSums{s.dot + o.dot, s.text2 + o.text2, s.image2 + o.image2, s.opposite + o.opposite, s.params + o.params}
}

func (s conflictSums) stats() ConflictStats {
	st := ConflictStats{NormText: math.Sqrt(s.text2), NormImage: math.Sqrt(s.image2), Params: int(s.params)}
	if s.params > 0 {
		st.OppositeShare = s.opposite / s.params
	}
	if st.NormText > 0 && st.NormImage > 0 {
		c := s.dot / (st.NormText * st.NormImage)
		st.Cosine = &c
	}
	if st.NormImage > 0 {
		r := st.NormText / st.NormImage
		st.NormRatio = &r
	}
	return st
}

// conflictColumns is the width of the diagnostics output: per block, the
// conflictSums in field order.
const conflictColumns = 5

// blockGroups groups params by block (key), blocks in order of first
// appearance.
func blockGroups(params []*mlmodel.Variable, key func(path string) string) []rankGroup {
	var out []rankGroup
	index := map[string]int{}
	for i, p := range params {
		k := key(p.Path())
		j, found := index[k]
		if !found {
			j = len(out)
			index[k] = j
			out = append(out, rankGroup{name: k})
		}
		out[j].members = append(out[j].members, i)
	}
	return out
}

// conflictGraph returns the float64 [len(groups), conflictColumns] tensor of
// the sums gt·gi, ‖gt‖², ‖gi‖², #(gt·gi < 0) and #entries of each group.
// Each tensor's sums are taken in float32 (counts in int32), then added in
// float64.
func conflictGraph(groups []rankGroup, gt, gi []*Node) *Node {
	g := gt[0].Graph()
	rows := make([]*Node, len(groups))
	for r, grp := range groups {
		cols := make([]*Node, conflictColumns)
		for k := range cols {
			cols[k] = ScalarZero(g, dtypes.Float64)
		}
		for _, i := range grp.members {
			t, im := ConvertDType(gt[i], dtypes.Float32), ConvertDType(gi[i], dtypes.Float32)
			prod := Mul(t, im)
			f64 := func(x *Node) *Node { return ConvertDType(x, dtypes.Float64) }
			opposite := ReduceAllSum(ConvertDType(LessThan(prod, ScalarZero(g, dtypes.Float32)), dtypes.Int32))
			for k, x := range []*Node{ReduceAllSum(prod), ReduceAllSum(Square(t)), ReduceAllSum(Square(im)), opposite,
				Scalar(g, dtypes.Int64, t.Shape().Size())} {
				cols[k] = Add(cols[k], f64(x))
			}
		}
		rows[r] = Stack(cols, 0)
	}
	return Stack(rows, 0)
}

// diagnosticsDue reports whether the next step measures the conflicts.
func (t *Trainer) diagnosticsDue() (bool, error) {
	k := t.cfg.DiagnosticsEvery
	if k <= 0 {
		return false, nil
	}
	if t.nextStep < 0 {
		var err error
		if t.nextStep, err = t.CurrentStep(); err != nil {
			return false, err
		}
	}
	return (t.nextStep+1)%k == 0, nil
}

// conflictReport turns the diagnostics output of a step into a report.
func (t *Trainer) conflictReport(step int, diag *tensors.Tensor) (*ConflictReport, error) {
	t.mu.Lock()
	blocks := t.conflictBlocks
	t.mu.Unlock()
	data, err := tensors.CopyFlatData[float64](diag)
	if err != nil {
		return nil, fmt.Errorf("reading the gradient-conflict diagnostics: %w", err)
	}
	if len(data) != len(blocks)*conflictColumns {
		return nil, fmt.Errorf("gradient-conflict diagnostics: %d values for %d blocks", len(data), len(blocks))
	}
	rep := &ConflictReport{Step: step, Blocks: make(map[string]ConflictStats, len(blocks))}
	var total conflictSums
	for r, name := range blocks {
		row := data[r*conflictColumns : (r+1)*conflictColumns]
		s := conflictSums{row[0], row[1], row[2], row[3], row[4]}
		rep.Blocks[name] = s.stats()
		total = total.add(s)
	}
	rep.Encoder = total.stats()
	return rep, nil
}
