package images

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// CIFAR images are 32x32 RGB, stored as 1024 red, 1024 green then 1024 blue
// bytes, rows top to bottom: already CHW.
const (
	cifarSide  = 32
	cifarImage = 3 * cifarSide * cifarSide
)

// cifarDir returns dir itself or the folder the official archives unpack to,
// whichever holds probe.
func cifarDir(dir, sub, probe string) string {
	if fileExists(filepath.Join(dir, probe)) {
		return dir
	}
	if fileExists(filepath.Join(dir, sub, probe)) {
		return filepath.Join(dir, sub)
	}
	return dir
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// readClassNames reads one name per non-empty line; ok is false if the file
// does not exist.
func readClassNames(path string) (names []string, ok bool, err error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			names = append(names, s)
		}
	}
	return names, true, sc.Err()
}

// decodeCIFAR appends the records of one CIFAR binary file to ds. Each record
// is len(limits) label bytes, each below its limit (labelIndex picks the one
// to keep), followed by 3072 pixel bytes.
func decodeCIFAR(ds *Dataset, data []byte, name string, limits []int, labelIndex int) error {
	labelBytes := len(limits)
	rec := labelBytes + cifarImage
	if len(data)%rec != 0 {
		return fmt.Errorf("reading %s: %d bytes is not a whole number of %d-byte records (record %d is incomplete)", name, len(data), rec, len(data)/rec)
	}
	n := len(data) / rec
	ds.Pixels = slices.Grow(ds.Pixels, n*cifarImage)
	for i := range n {
		r := data[i*rec : (i+1)*rec]
		for j, lim := range limits {
			if int(r[j]) >= lim {
				return fmt.Errorf("reading %s: record %d: label byte %d is %d, out of range [0,%d)", name, i, j, r[j], lim)
			}
		}
		ds.Labels = append(ds.Labels, int32(r[labelIndex]))
		ds.Pixels = append(ds.Pixels, r[labelBytes:]...)
	}
	ds.N += n
	return nil
}

func readCIFARFile(ds *Dataset, path string, limits []int, labelIndex int) error {
	data, err := readMaybeGzip(path)
	if err != nil {
		return err
	}
	return decodeCIFAR(ds, data, path, limits, labelIndex)
}

// OpenCIFAR10 reads split "train" (data_batch_1.bin .. data_batch_5.bin) or
// "test" (test_batch.bin) of the CIFAR-10 binary version, from dir or its
// cifar-10-batches-bin subfolder. Class names come from batches.meta.txt
// when present. Missing training batches are an error: a partial training
// set would silently change results.
func OpenCIFAR10(dir, split string) (*Dataset, error) {
	var files []string
	switch split {
	case "train", "":
		split = "train"
		dir = cifarDir(dir, "cifar-10-batches-bin", "data_batch_1.bin")
		for i := 1; i <= 5; i++ {
			files = append(files, filepath.Join(dir, fmt.Sprintf("data_batch_%d.bin", i)))
		}
	case "test":
		dir = cifarDir(dir, "cifar-10-batches-bin", "test_batch.bin")
		files = []string{filepath.Join(dir, "test_batch.bin")}
	default:
		return nil, fmt.Errorf("CIFAR-10 has splits train and test, not %q", split)
	}
	classes, ok, err := readClassNames(filepath.Join(dir, "batches.meta.txt"))
	if err != nil {
		return nil, err
	}
	if !ok {
		classes = CIFAR10Classes
	}
	if len(classes) != 10 {
		return nil, fmt.Errorf("reading %s: %d class names, want 10", filepath.Join(dir, "batches.meta.txt"), len(classes))
	}
	ds := &Dataset{Name: "cifar10", Split: split, H: cifarSide, W: cifarSide, C: 3, Classes: classes}
	for _, f := range files {
		if err := readCIFARFile(ds, f, []int{10}, 0); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

// OpenCIFAR100 reads split "train" (train.bin) or "test" (test.bin) of the
// CIFAR-100 binary version, from dir or its cifar-100-binary subfolder.
// Records carry a coarse (20 classes) and a fine (100 classes) label; fine
// picks which one becomes the label. Class names come from
// fine_label_names.txt / coarse_label_names.txt when present.
func OpenCIFAR100(dir, split string, fine bool) (*Dataset, error) {
	var file string
	switch split {
	case "train", "":
		split = "train"
		dir = cifarDir(dir, "cifar-100-binary", "train.bin")
		file = filepath.Join(dir, "train.bin")
	case "test":
		dir = cifarDir(dir, "cifar-100-binary", "test.bin")
		file = filepath.Join(dir, "test.bin")
	default:
		return nil, fmt.Errorf("CIFAR-100 has splits train and test, not %q", split)
	}
	namesFile, classes, index, name := "coarse_label_names.txt", CIFAR100CoarseClasses, 0, "cifar100-coarse"
	if fine {
		namesFile, classes, index, name = "fine_label_names.txt", CIFAR100FineClasses, 1, "cifar100"
	}
	want := len(classes)
	names, ok, err := readClassNames(filepath.Join(dir, namesFile))
	if err != nil {
		return nil, err
	}
	if ok {
		if len(names) != want {
			return nil, fmt.Errorf("reading %s: %d class names, want %d", filepath.Join(dir, namesFile), len(names), want)
		}
		classes = names
	}
	ds := &Dataset{Name: name, Split: split, H: cifarSide, W: cifarSide, C: 3, Classes: classes}
	if err := readCIFARFile(ds, file, []int{len(CIFAR100CoarseClasses), len(CIFAR100FineClasses)}, index); err != nil {
		return nil, err
	}
	return ds, nil
}
