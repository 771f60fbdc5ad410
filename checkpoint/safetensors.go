// Package checkpoint reads and writes model weights: the safetensors format,
// Hugging Face BERT/ViT checkpoints (config.json + model.safetensors), and
// vitbert's own model directories.
package checkpoint

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
)

// Tensor is one named tensor of a safetensors file, in its stored dtype.
type Tensor struct {
	Name  string
	DType string // F32, F64, F16, BF16, I64, I32, I16, I8, U8, BOOL
	Shape []int
	Data  []byte // little-endian
}

var dtypeSize = map[string]int{"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}

// NumElements is the product of the shape.
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Float32s converts the data to float32 (from F32, F64, F16 or BF16).
func (t *Tensor) Float32s() ([]float32, error) {
	n := t.NumElements()
	out := make([]float32, n)
	b := t.Data
	switch t.DType {
	case "F32":
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case "F64":
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
	case "BF16":
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
	case "F16":
		for i := range out {
			out[i] = halfToFloat(binary.LittleEndian.Uint16(b[2*i:]))
		}
	default:
		return nil, fmt.Errorf("tensor %s: dtype %s is not a float type", t.Name, t.DType)
	}
	return out, nil
}

// Int64s converts integer data to int64.
func (t *Tensor) Int64s() ([]int64, error) {
	n := t.NumElements()
	out := make([]int64, n)
	b := t.Data
	switch t.DType {
	case "I64":
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
		}
	case "I32":
		for i := range out {
			out[i] = int64(int32(binary.LittleEndian.Uint32(b[4*i:])))
		}
	case "I16":
		for i := range out {
			out[i] = int64(int16(binary.LittleEndian.Uint16(b[2*i:])))
		}
	case "I8":
		for i := range out {
			out[i] = int64(int8(b[i]))
		}
	case "U8", "BOOL":
		for i := range out {
			out[i] = int64(b[i])
		}
	default:
		return nil, fmt.Errorf("tensor %s: dtype %s is not an integer type", t.Name, t.DType)
	}
	return out, nil
}

func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		f := float32(frac) / 1024 / 16384
		if sign != 0 {
			f = -f
		}
		return f
	case exp == 31:
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}

// F32 makes a float32 tensor.
func F32(name string, shape []int, data []float32) *Tensor {
	b := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return &Tensor{Name: name, DType: "F32", Shape: append([]int(nil), shape...), Data: b}
}

// File is the content of a safetensors file.
type File struct {
	Path     string
	Tensors  map[string]*Tensor
	Metadata map[string]string
}

// Names returns the tensor names, sorted.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.Tensors))
	for n := range f.Tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

type headerEntry struct {
	DType       string `json:"dtype"`
	Shape       []int  `json:"shape"`
	DataOffsets [2]int `json:"data_offsets"`
}

// maxHeader bounds the JSON header, as the reference implementation does.
const maxHeader = 100 << 20

// ReadSafetensors reads and validates a whole safetensors file: a truncated
// file, a corrupt header or offsets that disagree with a tensor's shape are
// errors naming the file and the tensor.
func ReadSafetensors(path string) (*File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(raw) < 8 {
		return nil, fmt.Errorf("%s: not a safetensors file: %d bytes, shorter than the 8-byte header length", path, len(raw))
	}
	n := binary.LittleEndian.Uint64(raw[:8])
	if n > maxHeader || 8+n > uint64(len(raw)) {
		return nil, fmt.Errorf("%s: header length %d does not fit in the file of %d bytes (truncated or not safetensors)", path, n, len(raw))
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		return nil, fmt.Errorf("%s: corrupt safetensors header: %w", path, err)
	}
	data := raw[8+n:]
	f := &File{Path: path, Tensors: map[string]*Tensor{}}
	for name, msg := range header {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("%s: corrupt __metadata__: %w", path, err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("%s: tensor %q: corrupt header entry: %w", path, name, err)
		}
		size, ok := dtypeSize[e.DType]
		if !ok {
			return nil, fmt.Errorf("%s: tensor %q: unsupported dtype %q", path, name, e.DType)
		}
		count := 1
		for _, d := range e.Shape {
			if d < 0 || d > 0 && count > len(data)/d {
				return nil, fmt.Errorf("%s: tensor %q: shape %v is negative or larger than the file", path, name, e.Shape)
			}
			count *= d
		}
		start, end := e.DataOffsets[0], e.DataOffsets[1]
		if start < 0 || end < start || end-start != count*size {
			return nil, fmt.Errorf("%s: tensor %q: data offsets %v do not match shape %v of %s", path, name, e.DataOffsets, e.Shape, e.DType)
		}
		if end > len(data) {
			return nil, fmt.Errorf("%s: tensor %q: data ends at byte %d but the file holds only %d data bytes (truncated file)", path, name, end, len(data))
		}
		f.Tensors[name] = &Tensor{Name: name, DType: e.DType, Shape: e.Shape, Data: data[start:end]}
	}
	return f, nil
}

// WriteSafetensors writes tensors to path atomically: the data goes to a
// temporary file in the same folder, is synced, then renamed over path, so a
// crash never leaves a half-written file under the final name.
func WriteSafetensors(path string, ts []*Tensor, metadata map[string]string) error {
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	offset := 0
	for _, t := range ts {
		if _, dup := header[t.Name]; dup {
			return fmt.Errorf("writing %s: tensor %q given twice", path, t.Name)
		}
		size, ok := dtypeSize[t.DType]
		if !ok || len(t.Data) != t.NumElements()*size {
			return fmt.Errorf("writing %s: tensor %q: %d bytes do not match shape %v of %s", path, t.Name, len(t.Data), t.Shape, t.DType)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[t.Name] = headerEntry{DType: t.DType, Shape: shape, DataOffsets: [2]int{offset, offset + len(t.Data)}}
		offset += len(t.Data)
	}
	hb, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(hb)%8 != 0 { // the format pads the header with spaces to 8-byte alignment
		hb = append(hb, ' ')
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hb)))
	chunks := [][]byte{lenBuf[:], hb}
	for _, t := range ts {
		chunks = append(chunks, t.Data)
	}
	for _, c := range chunks {
		if _, err = tmp.Write(c); err != nil {
			break
		}
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}
