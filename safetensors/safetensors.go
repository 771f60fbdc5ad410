// Package safetensors reads and writes the safetensors format
// (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]},
// "__metadata__": {string: string}} padded with spaces, then the raw
// little-endian tensor data, offsets counted from the end of the header.
//
// Every file of the project goes through here: Hugging Face checkpoints, model
// directories, training checkpoints (weights, optimiser state, boolean
// gradient masks, random number generator state) and mask probes. Reading
// validates the whole file as the reference implementation does (header
// bounds, known dtypes, offsets that match each shape, tensors that neither
// overlap nor leave gaps, boolean bytes that are 0 or 1) and names the file and
// the tensor in every error. Writing is atomic (see atomicfs).
//
// Existing Go packages were not taken: github.com/gomlx/go-huggingface only
// reads, through its Hub repository type; github.com/maruel/safetensors reads
// and writes bytes but its errors name neither the file nor always the
// tensor, it refuses a file without tensors and requires the header to list
// tensors in data order. Either would still need the atomic writes, the
// GoMLX conversions and the checks here around it.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"sort"

	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/compute/dtypes/float16"
	"github.com/vitbert/vitbert/atomicfs"
)

// DType is a safetensors dtype name.
type DType string

// The dtypes read and written (the reference's, less the 8-bit floats).
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U64  DType = "U64"
	U32  DType = "U32"
	U16  DType = "U16"
	U8   DType = "U8"
	BOOL DType = "BOOL"
)

var dtypeSizes = map[DType]int{F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1,
	U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1}

// Size is the number of bytes of one element; ok is false for a dtype this
// package does not know.
func (d DType) Size() (size int, ok bool) {
	size, ok = dtypeSizes[d]
	return size, ok
}

// Tensor is one named tensor in its stored dtype.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte // little-endian, NumElements × DType.Size() bytes
}

// NumElements is the product of the shape (1 for a scalar).
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// check verifies that the data length matches dtype and shape.
func (t *Tensor) check() error {
	size, ok := t.DType.Size()
	if !ok {
		return fmt.Errorf("tensor %q: unsupported dtype %q", t.Name, t.DType)
	}
	n, ok := countElements(t.Shape)
	if !ok || n > int64(len(t.Data)) {
		return fmt.Errorf("tensor %q: shape %v is negative or larger than its %d bytes", t.Name, t.Shape, len(t.Data))
	}
	if n*int64(size) != int64(len(t.Data)) {
		return fmt.Errorf("tensor %q: %d bytes do not match shape %v of %s", t.Name, len(t.Data), t.Shape, t.DType)
	}
	return nil
}

// countElements is the product of the dimensions; ok is false when one is
// negative or the product overflows.
func countElements(shape []int) (n int64, ok bool) {
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		if d == 0 {
			return 0, true
		}
	}
	n = 1
	for _, d := range shape {
		if n > math.MaxInt64/int64(d) {
			return 0, false
		}
		n *= int64(d)
	}
	return n, true
}

// checkBools verifies that a BOOL tensor's bytes are 0 or 1 (what GoMLX,
// NumPy and PyTorch store); other bytes would read differently in each.
func checkBools(t *Tensor) error {
	if t.DType != BOOL {
		return nil
	}
	for i, b := range t.Data {
		if b > 1 {
			return fmt.Errorf("tensor %q: element %d of a BOOL tensor is byte %d, not 0 or 1", t.Name, i, b)
		}
	}
	return nil
}

// Float32s converts the data to float32 (from F32, F64, F16 or BF16).
func (t *Tensor) Float32s() ([]float32, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	out := make([]float32, t.NumElements())
	b := t.Data
	switch t.DType {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
	case BF16:
		for i := range out {
			out[i] = bfloat16.BFloat16(binary.LittleEndian.Uint16(b[2*i:])).Float32()
		}
	case F16:
		for i := range out {
			out[i] = float16.Float16(binary.LittleEndian.Uint16(b[2*i:])).Float32()
		}
	default:
		return nil, fmt.Errorf("tensor %q: dtype %s is not a float type", t.Name, t.DType)
	}
	return out, nil
}

