package images

import (
	"fmt"
	"image"
	"image/color"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Format names the on-disk layouts Open recognises.
type Format string

const (
	FormatIDX         Format = "idx"         // MNIST-style folder of IDX files
	FormatIDXFile     Format = "idx-file"    // one *-images-idx3-ubyte[.gz] file (labels beside it)
	FormatCIFAR10     Format = "cifar10"     // CIFAR-10 binary batches
	FormatCIFAR100    Format = "cifar100"    // CIFAR-100 binary train.bin/test.bin
	FormatImageFolder Format = "imagefolder" // root/[split/]class/image
)

// Options adjust Open for the formats that need a choice.
type Options struct {
	// Size and Channels are the ImageFolder output (default 224 and 3).
	Size, Channels int
	// Coarse selects CIFAR-100's 20 coarse labels instead of the 100 fine ones.
	Coarse bool
	// Classes, when set, names the labels instead of the format's default
	// (e.g. FashionMNISTClasses for an IDX folder whose path does not say
	// "fashion").
	Classes []string
}

// Detect returns the format of path and the splits it holds. An empty
// format with a nil error means path is not an image dataset.
func Detect(path string) (Format, []string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", nil, err
	}
	if !st.IsDir() {
		base := strings.ToLower(filepath.Base(path))
		if strings.Contains(base, "images-idx3") || strings.Contains(base, "images.idx3") {
			split := "train"
			if strings.HasPrefix(base, "t10k") || strings.Contains(base, "test") {
				split = "test"
			}
			return FormatIDXFile, []string{split}, nil
		}
		return "", nil, nil
	}
	var splits []string
	for _, s := range []string{"train", "test"} {
		p, _ := idxPrefix(s)
		if _, err := findIDXFile(path, p, "images", "idx3"); err == nil {
			splits = append(splits, s)
		}
	}
	if len(splits) > 0 {
		return FormatIDX, splits, nil
	}
	for s, f := range map[string]string{"train": "data_batch_1.bin", "test": "test_batch.bin"} {
		if fileExists(filepath.Join(cifarDir(path, "cifar-10-batches-bin", f), f)) {
			splits = append(splits, s)
		}
	}
	if len(splits) > 0 {
		sort.Sort(sort.Reverse(sort.StringSlice(splits))) // train, test
		return FormatCIFAR10, splits, nil
	}
	for _, s := range []string{"train", "test"} {
		if fileExists(filepath.Join(cifarDir(path, "cifar-100-binary", s+".bin"), s+".bin")) {
			splits = append(splits, s)
		}
	}
	if len(splits) > 0 {
		return FormatCIFAR100, splits, nil
	}
	return detectFolder(path)
}

// detectFolder recognises root/class/image (one split, "all") and
// root/split/class/image.
func detectFolder(path string) (Format, []string, error) {
	entries, err := os.ReadDir(path)
	if err != nil {
		return "", nil, err
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) == 0 {
		return "", nil, nil
	}
	hasImages := func(dir string) bool {
		es, _ := os.ReadDir(dir)
		for _, e := range es {
			if !e.IsDir() && imageExts[strings.ToLower(filepath.Ext(e.Name()))] {
				return true
			}
		}
		return false
	}
	for _, d := range dirs {
		if hasImages(filepath.Join(path, d)) {
			return FormatImageFolder, []string{"all"}, nil
		}
	}
	var splits []string
	for _, d := range dirs {
		sub, _ := os.ReadDir(filepath.Join(path, d))
		for _, e := range sub {
			if e.IsDir() && hasImages(filepath.Join(path, d, e.Name())) {
				splits = append(splits, d)
				break
			}
		}
	}
	if len(splits) == 0 {
		return "", nil, nil
	}
	sort.Strings(splits)
	return FormatImageFolder, splits, nil
}

// Open reads split of the dataset at path, detecting its format, with the
// default Options.
func Open(path, split string) (*Dataset, error) { return OpenWith(path, split, Options{}) }

// OpenWith reads split of the dataset at path, detecting its format. A
// single-split ImageFolder (root/class/image) answers any split with all its
// images.
func OpenWith(path, split string, opt Options) (*Dataset, error) {
	ds, err := openWith(path, split, opt)
	if err != nil || opt.Classes == nil {
		return ds, err
	}
	if err := ds.SetClasses(opt.Classes); err != nil {
		return nil, err
	}
	return ds, nil
}

