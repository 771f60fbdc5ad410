package safetensors

import (
	"encoding/binary"
	"fmt"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"
)

// The safetensors dtype of each GoMLX dtype that has one.
var fromGoMLX = map[dtypes.DType]DType{
	dtypes.Float64: F64, dtypes.Float32: F32, dtypes.Float16: F16, dtypes.BFloat16: BF16,
	dtypes.Int64: I64, dtypes.Int32: I32, dtypes.Int16: I16, dtypes.Int8: I8,
	dtypes.Uint64: U64, dtypes.Uint32: U32, dtypes.Uint16: U16, dtypes.Uint8: U8,
	dtypes.Bool: BOOL,
}

// GoMLX tensors hold their data in host byte order; the format is
// little-endian, so both conversions copy the bytes as they are.
func hostIsLittleEndian() bool {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], 1)
	return b[0] == 1
}

// FromGoMLX copies a GoMLX tensor (from the device if need be) into a named
// tensor.
func FromGoMLX(name string, t *tensors.Tensor) (*Tensor, error) {
	if !hostIsLittleEndian() {
		return nil, fmt.Errorf("tensor %q: converting on a big-endian host is not supported", name)
	}
	shape := t.Shape()
	dt, ok := fromGoMLX[shape.DType]
	if !ok {
		return nil, fmt.Errorf("tensor %q: dtype %s has no safetensors equivalent", name, shape.DType)
	}
	out := &Tensor{Name: name, DType: dt, Shape: append([]int{}, shape.Dimensions...)}
	if err := t.ConstBytes(func(data []byte) { out.Data = append([]byte(nil), data...) }); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	return out, nil
}

// GoMLX copies the tensor into a new GoMLX tensor on the host.
func (t *Tensor) GoMLX() (*tensors.Tensor, error) {
	if !hostIsLittleEndian() {
		return nil, fmt.Errorf("tensor %q: converting on a big-endian host is not supported", t.Name)
	}
	if err := t.check(); err != nil {
		return nil, err
	}
	var dt dtypes.DType
	for g, s := range fromGoMLX {
		if s == t.DType {
			dt = g
		}
	}
	if dt == dtypes.InvalidDType {
		return nil, fmt.Errorf("tensor %q: dtype %s has no GoMLX equivalent", t.Name, t.DType)
	}
	out := tensors.FromShape(shapes.Make(dt, t.Shape...))
	if err := out.MutableBytes(func(data []byte) { copy(data, t.Data) }); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	return out, nil
}
