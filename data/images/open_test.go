package images

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDetectAndOpenEachFormat(t *testing.T) {
	root := t.TempDir()
	mnist := filepath.Join(root, "mnist")
	writeMNISTDir(t, mnist, synthetic(6, 1, 2, 2, 10), synthetic(2, 1, 2, 2, 10), true)
	c10 := filepath.Join(root, "c10")
	writeFile(t, filepath.Join(c10, "cifar-10-batches-bin", "test_batch.bin"), cifarRecords([][]byte{{4}}))
	c100 := filepath.Join(root, "c100")
	writeFile(t, filepath.Join(c100, "cifar-100-binary", "train.bin"), cifarRecords([][]byte{{1, 2}, {3, 4}}))
	notes := filepath.Join(root, "notes")
	writeFile(t, filepath.Join(notes, "a.txt"), []byte("text"))

	cases := []struct {
		path, split string
		format      Format
		splits      string
		n           int
	}{
		{mnist, "test", FormatIDX, "train,test", 2},
		{filepath.Join(mnist, "train-images-idx3-ubyte.gz"), "", FormatIDXFile, "train", 6},
		{c10, "test", FormatCIFAR10, "test", 1},
		{c100, "train", FormatCIFAR100, "train", 2},
	}
	for _, c := range cases {
		format, splits, err := Detect(c.path)
		if err != nil || format != c.format || strings.Join(splits, ",") != c.splits {
			t.Errorf("Detect(%s) = %q %v %v, want %q %s", c.path, format, splits, err, c.format, c.splits)
			continue
		}
		ds, err := Open(c.path, c.split)
		if err != nil || ds.N != c.n {
			t.Errorf("Open(%s, %s): %v, N=%v, want %d", c.path, c.split, err, ds, c.n)
		}
	}
	named, err := OpenWith(mnist, "train", Options{Classes: FashionMNISTClasses})
	if err != nil || named.Classes[0] != "T-shirt/top" {
		t.Errorf("Options.Classes not applied: %v %v", err, named)
	}
	if _, err := OpenWith(mnist, "train", Options{Classes: []string{"a", "b"}}); err == nil || !strings.Contains(err.Error(), "record 2: label 2 has no name") {
		t.Errorf("too few class names: %v", err)
	}
	if format, _, err := Detect(notes); format != "" || err != nil {
		t.Errorf("text folder detected as %q (%v)", format, err)
	}
	if _, err := Open(notes, "train"); err == nil {
		t.Error("Open on a text folder: no error")
	}
}

func TestInspectPrintsCountsPerSplitAndClass(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fashion")
	writeMNISTDir(t, dir, synthetic(13, 1, 3, 3, 10), synthetic(4, 1, 3, 3, 10), false)
	var out bytes.Buffer
	ok, err := Inspect(dir, &out)
	if !ok || err != nil {
		t.Fatalf("Inspect: %v %v", ok, err)
	}
	s := out.String()
	for _, want := range []string{"idx image dataset, splits: train, test",
		"[train] fashion-mnist: 13 images, 1x3x3 (CxHxW), 10 classes",
		"[test] fashion-mnist: 4 images",
		"0 T-shirt/top                    2", // labels 0 and 10 mod 10
		"9 Ankle boot                     1"} {
		if !strings.Contains(s, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, s)
		}
	}
	ok, err = Inspect(t.TempDir(), &out)
	if ok || err != nil {
		t.Errorf("empty folder: recognised %v, %v", ok, err)
	}
	if _, err := Inspect(filepath.Join(dir, "missing"), &out); !os.IsNotExist(err) {
		t.Errorf("missing path: %v", err)
	}
}

func TestDefaultIsEmbeddedFashionMNIST(t *testing.T) {
	train, test, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ds     *Dataset
		n      int
		counts []int
	}{
		{train, DefaultTrainSize, []int{942, 1027, 1016, 1019, 974, 989, 1021, 1022, 990, 1000}},
		{test, DefaultTestSize, []int{200, 203, 214, 190, 219, 195, 197, 200, 194, 188}},
	} {
		if err := c.ds.Validate(); err != nil {
			t.Fatal(err)
		}
		if c.ds.N != c.n || c.ds.H != 28 || c.ds.W != 28 || c.ds.C != 1 || c.ds.Classes[9] != "Ankle boot" {
			t.Errorf("%s: N=%d %dx%dx%d classes %v", c.ds.Split, c.ds.N, c.ds.C, c.ds.H, c.ds.W, c.ds.Classes)
		}
		for k, n := range c.ds.ClassCounts() {
			if n != c.counts[k] {
				t.Errorf("%s: class %d has %d images, README says %d", c.ds.Split, k, n, c.counts[k])
			}
		}
	}
	// Fashion-MNIST images have dark backgrounds: the corners are black.
	var corner int
	for i := range train.N {
		corner += int(train.Image(i)[0])
	}
	if corner > train.N*5 {
		t.Errorf("mean top-left pixel %d/%d, want near 0", corner, train.N)
	}
}
