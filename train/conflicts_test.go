package train

import (
	"context"
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/vitbert/vitbert/internal/testutil"
)

// By hand: gt = (1, 0, 2), gi = (−1, 1, 3) in one group. Entrywise products
// (−1, 0, 6): gt·gi = 5, one opposite sign (the 0 is not), ‖gt‖² = 5,
// ‖gi‖² = 11; cos = 5/√55, ratio √5/√11. A second group gt = (3), gi = (−2):
// product −6, so the encoder has gt·gi = −1, ‖gt‖² = 14, ‖gi‖² = 15, two
// opposite signs of four.
func TestConflictStatsByHand(t *testing.T) {
	out := runGraph(t, func(g *Graph, in []*Node) []*Node {
		groups := []rankGroup{{name: "/encoder/a", members: []int{0}}, {name: "/encoder/b", members: []int{1}}}
		return []*Node{conflictGraph(groups, in[:2], in[2:])}
	}, tensors.FromFlatDataAndDimensions([]float32{1, 0, 2}, 3), tensors.FromFlatDataAndDimensions([]float32{3}, 1),
		tensors.FromFlatDataAndDimensions([]float32{-1, 1, 3}, 3), tensors.FromFlatDataAndDimensions([]float32{-2}, 1))
	tr := &Trainer{conflictBlocks: []string{"/encoder/a", "/encoder/b"}}
	rep, err := tr.conflictReport(7, out[0])
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, s ConflictStats, cos, nt, ni, opp float64, n int) {
		t.Helper()
		if s.Cosine == nil || math.Abs(*s.Cosine-cos) > 1e-9 || math.Abs(s.NormText-nt) > 1e-9 ||
			math.Abs(s.NormImage-ni) > 1e-9 || s.NormRatio == nil || math.Abs(*s.NormRatio-nt/ni) > 1e-9 ||
			s.OppositeShare != opp || s.Params != n {
			t.Errorf("%s: %+v (cos %v, ratio %v), want cos %g, norms %g %g, opposite %g, params %d",
				name, s, s.Cosine, s.NormRatio, cos, nt, ni, opp, n)
		}
	}
	check("a", rep.Blocks["/encoder/a"], 5/math.Sqrt(55), math.Sqrt(5), math.Sqrt(11), 1.0/3, 3)
	check("b", rep.Blocks["/encoder/b"], -1, 3, 2, 1, 1)
	check("encoder", rep.Encoder, -1/math.Sqrt(14*15), math.Sqrt(14), math.Sqrt(15), 0.5, 4)
	if rep.Step != 7 {
		t.Errorf("step %d, want 7", rep.Step)
	}
	// A zero gradient has no cosine or ratio; the JSON line still encodes.
	s := conflictSums{text2: 4, params: 2}.stats()
	if s.Cosine != nil || s.NormRatio != nil {
		t.Errorf("zero image gradient: cosine %v, ratio %v, want none", s.Cosine, s.NormRatio)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Error(err)
	}
}

// referenceConflicts computes the per-block and encoder statistics on the
// host from the task gradients of the toy model.
func referenceConflicts(gt, gi map[string][]float32) map[string]conflictSums {
	out := map[string]conflictSums{}
	for path, vt := range gt {
		if !strings.HasPrefix(path, "/encoder/") {
			continue
		}
		var s conflictSums
		for i := range vt {
			a, b := float64(vt[i]), float64(gi[path][i])
			s.dot += a * b
			s.text2 += a * a
			s.image2 += b * b
			if a*b < 0 {
				s.opposite++
			}
			s.params++
		}
		for _, key := range []string{DefaultBlockKey(path), "encoder"} {
			out[key] = out[key].add(s)
		}
	}
	return out
}

func sameStats(t *testing.T, name string, got ConflictStats, want conflictSums) {
	t.Helper()
	w := want.stats()
	if got.Cosine == nil || w.Cosine == nil || math.Abs(*got.Cosine-*w.Cosine) > 1e-5 ||
		relDiff(got.NormText, w.NormText) > 1e-5 || relDiff(got.NormImage, w.NormImage) > 1e-5 ||
		relDiff(*got.NormRatio, *w.NormRatio) > 1e-5 || got.OppositeShare != w.OppositeShare || got.Params != w.Params {
		t.Errorf("%s: got %+v (cos %v), want %+v (cos %v)", name, got, *got.Cosine, w, *w.Cosine)
	}
}

