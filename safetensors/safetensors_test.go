package safetensors

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/compute/dtypes/float16"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"
)

func TestHalfAndBFloat16(t *testing.T) {
	// 0x3C00 = 1.0, 0xC000 = -2.0, 0x3555 ≈ 0.33325 in IEEE half; 0x3F80 = 1.0 in bfloat16.
	h := &Tensor{Name: "h", DType: "F16", Shape: []int{3}, Data: []byte{0x00, 0x3C, 0x00, 0xC0, 0x55, 0x35}}
	got, err := h.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 1 || got[1] != -2 || got[2] < 0.3332 || got[2] > 0.3333 {
		t.Errorf("F16 decode: %v", got)
	}
	b := &Tensor{Name: "b", DType: "BF16", Shape: []int{1}, Data: []byte{0x80, 0x3F}}
	if got, _ := b.Float32s(); got[0] != 1 {
		t.Errorf("BF16 decode: %v", got)
	}
}

// Every dtype a checkpoint holds (weights, optimiser step, random number
// generator state, boolean masks, half-precision weights) survives a write
// and a read, in order, with the metadata.
func TestSafetensorsRoundTrip(t *testing.T) {
	entries := []struct {
		name string
		t    *tensors.Tensor
	}{
		{"/encoder/w", tensors.FromValue([][]float32{{1, 2, 3}, {4, 5, 6}})},
		{"/optimizer/#step", tensors.FromScalar(int64(42))},
		{"/#rngState", tensors.FromValue([]uint64{1, 1 << 63, 7})},
		{"/x/f64", tensors.FromValue([]float64{math.Pi})},
		{"/x/flags", tensors.FromValue([]bool{true, false, true})},
		{"/x/i32", tensors.FromValue([][]int32{{-1}, {2}})},
		{"/x/bf16", tensors.FromValue([]bfloat16.BFloat16{bfloat16.FromFloat32(1.5), bfloat16.FromFloat32(-3)})},
		{"/x/f16", tensors.FromValue([]float16.Float16{float16.FromFloat32(0.25)})},
		{"/x/u8", tensors.FromValue([]uint8{0, 255})},
		{"/x/empty", tensors.FromShape(shapes.Make(dtypes.Float32, 2, 0))},
	}
	var ts []*Tensor
	for _, e := range entries {
		st, err := FromGoMLX(e.name, e.t)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, st)
	}
	path := filepath.Join(t.TempDir(), "v.safetensors")
	if err := WriteFile(path, ts, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	// The header length is 8-byte little-endian and the data start aligned.
	raw, _ := os.ReadFile(path)
	n := int(raw[0]) | int(raw[1])<<8 | int(raw[2])<<16
	if n%8 != 0 || !strings.HasPrefix(string(raw[8:]), "{") {
		t.Fatalf("header length %d, header %q", n, raw[8:20])
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["k"] != "v" {
		t.Errorf("metadata %v", f.Metadata)
	}
	got := f.InFileOrder()
	if len(got) != len(entries) {
		t.Fatalf("%d entries, want %d", len(got), len(entries))
	}
	for i, e := range entries {
		gt, err := got[i].GoMLX()
		if err != nil {
			t.Fatal(err)
		}
		if got[i].Name != e.name || !gt.Equal(e.t) {
			t.Errorf("entry %d: got %s %v, want %s %v", i, got[i].Name, gt, e.name, e.t)
		}
	}
	if v, err := f.Tensors["/x/bf16"].Float32s(); err != nil || v[0] != 1.5 || v[1] != -3 {
		t.Errorf("bf16 as float32: %v, %v", v, err)
	}
	if v, err := f.Tensors["/#rngState"].Int64s(); err == nil {
		t.Errorf("uint64 1<<63 read as int64 %v without an error", v)
	}
	if v, err := f.Tensors["/x/flags"].Int64s(); err != nil || v[0] != 1 || v[1] != 0 || v[2] != 1 {
		t.Errorf("bool as int64: %v, %v", v, err)
	}
}

// file builds a safetensors file from a header given as JSON text.
func file(header string, data []byte) []byte {
	for len(header)%8 != 0 {
		header += " "
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(out, header...), data...)
}

func TestReadSafetensorsRejectsCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	if err := WriteFile(good, []*Tensor{NewF32("a", []int{2}, []float32{1, 2})}, nil); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(good)
	eight := make([]byte, 8)
	cases := []struct {
		name    string
		content []byte
		want    string // in the error, besides the file name
	}{
		{"truncated data", data[:len(data)-1], `tensor "a"`},
		{"short header", data[:5], "not a safetensors file"},
		{"huge header size", append([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, data[8:]...), "header length"},
		{"bad json", append(append([]byte{}, data[:8]...), []byte(strings.Repeat("x", len(data)-8))...), "corrupt safetensors header"},
		{"unknown dtype", file(`{"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}}`, eight), `tensor "a": unsupported dtype "F8_E4M3"`},
		{"negative dimension", file(`{"a":{"dtype":"U8","shape":[-8],"data_offsets":[0,8]}}`, eight), `tensor "a": shape [-8]`},
		{"huge shape", file(`{"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, eight), `tensor "a": shape`},
		{"offsets disagree with shape", file(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, eight), `tensor "a": data offsets [0 8] do not match shape [3]`},
		{"reversed offsets", file(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}}`, eight), `tensor "a": data offsets`},
		{"overlap", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight),
			`tensors "a" and "b" overlap`},
		{"gap", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[6,8]}}`, eight),
			`tensor "b" starts at data byte 6 but the previous tensor ends at 4`},
		{"trailing bytes", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, eight), "trailing bytes"},
		{"bool byte", file(`{"m":{"dtype":"BOOL","shape":[8],"data_offsets":[0,8]}}`, []byte{0, 1, 2, 0, 0, 0, 0, 0}), `tensor "m": element 2 of a BOOL tensor is byte 2`},
		{"metadata not strings", file(`{"__metadata__":{"k":1}}`, nil), "__metadata__"},
	}
	for _, tc := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
		if err := os.WriteFile(p, tc.content, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadFile(p)
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error naming the file and containing %q", tc.name, err, tc.want)
		}
	}
	// Zero-size tensors may share an offset; a scalar has shape [].
	p := filepath.Join(dir, "zero")
	os.WriteFile(p, file(`{"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"s":{"dtype":"I64","shape":[],"data_offsets":[0,8]},"z":{"dtype":"U8","shape":[0],"data_offsets":[8,8]}}`, eight), 0o644)
	f, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if names := f.InFileOrder(); len(names) != 3 || names[0].Name != "e" || names[1].Name != "s" || names[2].Name != "z" || f.Tensors["s"].NumElements() != 1 {
		t.Errorf("zero-size and scalar tensors read as %v", names)
	}
}

// A write that is refused, or fails part-way, leaves the previous file
// intact and no temporary file behind.
func TestWriteFileRejectsBadTensorsAndIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	if err := WriteFile(path, []*Tensor{NewF32("a", []int{2}, []float32{1, 2})}, nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	bad := []struct {
		name string
		ts   []*Tensor
		want string
	}{
		{"duplicate", []*Tensor{NewF32("a", nil, []float32{1}), NewF32("a", nil, []float32{1})}, `tensor "a" given twice`},
		{"short data", []*Tensor{{Name: "b", DType: F32, Shape: []int{2}, Data: make([]byte, 7)}}, `tensor "b": 7 bytes do not match shape [2] of F32`},
		{"unknown dtype", []*Tensor{{Name: "c", DType: "F8_E5M2", Shape: []int{1}, Data: make([]byte, 1)}}, `tensor "c": unsupported dtype`},
		{"bool byte", []*Tensor{{Name: "m", DType: BOOL, Shape: []int{2}, Data: []byte{1, 3}}}, `tensor "m": element 1`},
		{"reserved name", []*Tensor{NewF32("__metadata__", nil, []float32{1})}, "invalid tensor name"},
		{"empty name", []*Tensor{NewF32("", nil, []float32{1})}, "invalid tensor name"},
	}
	for _, tc := range bad {
		err := WriteFile(path, tc.ts, nil)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error naming the file and containing %q", tc.name, err, tc.want)
		}
	}
	// A tensor whose data is too large for its shape fails while the data
	// is written: nothing partial reaches the final name.
	after, _ := os.ReadFile(path)
	if string(after) != string(before) {
		t.Error("a refused write changed the file")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file", len(entries))
	}
}