// Int64s converts integer or boolean data to int64. U64 values above the
// int64 range are an error.
func (t *Tensor) Int64s() ([]int64, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	read, ok := intReaders[t.DType]
	if !ok {
		return nil, fmt.Errorf("tensor %q: dtype %s is not an integer type", t.Name, t.DType)
	}
	size, _ := t.DType.Size()
	out := make([]int64, t.NumElements())
	for i := range out {
		v, err := read(t.Data[size*i:])
		if err != nil {
			return nil, fmt.Errorf("tensor %q: element %d %w", t.Name, i, err)
		}
		out[i] = v
	}
	return out, nil
}

// intReaders read one little-endian element of each integer dtype.
var intReaders = map[DType]func(b []byte) (int64, error){
	I64: func(b []byte) (int64, error) { return int64(binary.LittleEndian.Uint64(b)), nil },
	U64: func(b []byte) (int64, error) {
		u := binary.LittleEndian.Uint64(b)
		if u > math.MaxInt64 {
			return 0, fmt.Errorf("= %d does not fit in int64", u)
		}
		return int64(u), nil
	},
	I32:  func(b []byte) (int64, error) { return int64(int32(binary.LittleEndian.Uint32(b))), nil },
	U32:  func(b []byte) (int64, error) { return int64(binary.LittleEndian.Uint32(b)), nil },
	I16:  func(b []byte) (int64, error) { return int64(int16(binary.LittleEndian.Uint16(b))), nil },
	U16:  func(b []byte) (int64, error) { return int64(binary.LittleEndian.Uint16(b)), nil },
	I8:   func(b []byte) (int64, error) { return int64(int8(b[0])), nil },
	U8:   func(b []byte) (int64, error) { return int64(b[0]), nil },
	BOOL: func(b []byte) (int64, error) { return int64(b[0]), nil },
}

// NewF32 makes a float32 tensor (the shape is copied).
func NewF32(name string, shape []int, data []float32) *Tensor {
	b := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return &Tensor{Name: name, DType: F32, Shape: append([]int(nil), shape...), Data: b}
}

// File is the content of a safetensors file.
type File struct {
	Path     string
	Tensors  map[string]*Tensor
	Metadata map[string]string
	order    []string // names in the order of their data
}

// Names returns the tensor names, sorted.
func (f *File) Names() []string {
	return slices.Sorted(maps.Keys(f.Tensors))
}

// InFileOrder returns the tensors in the order of their data in the file,
// which is the order WriteFile was given them in.
func (f *File) InFileOrder() []*Tensor {
	out := make([]*Tensor, len(f.order))
	for i, n := range f.order {
		out[i] = f.Tensors[n]
	}
	return out
}

