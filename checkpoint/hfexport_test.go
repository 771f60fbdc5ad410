package checkpoint_test

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/vitbert/vitbert/checkpoint"
	"github.com/vitbert/vitbert/infer"
	"github.com/vitbert/vitbert/internal/testmodel"
	"github.com/vitbert/vitbert/model"
)

type inputs struct {
	IDs, Segments, Mask, Positions [][]int32
	Pixels                         []float32
}

func testInputs() inputs {
	in := inputs{
		IDs:       [][]int32{{2, 7, 4, 9, 11, 3, 0, 0}, {2, 5, 5, 4, 30, 39, 17, 3}},
		Segments:  [][]int32{{0, 0, 0, 0, 1, 1, 0, 0}, {0, 0, 0, 0, 0, 1, 1, 1}},
		Mask:      [][]int32{{1, 1, 1, 1, 1, 1, 0, 0}, {1, 1, 1, 1, 1, 1, 1, 1}},
		Positions: [][]int32{{2, 4}, {1, 6}},
		Pixels:    make([]float32, 2*3*8*8),
	}
	for i := range in.Pixels {
		in.Pixels[i] = float32(math.Sin(float64(i) * 0.37))
	}
	return in
}

// logits runs every head of m on the test inputs with vitbert.
func logits(t *testing.T, m *checkpoint.Model) map[string][]float32 {
	t.Helper()
	backend, err := compute.NewWithConfig("go")
	if err != nil {
		t.Fatal(err)
	}
	p, err := infer.New(backend, m)
	if err != nil {
		t.Fatal(err)
	}
	in := testInputs()
	out := map[string][]float32{}
	for _, h := range m.Config.TaskHeads {
		var o *infer.Output
		if h.Modality == "text" {
			var pos [][]int32
			if h.Kind == model.HeadMLM {
				pos = in.Positions
			}
			o, err = p.Text(h.Name, in.IDs, in.Segments, in.Mask, pos)
		} else {
			o, err = p.Image(h.Name, in.Pixels, 2)
		}
		if err != nil {
			t.Fatalf("head %s: %v", h.Name, err)
		}
		out[h.Name] = o.Logits
	}
	return out
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// The joint model exports as two folders that vitbert imports back with the
// same logits on every head of each side.
func TestExportJointRoundTrip(t *testing.T) {
	m := testmodel.Joint(t, model.PreNorm)
	want := logits(t, m)
	out := filepath.Join(t.TempDir(), "export")
	dirs, err := checkpoint.Export(out, &m.Config, m.Weights)
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 2 {
		t.Fatalf("exported %v, want text and image folders", dirs)
	}
	seen := 0
	for _, d := range dirs {
		back, err := checkpoint.LoadDir(d)
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if back.Config.HasText() == back.Config.HasImage() {
			t.Fatalf("%s: both or neither side", d)
		}
		if _, err := os.Stat(filepath.Join(d, checkpoint.ModelingFile)); err != nil {
			t.Errorf("%s: %v", d, err)
		}
		for name, l := range logits(t, back) {
			if diff := maxAbsDiff(l, want[name]); diff > 1e-5 {
				t.Errorf("%s: head %s differs by %g after export and import", d, name, diff)
			}
			seen++
		}
	}
	if seen != 3 {
		t.Errorf("compared %d heads, want 3", seen)
	}
}

// A BERT-shaped model keeps the exact transformers mapping.
func TestExportBertShapedUsesExactMapping(t *testing.T) {
	m, err := checkpoint.LoadDir("../testdata/hf/bert-tiny/mlm")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "bert")
	if _, err := checkpoint.Export(out, &m.Config, m.Weights); err != nil {
		t.Fatal(err)
	}
	back, err := checkpoint.LoadDir(out)
	if err != nil || back.Arch != "BertForMaskedLM" {
		t.Fatalf("arch %v, err %v", back, err)
	}
}

// The exported modelling file, run by PyTorch alone, reproduces vitbert's
// logits. Skipped where python3 has no torch.
func TestExportedModelingFileMatchesVitbert(t *testing.T) {
	python := ""
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import torch").Run() == nil {
			python = p
			break
		}
	}
	if python == "" {
		t.Skip("no python3 with torch")
	}
	for _, norm := range []string{model.PreNorm, model.PostNorm} {
		t.Run(norm, func(t *testing.T) { torchMatches(t, python, testmodel.Joint(t, norm)) })
	}
}

func torchMatches(t *testing.T, python string, m *checkpoint.Model) {
	want := logits(t, m)
	out := filepath.Join(t.TempDir(), "export")
	dirs, err := checkpoint.Export(out, &m.Config, m.Weights)
	if err != nil {
		t.Fatal(err)
	}
	in := testInputs()
	inJSON, _ := json.Marshal(in)
	script := `
import json, sys, torch
sys.path.insert(0, sys.argv[1])
import modeling_vitbert as mv
inp = json.loads(sys.argv[3])
res = {}
for d in sys.argv[1:3]:
    m = mv.VitbertCore.from_dir(d)
    with torch.no_grad():
        for name, spec in m.head_specs.items():
            if spec["modality"] == "text":
                _, l = m(input_ids=torch.tensor(inp["IDs"]), token_type_ids=torch.tensor(inp["Segments"]),
                         attention_mask=torch.tensor(inp["Mask"]), head=name,
                         mlm_positions=torch.tensor(inp["Positions"]) if spec["kind"] == "mlm" else None)
            else:
                _, l = m(pixel_values=torch.tensor(inp["Pixels"]).reshape(2, 3, 8, 8), head=name)
            res[name] = l.flatten().tolist()
print(json.dumps(res))
`
	cmd := exec.Command(python, "-c", script, dirs[0], dirs[1], string(inJSON))
	raw, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("torch: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var got map[string][]float32
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	for name, w := range want {
		diff := maxAbsDiff(got[name], w)
		t.Logf("head %s: max |torch − vitbert| = %.2g over %d logits", name, diff, len(w))
		if diff > 1e-4 {
			t.Errorf("head %s: PyTorch logits differ from vitbert's by %g", name, diff)
		}
	}
}
