package report

import (
	"math"
	"testing"
)

func TestMeanCIHandValues(t *testing.T) {
	// mean 2, sample sd 1, t(0.975, 2 dof) = 4.302652729911275.
	iv := MeanCI([]float64{1, 2, 3})
	h := 4.302652729911275 / math.Sqrt(3)
	if iv.N != 3 || math.Abs(iv.Mean-2) > 1e-12 || math.Abs(iv.Lo-(2-h)) > 1e-9 || math.Abs(iv.Hi-(2+h)) > 1e-9 {
		t.Fatalf("MeanCI = %+v, want 2 ± %g", iv, h)
	}
	if one := MeanCI([]float64{5}); one.N != 1 || !math.IsNaN(one.Lo) {
		t.Fatalf("one value has no interval: %+v", one)
	}
}

func cell(v, task string, p, s int, x float64) Cell {
	return Cell{Variant: v, Task: task, PretrainSeed: p, Seed: s, Metrics: map[string]float64{"acc": x}, Main: "acc"}
}

func TestPairedDiffPairsBySeeds(t *testing.T) {
	var cells []Cell
	// a − b is exactly 0.1 + 0.01·s on each pair; unpaired means differ by
	// much more, so pairing by the wrong key would not give these values.
	for p := 1; p <= 2; p++ {
		for s := 1; s <= 3; s++ {
			base := float64(p*10 + s)
			cells = append(cells, cell("a", "t", p, s, base+0.1+0.01*float64(s)), cell("b", "t", p, s, base))
		}
	}
	d := PairedDiff(cells, "a", "b", "t", "")
	if d.N != 6 || math.Abs(d.Mean-0.12) > 1e-9 {
		t.Fatalf("paired diff = %+v, want mean 0.12 over 6 pairs", d)
	}
	// Scratch pairs with every pre-training seed by fine-tuning seed.
	for s := 1; s <= 3; s++ {
		cells = append(cells, cell("from scratch", "t", 0, s, float64(s)))
	}
	d = PairedDiff(cells, "a", "from scratch", "t", "")
	// a(p,s) − scratch(s) = 10p + 0.1 + 0.01s: mean over p∈{1,2}, s∈{1,2,3} = 15.12.
	if d.N != 6 || math.Abs(d.Mean-15.12) > 1e-9 {
		t.Fatalf("diff against scratch = %+v, want 15.12 over 6 pairs", d)
	}
	r := PairedDiff(cells, "from scratch", "a", "t", "")
	if r.N != 6 || math.Abs(r.Mean+15.12) > 1e-9 {
		t.Fatalf("scratch − a = %+v, want −15.12", r)
	}
	if o := PairedDiff(cells, "a", "b", "t", "probe"); o.N != 0 {
		t.Fatalf("another protocol's cells were paired: %+v", o)
	}
}

func TestJudgeVerdicts(t *testing.T) {
	tasks := []TaskRef{{Label: "img", Modality: "image"}, {Label: "txt", Modality: "text"}}
	score := map[string]float64{
		"from scratch": 0.50, "joint": 0.70, "ViT (image only)": 0.80, "BERT (text only)": 0.80,
		"joint + KD": 0.75, "joint + GM": 0.70, "joint + KD + GM": 0.60,
	}
	var cells []Cell
	for _, task := range tasks {
		for v, x := range score {
			ps := []int{1, 2}
			if v == "from scratch" {
				ps = []int{0}
			}
			if v == "ViT (image only)" && task.Modality != "image" || v == "BERT (text only)" && task.Modality != "text" {
				continue
			}
			for _, p := range ps {
				for s := 1; s <= 3; s++ {
					// Small seed noise so intervals exist.
					cells = append(cells, cell(v, task.Label, p, s, x+0.001*float64((p*7+s*3)%5)))
				}
			}
		}
	}
	want := map[string]string{"C1": Supported, "C2": Supported, "C3": Supported, "C4": Inconclusive, "C5": Contradicted}
	for _, v := range Judge(cells, tasks, "") {
		if v.Word != want[v.ID] {
			t.Errorf("%s: %s, want %s (%+v)", v.ID, v.Word, want[v.ID], v.Evidence)
		}
	}
	for _, v := range Judge(cells, tasks, "probe") {
		if v.Word != NotTested {
			t.Errorf("%s judged without cells: %s", v.ID, v.Word)
		}
	}
}
