package images

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenMNISTDirReadsRawAndGzip(t *testing.T) {
	for _, compress := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "fashion-mnist")
		train, test := synthetic(7, 1, 4, 3, 10), synthetic(3, 1, 4, 3, 10)
		writeMNISTDir(t, dir, train, test, compress)
		for split, want := range map[string]*Dataset{"train": train, "test": test} {
			got, err := OpenMNISTDir(dir, split)
			if err != nil {
				t.Fatalf("gz=%v %s: %v", compress, split, err)
			}
			sameDataset(t, got, want)
			if got.Split != split || got.Name != "fashion-mnist" || got.Classes[9] != "Ankle boot" {
				t.Errorf("gz=%v: split %q name %q classes %v", compress, got.Split, got.Name, got.Classes)
			}
		}
	}
}

func TestOpenIDXNamesClassesByPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "digits")
	ds := synthetic(12, 1, 2, 2, 12) // labels up to 11: inferred class count grows
	writeMNISTDir(t, dir, ds, ds, false)
	got, err := OpenIDX(filepath.Join(dir, "train-images-idx3-ubyte"), filepath.Join(dir, "train-labels-idx1-ubyte"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Classes) != 12 || got.Classes[11] != "11" {
		t.Errorf("classes %v, want 0..11", got.Classes)
	}
	// The MNIST reader insists on 10 classes.
	if _, err := OpenMNISTDir(dir, "train"); err == nil || !strings.Contains(err.Error(), "record 10: label 10 out of range") {
		t.Errorf("error %v, want label out of range at record 10", err)
	}
}

func TestEncodeIDXRoundTrip(t *testing.T) {
	ds := synthetic(5, 1, 3, 2, 10)
	for _, compress := range []bool{false, true} {
		var img, lbl bytes.Buffer
		if err := EncodeIDX(ds, &img, &lbl, compress); err != nil {
			t.Fatal(err)
		}
		ib, _ := gunzipIfNeeded(img.Bytes(), "img")
		lb, _ := gunzipIfNeeded(lbl.Bytes(), "lbl")
		if want := idxBytes(0x803, []uint32{5, 3, 2}, ds.Pixels); !bytes.Equal(ib, want) {
			t.Fatalf("gz=%v: images file differs from the hand-built one", compress)
		}
		got, err := decodeIDX(ib, lb, "img", "lbl", MNISTClasses)
		if err != nil {
			t.Fatal(err)
		}
		sameDataset(t, got, ds)
	}
}

func TestIDXErrorsNameFileAndRecord(t *testing.T) {
	good := synthetic(4, 1, 2, 2, 10)
	lbl := []byte{0, 1, 2, 3}
	img := idxBytes(0x803, []uint32{4, 2, 2}, good.Pixels)
	lab := idxBytes(0x801, []uint32{4}, lbl)
	gzImg := gz(t, img)
	cases := []struct {
		name     string
		img, lbl []byte
		want     string
	}{
		{"truncated gzip", gzImg[:len(gzImg)-12], lab, "gzip stream truncated"},
		{"short payload", img[:len(img)-3], lab, "header says [4 2 2] = 16 bytes of data, file has 13 (record 3 is incomplete)"},
		{"long payload", append(append([]byte{}, img...), 0), lab, "16 bytes of data, file has 17"},
		{"wrong magic", idxBytes(0x802, []uint32{4, 2, 2}, good.Pixels), lab, "IDX magic 0x00000802, want 0x00000803"},
		{"short header", img[:9], lab, "IDX header needs 16 bytes"},
		{"count mismatch", img, idxBytes(0x801, []uint32{3}, lbl[:3]), "4 images but 3 labels"},
		{"label out of range", img, idxBytes(0x801, []uint32{4}, []byte{0, 1, 10, 3}), "record 2: label 10 out of range [0,10)"},
		{"huge dims", idxBytes(0x803, []uint32{0xffffffff, 0xffffffff, 0xffffffff}, nil), lab, "impossibly large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ip := writeFile(t, filepath.Join(dir, "train-images-idx3-ubyte.gz"), c.img)
			lp := writeFile(t, filepath.Join(dir, "train-labels-idx1-ubyte.gz"), c.lbl)
			_, err := openIDX(ip, lp, MNISTClasses)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q, want it to contain %q and the file name", err, c.want)
			}
		})
	}
}

func FuzzIDX(f *testing.F) {
	ds := synthetic(3, 1, 2, 2, 10)
	img := idxBytes(0x803, []uint32{3, 2, 2}, ds.Pixels)
	lab := idxBytes(0x801, []uint32{3}, []byte{0, 1, 2})
	f.Add(img, lab)
	f.Add(gz(f, img), gz(f, lab))
	f.Add(img[:10], lab)
	f.Add(idxBytes(0x803, []uint32{1 << 31, 1 << 31, 2}, nil), lab)
	f.Add(idxBytes(0x803, []uint32{0, 0, 0}, nil), idxBytes(0x801, []uint32{0}, nil))
	f.Add([]byte{0x1f, 0x8b, 8, 0}, []byte{})
	f.Fuzz(func(t *testing.T, img, lbl []byte) {
		ib, err := gunzipIfNeeded(img, "img")
		if err != nil {
			return
		}
		lb, err := gunzipIfNeeded(lbl, "lbl")
		if err != nil {
			return
		}
		for _, classes := range [][]string{nil, MNISTClasses} {
			ds, err := decodeIDX(ib, lb, "img", "lbl", classes)
			if err != nil {
				continue
			}
			if err := ds.Validate(); err != nil {
				t.Fatalf("decoded dataset is inconsistent: %v", err)
			}
		}
	})
}
