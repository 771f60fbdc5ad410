//go:build ignore

// Cut writes the embedded default data set: the first 10,000 training and
// the first 2,000 test images of Fashion-MNIST, as gzipped IDX files.
//
//	go run ./cmd/vitbert data fetch fashion-mnist
//	go run data/images/embedded/cut.go data/cache/fashion-mnist data/images/embedded
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vitbert/vitbert/data/images"
)

func main() {
	nTrain := flag.Int("train", 10000, "training images to keep")
	nTest := flag.Int("test", 2000, "test images to keep")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run cut.go [-train N] [-test N] FASHION_MNIST_DIR OUT_DIR")
		os.Exit(2)
	}
	src, out := flag.Arg(0), flag.Arg(1)
	for _, c := range []struct {
		split, prefix string
		n             int
	}{{"train", "train", *nTrain}, {"test", "t10k", *nTest}} {
		ds, err := images.OpenMNISTDir(src, c.split)
		if err != nil {
			fail(err)
		}
		head := ds.Head(c.n)
		img, err := os.Create(filepath.Join(out, c.prefix+"-images-idx3-ubyte.gz"))
		if err != nil {
			fail(err)
		}
		lbl, err := os.Create(filepath.Join(out, c.prefix+"-labels-idx1-ubyte.gz"))
		if err != nil {
			fail(err)
		}
		if err := images.EncodeIDX(head, img, lbl, true); err != nil {
			fail(err)
		}
		if err := img.Close(); err != nil {
			fail(err)
		}
		if err := lbl.Close(); err != nil {
			fail(err)
		}
		fmt.Printf("%s: %d images, per class %v\n", c.split, head.N, head.ClassCounts())
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