// TestInt64sEveryIntegerDType decodes -2 (or 254, 65534, … for the unsigned
// types) from each integer dtype's little-endian bytes, and refuses a U64
// above the int64 range and a float tensor.
func TestInt64sEveryIntegerDType(t *testing.T) {
	cases := []struct {
		dt   DType
		b    []byte
		want int64
	}{
		{I64, []byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, -2},
		{U64, []byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, math.MaxInt64 - 1},
		{I32, []byte{0xfe, 0xff, 0xff, 0xff}, -2},
		{U32, []byte{0xfe, 0xff, 0xff, 0xff}, math.MaxUint32 - 1},
		{I16, []byte{0xfe, 0xff}, -2},
		{U16, []byte{0xfe, 0xff}, math.MaxUint16 - 1},
		{I8, []byte{0xfe}, -2},
		{U8, []byte{0xfe}, 254},
		{BOOL, []byte{1}, 1},
	}
	for _, c := range cases {
		x := &Tensor{Name: "x", DType: c.dt, Shape: []int{2}, Data: append(append([]byte{}, c.b...), c.b...)}
		got, err := x.Int64s()
		if err != nil || len(got) != 2 || got[0] != c.want || got[1] != c.want {
			t.Errorf("%s: %v, %v; want [%d %d]", c.dt, got, err, c.want, c.want)
		}
	}
	big := &Tensor{Name: "big", DType: U64, Shape: []int{1}, Data: []byte{0, 0, 0, 0, 0, 0, 0, 0x80}}
	if _, err := big.Int64s(); err == nil || !strings.Contains(err.Error(), "does not fit in int64") {
		t.Errorf("U64 2^63: %v, want an error saying it does not fit", err)
	}
	if _, err := NewF32("f", []int{1}, []float32{1}).Int64s(); err == nil || !strings.Contains(err.Error(), "not an integer type") {
		t.Errorf("F32: %v, want an error saying it is not an integer type", err)
	}
}
