package images

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// IDX magic numbers: two zero bytes, the element type (0x08 = unsigned byte)
// and the number of dimensions.
const (
	idxImagesMagic = 0x00000803
	idxLabelsMagic = 0x00000801
)

// readMaybeGzip returns the contents of path, decompressed if it starts with
// the gzip magic bytes (whatever its name says).
func readMaybeGzip(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return gunzipIfNeeded(raw, path)
}

func gunzipIfNeeded(raw []byte, path string) ([]byte, error) {
	if len(raw) < 2 || raw[0] != 0x1f || raw[1] != 0x8b {
		return raw, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("reading %s: gzip header: %w", path, err)
	}
	var out bytes.Buffer
	out.Grow(4 * len(raw))
	if _, err := io.Copy(&out, zr); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("reading %s: gzip stream truncated after %d decompressed bytes: %w", path, out.Len(), err)
		}
		return nil, fmt.Errorf("reading %s: gzip stream after %d decompressed bytes: %w", path, out.Len(), err)
	}
	return out.Bytes(), nil
}

// idxHeader checks the magic number and returns the dimensions and payload of
// an IDX file, which must hold exactly prod(dims) bytes after the header.
func idxHeader(data []byte, name string, magic uint32, ndims int) ([]int, []byte, error) {
	hdr := 4 + 4*ndims
	if len(data) < hdr {
		return nil, nil, fmt.Errorf("reading %s: IDX header needs %d bytes, file has %d", name, hdr, len(data))
	}
	if got := binary.BigEndian.Uint32(data); got != magic {
		return nil, nil, fmt.Errorf("reading %s: IDX magic 0x%08x, want 0x%08x (unsigned bytes, %d dimensions)", name, got, magic, ndims)
	}
	dims := make([]int, ndims)
	total := uint64(1)
	for i := range dims {
		d := binary.BigEndian.Uint32(data[4+4*i:])
		dims[i] = int(d)
		if d != 0 && total > math.MaxInt32*uint64(1<<16)/uint64(d) {
			return nil, nil, fmt.Errorf("reading %s: IDX dimensions %v are impossibly large", name, dims[:i+1])
		}
		total *= uint64(d)
	}
	payload := data[hdr:]
	if uint64(len(payload)) != total {
		rec := 1
		if ndims > 1 {
			rec = int(total / max(1, uint64(dims[0])))
		}
		msg := fmt.Sprintf("reading %s: IDX header says %v = %d bytes of data, file has %d", name, dims, total, len(payload))
		if uint64(len(payload)) < total && rec > 0 {
			msg += fmt.Sprintf(" (record %d is incomplete)", len(payload)/rec)
		}
		return nil, nil, errors.New(msg)
	}
	return dims, payload, nil
}

// decodeIDX parses an images file (magic 0x803: n, rows, cols) and a labels
// file (magic 0x801: n). classes nil means: infer them (digits 0..9, more if a
// label is larger).
func decodeIDX(imgData, lblData []byte, imgName, lblName string, classes []string) (*Dataset, error) {
	dims, pix, err := idxHeader(imgData, imgName, idxImagesMagic, 3)
	if err != nil {
		return nil, err
	}
	ldims, lbl, err := idxHeader(lblData, lblName, idxLabelsMagic, 1)
	if err != nil {
		return nil, err
	}
	n, h, w := dims[0], dims[1], dims[2]
	if ldims[0] != n {
		return nil, fmt.Errorf("reading %s and %s: %d images but %d labels", imgName, lblName, n, ldims[0])
	}
	if n > 0 && (h == 0 || w == 0) {
		return nil, fmt.Errorf("reading %s: images of %dx%d pixels", imgName, h, w)
	}
	labels := make([]int32, n)
	maxLabel := -1
	for i, b := range lbl {
		labels[i] = int32(b)
		if classes != nil && int(b) >= len(classes) {
			return nil, fmt.Errorf("reading %s: record %d: label %d out of range [0,%d)", lblName, i, b, len(classes))
		}
		maxLabel = max(maxLabel, int(b))
	}
	if classes == nil {
		classes = numberNames(max(10, maxLabel+1))
	}
	return &Dataset{N: n, H: h, W: w, C: 1, Pixels: pix, Labels: labels, Classes: classes}, nil
}

// OpenIDX reads an IDX images file and its labels file, each gzipped or raw.
// Class names are Fashion-MNIST's when the path mentions "fashion", else the
// digits 0-9.
func OpenIDX(imagesPath, labelsPath string) (*Dataset, error) {
	var classes []string
	if strings.Contains(strings.ToLower(imagesPath), "fashion") {
		classes = FashionMNISTClasses
	}
	return openIDX(imagesPath, labelsPath, classes)
}