func openWith(path, split string, opt Options) (*Dataset, error) {
	format, splits, err := Detect(path)
	if err != nil {
		return nil, err
	}
	switch format {
	case FormatIDX:
		return OpenMNISTDir(path, split)
	case FormatIDXFile:
		lbl := strings.Replace(strings.Replace(path, "images-idx3", "labels-idx1", 1), "images.idx3", "labels.idx1", 1)
		return OpenIDX(path, lbl)
	case FormatCIFAR10:
		return OpenCIFAR10(path, split)
	case FormatCIFAR100:
		return OpenCIFAR100(path, split, !opt.Coarse)
	case FormatImageFolder:
		size, ch := opt.Size, opt.Channels
		if size == 0 {
			size = 224
		}
		if ch == 0 {
			ch = 3
		}
		dir := path
		var classes []string // nil: the folder's own subfolders
		if !(len(splits) == 1 && splits[0] == "all") {
			if split == "" || !contains(splits, split) {
				return nil, fmt.Errorf("image folder %s has splits %s, not %q", path, strings.Join(splits, ", "), split)
			}
			dir = filepath.Join(path, split)
			// Number the classes over all splits so labels agree between them.
			for _, s := range splits {
				names, err := classDirs(filepath.Join(path, s))
				if err != nil {
					return nil, err
				}
				for _, n := range names {
					if !contains(classes, n) {
						classes = append(classes, n)
					}
				}
			}
			sort.Strings(classes)
		}
		ds, err := openImageFolder(dir, size, ch, classes)
		if err != nil {
			return nil, err
		}
		ds.Name = filepath.Base(filepath.Clean(path))
		ds.Split = split
		if ds.Split == "" {
			ds.Split = "all"
		}
		return ds, nil
	}
	return nil, fmt.Errorf("%s: not a recognised image dataset (IDX, CIFAR binary or image folder)", path)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Inspect describes the image dataset at path on w: its format, and per
// split the image shape, the number of images per class, and any skipped
// files. recognised is false (with a nil error) when path is not an image
// dataset, so a caller can try other kinds.
func Inspect(path string, w io.Writer) (recognised bool, err error) {
	format, splits, err := Detect(path)
	if err != nil || format == "" {
		return false, err
	}
	fmt.Fprintf(w, "%s: %s image dataset, splits: %s\n", path, format, strings.Join(splits, ", "))
	for _, s := range splits {
		ds, err := Open(path, s)
		if err != nil {
			return true, err
		}
		Describe(ds, w)
	}
	if format == FormatImageFolder {
		note := "an image folder is read at any size: each image is scaled and centre-cropped to the size and channels of the model that reads it (above, the defaults)"
		if p, cfg, ok := firstImage(path); ok {
			note += fmt.Sprintf("; its first image, %s, is %dx%d (%s)", p, cfg.Width, cfg.Height, colorModelName(cfg.ColorModel))
		}
		fmt.Fprintf(w, "\nnote: %s\n", note)
	}
	return true, nil
}

// firstImage finds the first decodable image file under root, in walk order.
func firstImage(root string) (string, image.Config, bool) {
	var found string
	var cfg image.Config
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !imageExts[strings.ToLower(filepath.Ext(p))] {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		if c, _, err := image.DecodeConfig(f); err == nil {
			found, cfg = p, c
			return fs.SkipAll
		}
		return nil
	})
	return found, cfg, found != ""
}

func colorModelName(m color.Model) string {
	switch m {
	case color.GrayModel, color.Gray16Model:
		return "grey"
	case color.RGBAModel, color.RGBA64Model, color.NRGBAModel, color.NRGBA64Model, color.YCbCrModel:
		return "colour"
	}
	if _, ok := m.(color.Palette); ok {
		return "palette"
	}
	return "colour"
}

// Describe writes the shape and per-class counts of ds on w.
func Describe(ds *Dataset, w io.Writer) {
	fmt.Fprintf(w, "\n[%s] %s: %d images, %dx%dx%d (CxHxW), %d classes\n", ds.Split, ds.Name, ds.N, ds.C, ds.H, ds.W, len(ds.Classes))
	for c, n := range ds.ClassCounts() {
		fmt.Fprintf(w, "  %3d %-24s %7d  %5.1f%%\n", c, ds.Classes[c], n, 100*float64(n)/float64(max(1, ds.N)))
	}
	if len(ds.Skipped) > 0 {
		fmt.Fprintf(w, "  skipped %d files:\n", len(ds.Skipped))
		for i, s := range ds.Skipped {
			if i == 10 {
				fmt.Fprintf(w, "    ... and %d more\n", len(ds.Skipped)-10)
				break
			}
			fmt.Fprintf(w, "    %s\n", s)
		}
	}
}
