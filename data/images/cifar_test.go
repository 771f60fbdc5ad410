package images

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// cifarRecords builds CIFAR records by hand: label bytes then 3072 pixels
// whose value k of record i is (i + k) mod 256.
func cifarRecords(labels [][]byte) []byte {
	var b bytes.Buffer
	for i, ls := range labels {
		b.Write(ls)
		for k := range cifarImage {
			b.WriteByte(byte(i + k))
		}
	}
	return b.Bytes()
}

func TestOpenCIFAR10ReadsBatchesInOrder(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "cifar-10-batches-bin") // the archive's folder
	for i := 1; i <= 5; i++ {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("data_batch_%d.bin", i)), cifarRecords([][]byte{{byte(i)}, {byte(i + 4)}}))
	}
	writeFile(t, filepath.Join(dir, "test_batch.bin"), cifarRecords([][]byte{{9}}))
	writeFile(t, filepath.Join(dir, "batches.meta.txt"), []byte("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n"))

	train, err := OpenCIFAR10(root, "train")
	if err != nil {
		t.Fatal(err)
	}
	if train.N != 10 || train.C != 3 || train.H != 32 || train.W != 32 {
		t.Fatalf("train N=%d C=%d H=%d W=%d, want 10 3x32x32", train.N, train.C, train.H, train.W)
	}
	wantLabels := []int32{1, 5, 2, 6, 3, 7, 4, 8, 5, 9}
	for i, l := range wantLabels {
		if train.Labels[i] != l {
			t.Errorf("label %d = %d, want %d", i, train.Labels[i], l)
		}
	}
	// Record 1 of each file has pixel k = (1+k) mod 256; CHW order is kept,
	// so the green plane starts at 1024.
	img := train.Image(3)
	if img[0] != 1 || img[1024] != (1+1024)%256 || img[3071] != (1+3071)%256 {
		t.Errorf("image 3 pixels %d %d %d", img[0], img[1024], img[3071])
	}
	if train.Classes[0] != "a" || len(train.Classes) != 10 {
		t.Errorf("classes %v, want those of batches.meta.txt", train.Classes)
	}
	test, err := OpenCIFAR10(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	if test.N != 1 || test.Labels[0] != 9 || test.Split != "test" {
		t.Errorf("test N=%d labels %v split %q", test.N, test.Labels, test.Split)
	}
}

func TestOpenCIFAR100FineAndCoarse(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "train.bin"), cifarRecords([][]byte{{3, 77}, {19, 99}, {0, 0}}))
	fine, err := OpenCIFAR100(dir, "train", true)
	if err != nil {
		t.Fatal(err)
	}
	coarse, err := OpenCIFAR100(dir, "train", false)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][2]int32{{77, 3}, {99, 19}, {0, 0}} {
		if fine.Labels[i] != want[0] || coarse.Labels[i] != want[1] {
			t.Errorf("record %d: fine %d coarse %d, want %v", i, fine.Labels[i], coarse.Labels[i], want)
		}
	}
	if len(fine.Classes) != 100 || fine.Classes[99] != "worm" || len(coarse.Classes) != 20 || coarse.Classes[19] != "vehicles_2" {
		t.Errorf("class lists: %d fine (last %q), %d coarse", len(fine.Classes), fine.Classes[len(fine.Classes)-1], len(coarse.Classes))
	}
	if !bytes.Equal(fine.Image(1), coarse.Image(1)) || fine.Image(1)[0] != 1 {
		t.Errorf("pixels of record 1 differ between label choices")
	}
}

func TestCIFARErrorsNameFileAndRecord(t *testing.T) {
	good := cifarRecords([][]byte{{1}, {2}})
	cases := []struct {
		name, file string
		data       []byte
		want       string
	}{
		{"truncated", "test_batch.bin", good[:len(good)-5], "6141 bytes is not a whole number of 3073-byte records (record 1 is incomplete)"},
		{"label out of range", "test_batch.bin", cifarRecords([][]byte{{1}, {2}, {10}}), "record 2: label byte 0 is 10, out of range [0,10)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := writeFile(t, filepath.Join(dir, c.file), c.data)
			_, err := OpenCIFAR10(dir, "test")
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("error %v, want it to name %s and say %q", err, p, c.want)
			}
		})
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "test.bin"), cifarRecords([][]byte{{2, 5}, {20, 5}}))
	if _, err := OpenCIFAR100(dir, "test", true); err == nil || !strings.Contains(err.Error(), "record 1: label byte 0 is 20, out of range [0,20)") {
		t.Errorf("CIFAR-100 coarse label 20: error %v", err)
	}
	dir = t.TempDir()
	writeFile(t, filepath.Join(dir, "data_batch_1.bin"), good)
	if _, err := OpenCIFAR10(dir, "train"); err == nil || !strings.Contains(err.Error(), "data_batch_2.bin") {
		t.Errorf("missing batch 2: error %v", err)
	}
}

func FuzzCIFAR(f *testing.F) {
	f.Add(cifarRecords([][]byte{{1}, {2}}), uint8(1))
	f.Add(cifarRecords([][]byte{{3, 99}}), uint8(2))
	f.Add(cifarRecords([][]byte{{200}})[:100], uint8(1))
	f.Add([]byte{}, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, labelBytes uint8) {
		limits := []int{10}
		if labelBytes%2 == 0 {
			limits = []int{20, 100}
		}
		ds := &Dataset{H: 32, W: 32, C: 3, Classes: numberNames(100)}
		if err := decodeCIFAR(ds, data, "fuzz", limits, len(limits)-1); err != nil {
			return
		}
		if err := ds.Validate(); err != nil {
			t.Fatalf("decoded dataset is inconsistent: %v", err)
		}
		if ds.N != len(data)/(len(limits)+cifarImage) {
			t.Fatalf("N=%d from %d bytes", ds.N, len(data))
		}
	})
}
