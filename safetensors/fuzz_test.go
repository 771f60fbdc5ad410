package safetensors

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzReadSafetensors feeds arbitrary bytes to the safetensors reader: it
// must return an error or tensors whose data fits their shapes, never panic;
// and what it accepts must survive a write and a second read unchanged.
func FuzzReadSafetensors(f *testing.F) {
	good, err := os.ReadFile("../testdata/hf/vit-tiny/expected.safetensors")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good[:200])
	f.Add([]byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '})
	f.Add([]byte(`garbage`))
	small := filepath.Join(f.TempDir(), "small.safetensors")
	if err := WriteFile(small, []*Tensor{NewF32("a", []int{2}, []float32{1, 2})}, map[string]string{"k": "v"}); err != nil {
		f.Fatal(err)
	}
	b, _ := os.ReadFile(small)
	f.Add(b)
	f.Add(encode(f, []*Tensor{
		{Name: "m", DType: BOOL, Shape: []int{3}, Data: []byte{1, 0, 1}},
		{Name: "h", DType: BF16, Shape: []int{1}, Data: []byte{0x80, 0x3f}},
		{Name: "s", DType: I64, Shape: []int{}, Data: make([]byte, 8)},
	}, nil))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "x.safetensors")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := ReadFile(p)
		if err != nil {
			return
		}
		for _, ts := range file.Tensors {
			size, ok := ts.DType.Size()
			if !ok || len(ts.Data) != ts.NumElements()*size {
				t.Fatalf("tensor %q: %d bytes for shape %v %s", ts.Name, len(ts.Data), ts.Shape, ts.DType)
			}
			if ts.DType == "F32" || ts.DType == "BF16" || ts.DType == "F16" || ts.DType == "F64" {
				if _, err := ts.Float32s(); err != nil {
					t.Fatal(err)
				}
			}
		}
		again, err := parse(encode(t, file.InFileOrder(), file.Metadata))
		if err != nil {
			t.Fatalf("re-reading what was read: %v", err)
		}
		if len(again.Tensors) != len(file.Tensors) || len(again.Metadata) != len(file.Metadata) {
			t.Fatalf("re-read %d tensors and %d metadata keys, want %d and %d", len(again.Tensors), len(again.Metadata), len(file.Tensors), len(file.Metadata))
		}
		for k, v := range file.Metadata {
			if again.Metadata[k] != v {
				t.Fatalf("metadata %q: %q, want %q", k, again.Metadata[k], v)
			}
		}
		for name, want := range file.Tensors {
			got := again.Tensors[name]
			if got == nil || got.DType != want.DType || !slices.Equal(got.Shape, want.Shape) || !bytes.Equal(got.Data, want.Data) {
				t.Fatalf("tensor %q changed in a round trip: %+v, want %+v", name, got, want)
			}
		}
	})
}

// encode is the bytes WriteFile writes.
func encode(tb testing.TB, ts []*Tensor, metadata map[string]string) []byte {
	tb.Helper()
	h, err := encodeHeader(ts, metadata)
	if err != nil {
		tb.Fatal(err)
	}
	for _, t := range ts {
		h = append(h, t.Data...)
	}
	return h
}