// On the toy model, every second step reports the statistics of its own
// task gradients, per block (the two encoder layers) and for the encoder,
// under the sum, mask and pcgrad rules; the other steps report nothing and
// the update is the rule's either way (sum: the summed gradient).
func TestConflictDiagnosticsOnToyModel(t *testing.T) {
	o := toyOpts{text: true, image: true}
	for _, rule := range []CombineRule{CombineSum, CombineMask, CombinePCGrad} {
		cfg := noClipConfig()
		cfg.DiagnosticsEvery = 2
		cfg.Combine.Rule = rule
		if rule == CombineMask {
			cfg.Mask = MaskConfig{Enabled: true, FinalSparsity: 0.5, Increment: 0.5, StartStep: 1, EndStep: 3}
		}
		tr := newToyTrainer(t, cfg, o)
		for step := 1; step <= 4; step++ {
			batch := toyBatchAt(step)
			gt, gi := referenceGradients(t, tr.Store(), toyLossFn(o), batch)
			res, err := tr.Step(batch...)
			if err != nil {
				t.Fatal(err)
			}
			if step%2 == 1 {
				if res.Conflicts != nil {
					t.Errorf("%s step %d: diagnostics on a step not due", rule, step)
				}
				continue
			}
			if res.Conflicts == nil {
				t.Fatalf("%s step %d: no diagnostics", rule, step)
			}
			if res.Conflicts.Step != step {
				t.Errorf("%s: report of step %d at step %d", rule, res.Conflicts.Step, step)
			}
			want := referenceConflicts(gt, gi)
			if len(res.Conflicts.Blocks) != 2 {
				t.Fatalf("%s: blocks %v, want the two encoder layers", rule, res.Conflicts.Blocks)
			}
			for block, got := range res.Conflicts.Blocks {
				sameStats(t, string(rule)+" "+block, got, want[block])
			}
			sameStats(t, string(rule)+" encoder", res.Conflicts.Encoder, want["encoder"])
			if rule == CombineSum {
				for path, g := range capturedGrads(tr) {
					for i := range g {
						if w := gt[path][i] + gi[path][i]; math.Abs(float64(g[i]-w)) > 1e-6 {
							t.Fatalf("sum with diagnostics: %s[%d] = %g, want %g", path, i, g[i], w)
						}
					}
				}
			}
		}
		tr.Close()
	}
}

func readConflicts(t *testing.T, path string) []ConflictReport {
	t.Helper()
	return testutil.ReadJSONL[ConflictReport](t, path)
}

// PCGrad and CAGrad keep no state of their own: a run resumed from a
// checkpoint matches the uninterrupted one, and conflicts.jsonl is cut back
// to the checkpoint's step like metrics.jsonl, so each measured step appears
// once.
func TestCombineRulesResumeAndConflictsFile(t *testing.T) {
	o := toyOpts{text: true, image: true, dropout: 0.3}
	for _, cc := range []CombineConfig{{Rule: CombinePCGrad}, {Rule: CombineCAGrad, C: 0.4}} {
		cfg := resumeConfig()
		cfg.Mask = MaskConfig{}
		cfg.Combine = cc
		cfg.DiagnosticsEvery = 2
		newLoop := func(out string, total int) *Loop {
			tr, err := NewTrainer(testBackend(), mlmodel.NewStore(), toyLossFn(o), cfg)
			if err != nil {
				t.Fatal(err)
			}
			loop, err := NewLoop(tr, &toyData{}, LoopConfig{OutDir: out, TotalSteps: total, CheckpointEvery: 3,
				KeepCheckpoints: -1, Quiet: true, RunConfig: cfg})
			if err != nil {
				t.Fatal(err)
			}
			return loop
		}
		dirA, dirB := t.TempDir(), t.TempDir()
		if err := newLoop(dirA, 6).Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := newLoop(dirB, 5).Run(context.Background()); err != nil { // stops after step 5
			t.Fatal(err)
		}
		loopC := newLoop(dirB, 6)
		if err := loopC.Resume(filepath.Join(dirB, CheckpointsDir, "step-0000003")); err != nil {
			t.Fatal(err)
		}
		if err := loopC.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		mA, mB := readMetrics(t, filepath.Join(dirA, MetricsFile)), readMetrics(t, filepath.Join(dirB, MetricsFile))
		for step := 1; step <= 6; step++ {
			for _, key := range []string{"loss_text", "loss_image", "grad_norm"} {
				if relDiff(mA[step][key], mB[step][key]) > 1e-5 {
					t.Errorf("%s step %d %s: uninterrupted %g, resumed %g", cc.Rule, step, key, mA[step][key], mB[step][key])
				}
			}
		}
		cA, cB := readConflicts(t, filepath.Join(dirA, ConflictsFile)), readConflicts(t, filepath.Join(dirB, ConflictsFile))
		if len(cA) != 3 || len(cB) != 3 {
			t.Fatalf("%s: %d and %d conflict lines, want 3 (steps 2, 4, 6)", cc.Rule, len(cA), len(cB))
		}
		for i := range cA {
			if cA[i].Step != 2*(i+1) || cB[i].Step != cA[i].Step {
				t.Errorf("%s: line %d has steps %d and %d, want %d", cc.Rule, i, cA[i].Step, cB[i].Step, 2*(i+1))
			}
			if math.Abs(*cA[i].Encoder.Cosine-*cB[i].Encoder.Cosine) > 1e-5 {
				t.Errorf("%s step %d: cosine %g uninterrupted, %g resumed", cc.Rule, cA[i].Step,
					*cA[i].Encoder.Cosine, *cB[i].Encoder.Cosine)
			}
		}
	}
}