type headerEntry struct {
	DType       DType    `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// maxHeader bounds the JSON header, as the reference implementation does
// (a corrupt length must not allocate gigabytes).
const maxHeader = 100 << 20

// ReadFile reads and validates a whole safetensors file. A truncated file, a
// corrupt header, offsets that disagree with a tensor's shape, tensors that
// overlap or leave bytes unaccounted for, and boolean bytes other than 0 and 1
// are errors naming the file and the tensor. The tensors' Data slice one
// buffer holding the file.
func ReadFile(path string) (*File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.Path = path
	return f, nil
}

func parse(raw []byte) (*File, error) {
	if len(raw) < 8 {
		return nil, fmt.Errorf("not a safetensors file: %d bytes, shorter than the 8-byte header length", len(raw))
	}
	n := binary.LittleEndian.Uint64(raw[:8])
	if n > maxHeader || 8+n > uint64(len(raw)) {
		return nil, fmt.Errorf("header length %d does not fit in the file of %d bytes (truncated or not safetensors)", n, len(raw))
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		return nil, fmt.Errorf("corrupt safetensors header: %w", err)
	}
	data := raw[8+n:]
	size := int64(len(data))
	f := &File{Tensors: map[string]*Tensor{}}
	type span struct {
		name       string
		begin, end int64
	}
	var spans []span
	for name, msg := range header {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("corrupt __metadata__ (want string keys and values): %w", err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("tensor %q: corrupt header entry: %w", name, err)
		}
		elem, ok := e.DType.Size()
		if !ok {
			return nil, fmt.Errorf("tensor %q: unsupported dtype %q", name, e.DType)
		}
		count, ok := countElements(e.Shape)
		if !ok || count > size {
			return nil, fmt.Errorf("tensor %q: shape %v is negative or larger than the file", name, e.Shape)
		}
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		if begin < 0 || end < begin || end-begin != count*int64(elem) {
			return nil, fmt.Errorf("tensor %q: data offsets %v do not match shape %v of %s", name, e.DataOffsets, e.Shape, e.DType)
		}
		if end > size {
			return nil, fmt.Errorf("tensor %q: data ends at byte %d but the file holds only %d data bytes (truncated file)", name, end, size)
		}
		t := &Tensor{Name: name, DType: e.DType, Shape: e.Shape, Data: data[begin:end:end]}
		if t.Shape == nil {
			t.Shape = []int{}
		}
		if err := checkBools(t); err != nil {
			return nil, err
		}
		f.Tensors[name] = t
		spans = append(spans, span{name, begin, end})
	}
	// The data must be covered exactly once, in some order of the tensors.
	sort.Slice(spans, func(i, j int) bool {
		a, b := spans[i], spans[j]
		if a.begin != b.begin {
			return a.begin < b.begin
		}
		if a.end != b.end {
			return a.end < b.end
		}
		return a.name < b.name
	})
	var at int64
	prev := ""
	for _, s := range spans {
		switch {
		case s.begin < at:
			return nil, fmt.Errorf("tensors %q and %q overlap (bytes %d to %d)", prev, s.name, s.begin, at)
		case s.begin > at:
			return nil, fmt.Errorf("tensor %q starts at data byte %d but the previous tensor ends at %d (a gap)", s.name, s.begin, at)
		}
		at, prev = s.end, s.name
		f.order = append(f.order, s.name)
	}
	if at != size {
		return nil, fmt.Errorf("the tensors end at data byte %d but the file holds %d data bytes (trailing bytes)", at, size)
	}
	return f, nil
}

// WriteFile writes tensors, in order, to path atomically: the data goes to
// a temporary file in the same folder, is synced, then renamed over path, so
// a crash never leaves a half-written file under the final name.
func WriteFile(path string, ts []*Tensor, metadata map[string]string) error {
	header, err := encodeHeader(ts, metadata)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return atomicfs.WriteFile(path, func(w io.Writer) error {
		if _, err := w.Write(header); err != nil {
			return err
		}
		for _, t := range ts {
			if _, err := w.Write(t.Data); err != nil {
				return fmt.Errorf("tensor %q: %w", t.Name, err)
			}
		}
		return nil
	})
}

// encodeHeader checks the tensors and returns the length-prefixed header.
func encodeHeader(ts []*Tensor, metadata map[string]string) ([]byte, error) {
	header := make(map[string]any, len(ts)+1)
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var offset int64
	for _, t := range ts {
		if t.Name == "" || t.Name == "__metadata__" {
			return nil, fmt.Errorf("invalid tensor name %q", t.Name)
		}
		if _, dup := header[t.Name]; dup {
			return nil, fmt.Errorf("tensor %q given twice", t.Name)
		}
		if err := t.check(); err != nil {
			return nil, err
		}
		if err := checkBools(t); err != nil {
			return nil, err
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		end := offset + int64(len(t.Data))
		header[t.Name] = headerEntry{DType: t.DType, Shape: shape, DataOffsets: [2]int64{offset, end}}
		offset = end
	}
	js, err := json.Marshal(header)
	if err != nil {
		return nil, fmt.Errorf("encoding the header: %w", err)
	}
	for len(js)%8 != 0 { // the format pads the header with spaces to 8-byte alignment
		js = append(js, ' ')
	}
	if len(js) > maxHeader {
		return nil, errors.New("the header exceeds the format's 100 MB limit")
	}
	out := make([]byte, 8, 8+len(js))
	binary.LittleEndian.PutUint64(out, uint64(len(js)))
	return append(out, js...), nil
}
