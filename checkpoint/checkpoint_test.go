package checkpoint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/safetensors"
)

const fixtures = "../testdata/hf/"

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func sameWeights(t *testing.T, a, b *Model) {
	t.Helper()
	if len(a.Weights) != len(b.Weights) {
		t.Fatalf("%d weights vs %d", len(a.Weights), len(b.Weights))
	}
	for k, va := range a.Weights {
		vb := b.Weights[k]
		if len(va) != len(vb) {
			t.Fatalf("%s: %d vs %d values", k, len(va), len(vb))
		}
		for i := range va {
			if va[i] != vb[i] {
				t.Fatalf("%s[%d]: %g vs %g", k, i, va[i], vb[i])
			}
		}
	}
}

func TestExportHFRoundTrip(t *testing.T) {
	for _, src := range []string{"bert-tiny/mlm", "bert-tiny/cls", "vit-tiny/cls"} {
		m, err := LoadDir(fixtures + src)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "export")
		if err := ExportHF(out, &m.Config, m.Weights); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		back, err := LoadDir(out)
		if err != nil {
			t.Fatalf("%s: reloading the export: %v", src, err)
		}
		if back.Arch != m.Arch {
			t.Errorf("%s: architecture %s after export, was %s", src, back.Arch, m.Arch)
		}
		if m.Config.InitRange != 0.02 || back.Config.InitRange != m.Config.InitRange {
			t.Errorf("%s: initializer_range %g imported (config.json: 0.02), %g after export", src, m.Config.InitRange, back.Config.InitRange)
		}
		sameWeights(t, m, back)
	}
}

func TestSaveDirRoundTripAndOverwrite(t *testing.T) {
	m, err := LoadDir(fixtures + "vit-tiny/cls")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "own")
	for range 2 { // the second save replaces the first
		if err := SaveDir(dir, &m.Config, m.Weights); err != nil {
			t.Fatal(err)
		}
	}
	back, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.Arch != ModelTypeVitbert {
		t.Errorf("arch %q", back.Arch)
	}
	sameWeights(t, m, back)
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("leftover temporary entries beside the model: %v", entries)
	}
}

func TestExportRejectsUnifiedModel(t *testing.T) {
	c := model.Tiny()
	if err := ExportHF(t.TempDir(), &c, nil); err == nil || !strings.Contains(err.Error(), "SaveDir") {
		t.Errorf("want an error pointing at SaveDir, got %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name  string
		setup func(dir string)
		want  string
	}{
		{"missing safetensors", func(d string) { os.Remove(filepath.Join(d, "model.safetensors")) }, "model.safetensors"},
		{"truncated safetensors", func(d string) {
			p := filepath.Join(d, "model.safetensors")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
		}, "truncated"},
		{"tiny file", func(d string) { os.WriteFile(filepath.Join(d, "model.safetensors"), []byte{1, 2}, 0o644) }, "not a safetensors file"},
		{"unknown model_type", func(d string) {
			p := filepath.Join(d, "config.json")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(b), `"model_type": "bert"`, `"model_type": "gpt2"`, 1)), 0o644)
		}, `unsupported model_type "gpt2"`},
		{"relative positions", func(d string) {
			p := filepath.Join(d, "config.json")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(b), `"model_type": "bert"`, `"model_type": "bert", "position_embedding_type": "relative_key"`, 1)), 0o644)
		}, `position_embedding_type "relative_key" is not supported`},
		{"bad json", func(d string) { os.WriteFile(filepath.Join(d, "config.json"), []byte("{"), 0o644) }, "not valid JSON"},
		{"shape mismatch", func(d string) {
			p := filepath.Join(d, "config.json")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(b), `"intermediate_size": 64`, `"intermediate_size": 48`, 1)), 0o644)
		}, `tensor "bert.encoder.layer.0.intermediate.dense.weight" has shape [64 32], the config wants [48 32]`},
		{"missing tensor", func(d string) {
			p := filepath.Join(d, "model.safetensors")
			f, _ := safetensors.ReadFile(p)
			var ts []*safetensors.Tensor
			for _, n := range f.Names() {
				if n != "classifier.bias" {
					ts = append(ts, f.Tensors[n])
				}
			}
			safetensors.WriteFile(p, ts, nil)
		}, `missing tensor "classifier.bias"`},
		{"unknown tensor", func(d string) {
			p := filepath.Join(d, "model.safetensors")
			f, _ := safetensors.ReadFile(p)
			var ts []*safetensors.Tensor
			for _, n := range f.Names() {
				ts = append(ts, f.Tensors[n])
			}
			ts = append(ts, safetensors.NewF32("bert.encoder.layer.9.extra.weight", []int{2}, []float32{1, 2}))
			safetensors.WriteFile(p, ts, nil)
		}, `unknown tensor "bert.encoder.layer.9.extra.weight"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := copyDir(t, fixtures+"bert-tiny/cls")
			tc.setup(d)
			_, err := LoadDir(d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("want error containing %q, got %v", tc.want, err)
			}
		})
	}
}
