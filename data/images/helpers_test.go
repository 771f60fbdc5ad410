package images

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// synthetic returns an n-image dataset whose pixel k of image i is
// (i*31 + k) mod 256 and whose label is i mod classes.
func synthetic(n, c, h, w, classes int) *Dataset {
	ds := &Dataset{Name: "synthetic", Split: "train", N: n, C: c, H: h, W: w, Classes: numberNames(classes)}
	for i := range n {
		for k := range c * h * w {
			ds.Pixels = append(ds.Pixels, uint8((i*31+k)%256))
		}
		ds.Labels = append(ds.Labels, int32(i%classes))
	}
	return ds
}

// idxBytes builds an IDX file by hand (independently of EncodeIDX).
func idxBytes(magic uint32, dims []uint32, payload []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, magic)
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, d)
	}
	b.Write(payload)
	return b.Bytes()
}

func gz(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func writeFile(t testing.TB, path string, data []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeMNISTDir writes the four IDX files of ds (train) and test into dir.
func writeMNISTDir(t testing.TB, dir string, train, test *Dataset, compress bool) {
	t.Helper()
	for prefix, ds := range map[string]*Dataset{"train": train, "t10k": test} {
		lbl := make([]byte, ds.N)
		for i, l := range ds.Labels {
			lbl[i] = byte(l)
		}
		img := idxBytes(0x803, []uint32{uint32(ds.N), uint32(ds.H), uint32(ds.W)}, ds.Pixels)
		lab := idxBytes(0x801, []uint32{uint32(ds.N)}, lbl)
		ext := ""
		if compress {
			img, lab, ext = gz(t, img), gz(t, lab), ".gz"
		}
		writeFile(t, filepath.Join(dir, prefix+"-images-idx3-ubyte"+ext), img)
		writeFile(t, filepath.Join(dir, prefix+"-labels-idx1-ubyte"+ext), lab)
	}
}

func sameDataset(t *testing.T, got, want *Dataset) {
	t.Helper()
	if got.N != want.N || got.C != want.C || got.H != want.H || got.W != want.W {
		t.Fatalf("shape N=%d C=%d H=%d W=%d, want N=%d C=%d H=%d W=%d", got.N, got.C, got.H, got.W, want.N, want.C, want.H, want.W)
	}
	if !bytes.Equal(got.Pixels, want.Pixels) {
		t.Fatalf("pixels differ")
	}
	for i := range want.Labels {
		if got.Labels[i] != want.Labels[i] {
			t.Fatalf("label %d = %d, want %d", i, got.Labels[i], want.Labels[i])
		}
	}
}