func openIDX(imagesPath, labelsPath string, classes []string) (*Dataset, error) {
	img, err := readMaybeGzip(imagesPath)
	if err != nil {
		return nil, err
	}
	lbl, err := readMaybeGzip(labelsPath)
	if err != nil {
		return nil, err
	}
	ds, err := decodeIDX(img, lbl, imagesPath, labelsPath, classes)
	if err != nil {
		return nil, err
	}
	ds.Name = idxName(imagesPath)
	ds.Split = "train"
	if strings.HasPrefix(filepath.Base(imagesPath), "t10k") || strings.Contains(filepath.Base(imagesPath), "test") {
		ds.Split = "test"
	}
	return ds, nil
}

func idxName(path string) string {
	low := strings.ToLower(path)
	switch {
	case strings.Contains(low, "fashion"):
		return "fashion-mnist"
	case strings.Contains(low, "mnist"):
		return "mnist"
	}
	return filepath.Base(filepath.Dir(path))
}

// idxPrefix maps a split name to the file prefix MNIST uses for it.
func idxPrefix(split string) (string, error) {
	switch split {
	case "train", "":
		return "train", nil
	case "test", "t10k":
		return "t10k", nil
	}
	return "", fmt.Errorf("MNIST-style data has splits train and test, not %q", split)
}

// findIDXFile looks in dir for prefix-kind-ubyte with the usual variants
// (".gz", "-" or "." before idx).
func findIDXFile(dir, prefix, kind, idx string) (string, error) {
	for _, sep := range []string{"-", "."} {
		for _, ext := range []string{".gz", ""} {
			p := filepath.Join(dir, prefix+"-"+kind+sep+idx+"-ubyte"+ext)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("no %s-%s-%s-ubyte[.gz] in %s", prefix, kind, idx, dir)
}

// OpenMNISTDir reads split ("train" or "test") of an MNIST-style directory
// holding {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]. Labels must be
// 0-9; the classes are Fashion-MNIST's when the directory's path mentions
// "fashion", else the digits.
func OpenMNISTDir(dir, split string) (*Dataset, error) {
	prefix, err := idxPrefix(split)
	if err != nil {
		return nil, err
	}
	imgPath, err := findIDXFile(dir, prefix, "images", "idx3")
	if err != nil {
		return nil, err
	}
	lblPath, err := findIDXFile(dir, prefix, "labels", "idx1")
	if err != nil {
		return nil, err
	}
	classes := MNISTClasses
	abs, _ := filepath.Abs(dir)
	if strings.Contains(strings.ToLower(abs), "fashion") {
		classes = FashionMNISTClasses
	}
	ds, err := openIDX(imgPath, lblPath, classes)
	if err != nil {
		return nil, err
	}
	if prefix == "t10k" {
		ds.Split = "test"
	} else {
		ds.Split = "train"
	}
	if len(classes) == len(FashionMNISTClasses) && classes[0] == FashionMNISTClasses[0] {
		ds.Name = "fashion-mnist"
	} else {
		ds.Name = "mnist"
	}
	return ds, nil
}

// EncodeIDX writes ds (one channel) as an IDX images file and an IDX labels
// file, gzipped when gz is set. It is the inverse of OpenIDX.
func EncodeIDX(ds *Dataset, images, labels io.Writer, gz bool) error {
	if ds.C != 1 {
		return fmt.Errorf("IDX holds one channel, dataset %s has %d", ds.Name, ds.C)
	}
	if err := ds.Validate(); err != nil {
		return err
	}
	write := func(w io.Writer, magic uint32, dims []int, payload []byte) error {
		var zw *gzip.Writer
		if gz {
			zw = gzip.NewWriter(w)
			w = zw
		}
		hdr := make([]byte, 4+4*len(dims))
		binary.BigEndian.PutUint32(hdr, magic)
		for i, d := range dims {
			binary.BigEndian.PutUint32(hdr[4+4*i:], uint32(d))
		}
		if _, err := w.Write(hdr); err != nil {
			return err
		}
		if _, err := w.Write(payload); err != nil {
			return err
		}
		if zw != nil {
			return zw.Close()
		}
		return nil
	}
	if err := write(images, idxImagesMagic, []int{ds.N, ds.H, ds.W}, ds.Pixels); err != nil {
		return fmt.Errorf("writing IDX images: %w", err)
	}
	lbl := make([]byte, ds.N)
	for i, l := range ds.Labels {
		if l > 255 {
			return fmt.Errorf("writing IDX labels: record %d: label %d does not fit a byte", i, l)
		}
		lbl[i] = byte(l)
	}
	if err := write(labels, idxLabelsMagic, []int{ds.N}, lbl); err != nil {
		return fmt.Errorf("writing IDX labels: %w", err)
	}
	return nil
}
