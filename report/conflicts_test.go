package report

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vitbert/vitbert/pretrain"
	"github.com/vitbert/vitbert/train"
)

func writeConflicts(t *testing.T, dir string, reps []train.ConflictReport) {
	t.Helper()
	var b strings.Builder
	for _, r := range reps {
		line, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(filepath.Join(dir, train.ConflictsFile), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func cos(x float64) train.ConflictStats { return train.ConflictStats{Cosine: &x} }

// The figure's data: per block, one series per run in run order, blocks in
// numeric order with the whole encoder first; a step without a cosine (zero
// gradient) is left out, a block a run lacks gives that run an empty series.
func TestConflictCosines(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeConflicts(t, a, []train.ConflictReport{
		{Step: 5, Encoder: cos(0.1), Blocks: map[string]train.ConflictStats{"/encoder/layer_10": cos(-0.2), "/encoder/layer_2": cos(0.3)}},
		{Step: 10, Encoder: cos(0.05), Blocks: map[string]train.ConflictStats{"/encoder/layer_10": {}, "/encoder/layer_2": cos(0.25)}},
	})
	writeConflicts(t, b, []train.ConflictReport{
		{Step: 5, Encoder: cos(-0.4), Blocks: map[string]train.ConflictStats{"/encoder/layer_2": cos(-0.5), "/encoder/final_norm": cos(0.9)}},
	})
	runs := []NamedRun{{Name: "sum", Dir: a}, {Name: "pcgrad", Dir: b}}
	blocks, series, err := conflictCosines(runs)
	if err != nil {
		t.Fatal(err)
	}
	wantBlocks := []string{encoderPanel, "/encoder/final_norm", "/encoder/layer_2", "/encoder/layer_10"}
	if !slices.Equal(blocks, wantBlocks) {
		t.Fatalf("blocks %v, want %v", blocks, wantBlocks)
	}
	type pt struct{ x, y float64 }
	get := func(block string, run int) []pt {
		var out []pt
		for _, p := range series[block][run].XY {
			out = append(out, pt{p.X, p.Y})
		}
		return out
	}
	checks := []struct {
		block string
		run   int
		want  []pt
	}{
		{encoderPanel, 0, []pt{{5, 0.1}, {10, 0.05}}},
		{encoderPanel, 1, []pt{{5, -0.4}}},
		{"/encoder/layer_10", 0, []pt{{5, -0.2}}},
		{"/encoder/layer_10", 1, nil},
		{"/encoder/layer_2", 1, []pt{{5, -0.5}}},
		{"/encoder/final_norm", 0, nil},
		{"/encoder/final_norm", 1, []pt{{5, 0.9}}},
	}
	for _, c := range checks {
		if got := get(c.block, c.run); !slices.Equal(got, c.want) {
			t.Errorf("%s, run %d: %v, want %v", c.block, c.run, got, c.want)
		}
		if n := len(series[c.block]); n != 2 {
			t.Errorf("%s: %d series, want one per run", c.block, n)
		}
	}
	png := filepath.Join(t.TempDir(), "cosines.png")
	if err := ConflictFigure(png, runs); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(png); err != nil || st.Size() < 1000 {
		t.Errorf("figure not written: %v", err)
	}
	err = ConflictFigure(png, []NamedRun{{Name: "no diagnostics", Dir: t.TempDir()}})
	if err == nil || !strings.Contains(err.Error(), "no diagnostics") || !strings.Contains(err.Error(), train.ConflictsFile) {
		t.Errorf("missing conflicts.jsonl: error %v, want one naming the run and the file", err)
	}
}

// A variant's combine rule reaches its pre-training configuration, which
// then validates; without one the preset's rule (none: sum) stays.
func TestVariantCombine(t *testing.T) {
	c, err := pretrain.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{Plan: Plan{Pretrain: c}, Out: t.TempDir()}
	got := r.config(Variant{Name: "joint + PCGrad", Mode: pretrain.ModeJoint, Combine: train.CombinePCGrad})
	got.Finish()
	if got.Combine.Rule != train.CombinePCGrad || got.Mask.Enabled {
		t.Errorf("combine %+v, mask enabled %v; want pcgrad without mask", got.Combine, got.Mask.Enabled)
	}
	if err := got.Validate(); err != nil {
		t.Error(err)
	}
	if plain := r.config(Variant{Name: "joint", Mode: pretrain.ModeJoint}); plain.Combine.Rule != "" {
		t.Errorf("plain joint: combine rule %q, want the preset's (none)", plain.Combine.Rule)
	}
}

// The report's conflict section covers the joint runs that logged
// diagnostics (the text-only run and a joint run without them are left out)
// and gives each one's mean whole-encoder cosine and share below zero.
func TestConflictSection(t *testing.T) {
	p := microPlan(t)
	p.Pretrain.Diagnostics = 5
	r := &Runner{Plan: p, Out: t.TempDir()}
	joint := Variant{Name: "joint", Mode: pretrain.ModeJoint}
	pc := Variant{Name: "joint + PCGrad", Mode: pretrain.ModeJoint, Combine: train.CombinePCGrad, Ablation: "combine"}
	silent := Variant{Name: "joint + KD", Mode: pretrain.ModeJoint, Distill: true}
	text := Variant{Name: "BERT (text only)", Mode: pretrain.ModeText}
	for _, v := range []Variant{joint, pc, silent, text} {
		if err := os.MkdirAll(r.pretrainDir(v), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeConflicts(t, r.pretrainDir(joint), []train.ConflictReport{{Step: 5, Encoder: cos(0.2)}, {Step: 10, Encoder: cos(-0.1)}, {Step: 15, Encoder: cos(0.5)}})
	writeConflicts(t, r.pretrainDir(pc), []train.ConflictReport{{Step: 5, Encoder: cos(-0.3)}})
	writeConflicts(t, r.pretrainDir(text), []train.ConflictReport{{Step: 5, Encoder: cos(0.9)}})
	figDir := t.TempDir()
	got, err := r.conflictSection([]Variant{text, joint, silent, pc}, figDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| joint | 3 | +0.200 | 33% |", "| joint + PCGrad | 1 | -0.300 | 100% |", "figures/conflicts.png"} {
		if !strings.Contains(got, want) {
			t.Errorf("section lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "BERT") || strings.Contains(got, "joint + KD") {
		t.Errorf("section lists a run without joint diagnostics:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(figDir, "conflicts.png")); err != nil {
		t.Errorf("no figure: %v", err)
	}
	if got, err := r.conflictSection([]Variant{text, silent}, figDir); got != "" || err != nil {
		t.Errorf("no joint diagnostics: %q, %v; want nothing", got, err)
	}
}

// The combine section compares gradient masking with every combine row under
// every protocol: a table each, and paired differences over the seeds the
// rows share (hand values: GM − PCGrad is 2 and 4 points under fine-tuning,
// −1 and −1 under the probe).
func TestCombineSection(t *testing.T) {
	p := microPlan(t)
	p.Tasks = []TaskRef{{Name: "mnist", Label: "MNIST", Modality: "image"}}
	r := &Runner{Plan: p, Out: t.TempDir()}
	var cells []Cell
	add := func(proto, variant string, ps int, x float64) {
		cells = append(cells, Cell{Variant: variant, Task: "MNIST", Protocol: proto, PretrainSeed: ps, Seed: 1,
			Metrics: map[string]float64{"accuracy": x}, Main: "accuracy", Dir: filepath.Join(r.Out, proto, variant, fmt.Sprint(ps))})
	}
	add(ProtocolFinetune, "joint + GM", 1, 0.92)
	add(ProtocolFinetune, "joint + GM", 2, 0.95)
	add(ProtocolFinetune, "joint + PCGrad", 1, 0.90)
	add(ProtocolFinetune, "joint + PCGrad", 2, 0.91)
	add(ProtocolProbe, "joint + GM", 1, 0.70)
	add(ProtocolProbe, "joint + GM", 2, 0.71)
	add(ProtocolProbe, "joint + PCGrad", 1, 0.71)
	add(ProtocolProbe, "joint + PCGrad", 2, 0.72)
	gm := Variant{Name: "joint + GM", Mode: pretrain.ModeJoint, Mask: true}
	pc := Variant{Name: "joint + PCGrad", Mode: pretrain.ModeJoint, Combine: train.CombinePCGrad, Ablation: "combine"}
	protocols := []Protocol{{Name: ProtocolProbe}, {Name: ProtocolFinetune}}
	got := r.combineSection(cells, []Variant{gm, pc}, []Variant{pc}, protocols)
	for _, pr := range protocols {
		if !strings.Contains(got, "### "+pr.Label()) {
			t.Errorf("no table for %s:\n%s", pr.Label(), got)
		}
	}
	ft := PairedDiff(cells, "joint + GM", "joint + PCGrad", "MNIST", ProtocolFinetune)
	probe := PairedDiff(cells, "joint + GM", "joint + PCGrad", "MNIST", ProtocolProbe)
	if ft.N != 2 || math.Abs(ft.Mean-0.03) > 1e-9 || probe.N != 2 || math.Abs(probe.Mean+0.01) > 1e-9 {
		t.Fatalf("paired differences %+v and %+v, want means 3 and −1 over 2 pairs", ft, probe)
	}
	for _, want := range []string{"- MNIST: joint + GM − joint + PCGrad = " + ft.String(), "- MNIST: joint + GM − joint + PCGrad = " + probe.String()} {
		if !strings.Contains(got, want) {
			t.Errorf("section lacks %q:\n%s", want, got)
		}
	}
}

// Over a narrow range the y-axis labels of a line plot stay distinct and
// write the tick's value (6.45 is not labelled 6.4).
func TestDistinctTicks(t *testing.T) {
	for _, r := range [][2]float64{{6.58, 6.71}, {6.398, 6.752}, {6.448, 6.755}, {0, 1}, {6.5, 6.501}, {100, 3000}} {
		seen := map[string]bool{}
		n := 0
		for _, tk := range (distinctTicks{}).Ticks(r[0], r[1]) {
			if tk.Label == "" {
				continue
			}
			n++
			if v, err := strconv.ParseFloat(tk.Label, 64); err != nil || math.Abs(v-tk.Value) > 1e-6*(r[1]-r[0]) {
				t.Errorf("range %v: tick at %g labelled %q", r, tk.Value, tk.Label)
			}
			if seen[tk.Label] {
				t.Errorf("range %v: label %q twice", r, tk.Label)
			}
			seen[tk.Label] = true
		}
		if n < 2 {
			t.Errorf("range %v: %d labelled ticks", r, n)
		}
	}
}
