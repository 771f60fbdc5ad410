package images

import (
	"embed"
	"fmt"
)

// embeddedFS holds a small cut of Fashion-MNIST (see embedded/README.md) so
// that training and tests run with no download.
//
//go:embed embedded/*.gz
var embeddedFS embed.FS

// Embedded sizes: the first images of the official training and test files.
const (
	DefaultTrainSize = 10000
	DefaultTestSize  = 2000
)

// Default returns the embedded default data: the first 10,000 training and
// 2,000 test images of Fashion-MNIST, 28x28 grey, 10 classes.
func Default() (train, test *Dataset, err error) {
	load := func(prefix, split string) (*Dataset, error) {
		img, err := embeddedFS.ReadFile("embedded/" + prefix + "-images-idx3-ubyte.gz")
		if err != nil {
			return nil, err
		}
		lbl, err := embeddedFS.ReadFile("embedded/" + prefix + "-labels-idx1-ubyte.gz")
		if err != nil {
			return nil, err
		}
		imgName, lblName := "embedded "+prefix+"-images-idx3-ubyte.gz", "embedded "+prefix+"-labels-idx1-ubyte.gz"
		if img, err = gunzipIfNeeded(img, imgName); err != nil {
			return nil, err
		}
		if lbl, err = gunzipIfNeeded(lbl, lblName); err != nil {
			return nil, err
		}
		ds, err := decodeIDX(img, lbl, imgName, lblName, FashionMNISTClasses)
		if err != nil {
			return nil, err
		}
		ds.Name, ds.Split = "fashion-mnist-default", split
		return ds, nil
	}
	if train, err = load("train", "train"); err != nil {
		return nil, nil, fmt.Errorf("embedded default data: %w", err)
	}
	if test, err = load("t10k", "test"); err != nil {
		return nil, nil, fmt.Errorf("embedded default data: %w", err)
	}
	return train, test, nil
}
