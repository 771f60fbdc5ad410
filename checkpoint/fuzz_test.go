package checkpoint

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadSafetensors feeds arbitrary bytes to the safetensors reader: it
// must return an error or tensors whose data fits their shapes, never panic.
func FuzzReadSafetensors(f *testing.F) {
	good, err := os.ReadFile("../testdata/hf/vit-tiny/expected.safetensors")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good[:200])
	f.Add([]byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '})
	f.Add([]byte(`garbage`))
	small := filepath.Join(f.TempDir(), "small.safetensors")
	if err := WriteSafetensors(small, []*Tensor{F32("a", []int{2}, []float32{1, 2})}, map[string]string{"k": "v"}); err != nil {
		f.Fatal(err)
	}
	b, _ := os.ReadFile(small)
	f.Add(b)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "x.safetensors")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := ReadSafetensors(p)
		if err != nil {
			return
		}
		for _, ts := range file.Tensors {
			if len(ts.Data) != ts.NumElements()*dtypeSize[ts.DType] {
				t.Fatalf("tensor %q: %d bytes for shape %v %s", ts.Name, len(ts.Data), ts.Shape, ts.DType)
			}
			if ts.DType == "F32" || ts.DType == "BF16" || ts.DType == "F16" || ts.DType == "F64" {
				if _, err := ts.Float32s(); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
