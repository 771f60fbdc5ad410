package train

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"
)

// The safetensors format: an 8-byte little-endian header length N, N bytes
// of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
// {string: string}}, then the raw little-endian tensor data, offsets counted
// from the end of the header.

// NamedTensor is one entry of a safetensors file.
type NamedTensor struct {
	Name   string
	Tensor *tensors.Tensor
}

var safetensorsDTypes = map[dtypes.DType]string{
	dtypes.Float64: "F64", dtypes.Float32: "F32", dtypes.Float16: "F16", dtypes.BFloat16: "BF16",
	dtypes.Int64: "I64", dtypes.Int32: "I32", dtypes.Int16: "I16", dtypes.Int8: "I8",
	dtypes.Uint64: "U64", dtypes.Uint32: "U32", dtypes.Uint16: "U16", dtypes.Uint8: "U8",
	dtypes.Bool: "BOOL",
}

func dtypeFromSafetensors(s string) (dtypes.DType, bool) {
	for d, name := range safetensorsDTypes {
		if name == s {
			return d, true
		}
	}
	return dtypes.InvalidDType, false
}

type safetensorsEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// maxHeaderBytes bounds the JSON header read from a file (a corrupt length
// must not allocate gigabytes).
const maxHeaderBytes = 100 << 20

func hostIsLittleEndian() bool {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], 1)
	return b[0] == 1
}

// WriteSafetensors writes entries, in order, as a safetensors stream.
func WriteSafetensors(w io.Writer, entries []NamedTensor, metadata map[string]string) error {
	if !hostIsLittleEndian() {
		return errors.New("safetensors: writing from a big-endian host is not supported")
	}
	header := make(map[string]any, len(entries)+1)
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var offset int64
	for _, e := range entries {
		if e.Name == "" || e.Name == "__metadata__" {
			return fmt.Errorf("safetensors: invalid tensor name %q", e.Name)
		}
		if _, dup := header[e.Name]; dup {
			return fmt.Errorf("safetensors: duplicate tensor name %q", e.Name)
		}
		shape := e.Tensor.Shape()
		name, ok := safetensorsDTypes[shape.DType]
		if !ok {
			return fmt.Errorf("safetensors: tensor %q has unsupported dtype %s", e.Name, shape.DType)
		}
		size := shape.ByteSize()
		dims := shape.Dimensions
		if dims == nil {
			dims = []int{}
		}
		header[e.Name] = safetensorsEntry{DType: name, Shape: dims, DataOffsets: [2]int64{offset, offset + size}}
		offset += size
	}
	headerJSON, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("safetensors: encoding header: %w", err)
	}
	// Pad the header with spaces so the data starts 8-byte aligned.
	for len(headerJSON)%8 != 0 {
		headerJSON = append(headerJSON, ' ')
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(headerJSON)))
	if _, err := bw.Write(lenBuf[:]); err != nil {
		return fmt.Errorf("safetensors: writing header: %w", err)
	}
	if _, err := bw.Write(headerJSON); err != nil {
		return fmt.Errorf("safetensors: writing header: %w", err)
	}
	for _, e := range entries {
		var werr error
		err := e.Tensor.ConstBytes(func(data []byte) { _, werr = bw.Write(data) })
		if err == nil {
			err = werr
		}
		if err != nil {
			return fmt.Errorf("safetensors: writing tensor %q: %w", e.Name, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: writing data: %w", err)
	}
	return nil
}

// ReadSafetensors reads a safetensors file. Entries come back in the order
// of their data in the file (the order they were written in).
func ReadSafetensors(path string) ([]NamedTensor, map[string]string, error) {
	if !hostIsLittleEndian() {
		return nil, nil, errors.New("safetensors: reading on a big-endian host is not supported")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var lenBuf [8]byte
	if _, err := io.ReadFull(f, lenBuf[:]); err != nil {
		return nil, nil, fmt.Errorf("reading %s: header length: %w", path, err)
	}
	headerLen := binary.LittleEndian.Uint64(lenBuf[:])
	if headerLen > maxHeaderBytes || int64(headerLen)+8 > info.Size() {
		return nil, nil, fmt.Errorf("reading %s: invalid header length %d (file has %d bytes)", path, headerLen, info.Size())
	}
	headerJSON := make([]byte, headerLen)
	if _, err := io.ReadFull(f, headerJSON); err != nil {
		return nil, nil, fmt.Errorf("reading %s: header: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(headerJSON, &raw); err != nil {
		return nil, nil, fmt.Errorf("reading %s: header JSON: %w", path, err)
	}
	dataStart := 8 + int64(headerLen)
	dataSize := info.Size() - dataStart
	var metadata map[string]string
	type located struct {
		name  string
		shape shapes.Shape
		begin int64
		end   int64
	}
	var list []located
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &metadata); err != nil {
				return nil, nil, fmt.Errorf("reading %s: __metadata__: %w", path, err)
			}
			continue
		}
		var e safetensorsEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, nil, fmt.Errorf("reading %s: tensor %q: %w", path, name, err)
		}
		dtype, ok := dtypeFromSafetensors(e.DType)
		if !ok {
			return nil, nil, fmt.Errorf("reading %s: tensor %q: unsupported dtype %q", path, name, e.DType)
		}
		for _, d := range e.Shape {
			if d < 0 {
				return nil, nil, fmt.Errorf("reading %s: tensor %q: negative dimension in %v", path, name, e.Shape)
			}
		}
		shape := shapes.Make(dtype, e.Shape...)
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		if begin < 0 || end < begin || end > dataSize || end-begin != shape.ByteSize() {
			return nil, nil, fmt.Errorf("reading %s: tensor %q: data_offsets %v do not fit shape %s in %d data bytes",
				path, name, e.DataOffsets, shape, dataSize)
		}
		list = append(list, located{name: name, shape: shape, begin: begin, end: end})
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].begin != list[j].begin {
			return list[i].begin < list[j].begin
		}
		return list[i].name < list[j].name
	})
	out := make([]NamedTensor, len(list))
	for i, l := range list {
		if i > 0 && l.begin < list[i-1].end {
			return nil, nil, fmt.Errorf("reading %s: tensors %q and %q overlap", path, list[i-1].name, l.name)
		}
		t := tensors.FromShape(l.shape)
		var rerr error
		err := t.MutableBytes(func(data []byte) {
			_, rerr = f.ReadAt(data, dataStart+l.begin)
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: tensor %q: %w", path, l.name, err)
		}
		out[i] = NamedTensor{Name: l.name, Tensor: t}
	}
	return out, metadata, nil
}
