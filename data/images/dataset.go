// Package images reads labelled image datasets from their standard on-disk
// formats (IDX as used by MNIST and Fashion-MNIST, the CIFAR-10/100 binary
// batches, and ImageFolder trees of PNG/JPEG files), converts them to the
// model's image size and channel count, augments and normalises them, and cuts
// them into fixed-shape batches for training and evaluation.
//
// Every reader returns a *Dataset holding uint8 pixels in CHW order, so the
// whole of Fashion-MNIST takes 47 MB; conversion to float32 happens per batch.
package images

import (
	"fmt"
	"strconv"
)

// Dataset is a labelled set of equally sized images.
type Dataset struct {
	Name  string // e.g. "fashion-mnist", "cifar10", or the folder name
	Split string // "train", "test", ...
	// N images of C channels, H rows and W columns.
	N, H, W, C int
	// Pixels holds N*C*H*W bytes; image i starts at i*C*H*W and is stored
	// channel-major (CHW), rows top to bottom.
	Pixels  []uint8
	Labels  []int32  // N labels, each in [0, len(Classes))
	Classes []string // class names, indexed by label
	// Skipped lists the files that could not be decoded, each as
	// "path: reason". Only ImageFolder datasets skip files.
	Skipped []string
}

// ImageSize is the number of bytes of one image: C*H*W.
func (d *Dataset) ImageSize() int { return d.C * d.H * d.W }

// Image returns the CHW bytes of image i; the slice aliases d.Pixels.
func (d *Dataset) Image(i int) []uint8 {
	s := d.ImageSize()
	return d.Pixels[i*s : (i+1)*s : (i+1)*s]
}

// ClassCounts returns how many images carry each label.
func (d *Dataset) ClassCounts() []int {
	counts := make([]int, len(d.Classes))
	for _, l := range d.Labels {
		if int(l) >= 0 && int(l) < len(counts) {
			counts[l]++
		}
	}
	return counts
}

// Validate checks that the sizes agree and every label names a class.
func (d *Dataset) Validate() error {
	if d.N < 0 || d.H <= 0 || d.W <= 0 || d.C <= 0 {
		if !(d.N == 0 && d.H >= 0 && d.W >= 0 && d.C >= 0) {
			return fmt.Errorf("dataset %s/%s: bad shape N=%d C=%d H=%d W=%d", d.Name, d.Split, d.N, d.C, d.H, d.W)
		}
	}
	if len(d.Pixels) != d.N*d.ImageSize() {
		return fmt.Errorf("dataset %s/%s: %d pixel bytes, want N*C*H*W = %d", d.Name, d.Split, len(d.Pixels), d.N*d.ImageSize())
	}
	if len(d.Labels) != d.N {
		return fmt.Errorf("dataset %s/%s: %d labels for %d images", d.Name, d.Split, len(d.Labels), d.N)
	}
	for i, l := range d.Labels {
		if l < 0 || int(l) >= len(d.Classes) {
			return fmt.Errorf("dataset %s/%s: record %d: label %d out of range [0,%d)", d.Name, d.Split, i, l, len(d.Classes))
		}
	}
	return nil
}

// SetClasses replaces the class names, checking that every label still
// names a class.
func (d *Dataset) SetClasses(names []string) error {
	for i, l := range d.Labels {
		if int(l) >= len(names) {
			return fmt.Errorf("dataset %s/%s: record %d: label %d has no name among %d classes", d.Name, d.Split, i, l, len(names))
		}
	}
	d.Classes = append([]string(nil), names...)
	return nil
}

// Subset returns the images at the given indices, in that order, as a new
// dataset sharing nothing with d.
func (d *Dataset) Subset(indices []int) (*Dataset, error) {
	s := d.ImageSize()
	out := &Dataset{Name: d.Name, Split: d.Split, N: len(indices), H: d.H, W: d.W, C: d.C,
		Pixels: make([]uint8, 0, len(indices)*s), Labels: make([]int32, 0, len(indices)),
		Classes: append([]string(nil), d.Classes...)}
	for _, i := range indices {
		if i < 0 || i >= d.N {
			return nil, fmt.Errorf("dataset %s/%s: subset index %d out of range [0,%d)", d.Name, d.Split, i, d.N)
		}
		out.Pixels = append(out.Pixels, d.Image(i)...)
		out.Labels = append(out.Labels, d.Labels[i])
	}
	return out, nil
}

// Head returns the first n images (all of them if n >= N).
func (d *Dataset) Head(n int) *Dataset {
	n = max(0, min(n, d.N))
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	out, _ := d.Subset(idx) // indices are in range by construction
	return out
}

// numberNames returns "0", "1", ... "n-1".
func numberNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = strconv.Itoa(i)
	}
	return names
}

// Class names of the standard datasets, indexed by label.
var (
	MNISTClasses        = numberNames(10)
	FashionMNISTClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
		"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}
	CIFAR10Classes = []string{"airplane", "automobile", "bird", "cat", "deer",
		"dog", "frog", "horse", "ship", "truck"}
	CIFAR100CoarseClasses = []string{"aquatic_mammals", "fish", "flowers", "food_containers",
		"fruit_and_vegetables", "household_electrical_devices", "household_furniture", "insects",
		"large_carnivores", "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
		"large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
		"reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2"}
	CIFAR100FineClasses = []string{"apple", "aquarium_fish", "baby", "bear", "beaver", "bed",
		"bee", "beetle", "bicycle", "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel",
		"can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud",
		"cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant",
		"flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp",
		"lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle",
		"mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree",
		"pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum",
		"rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew",
		"skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower",
		"sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor", "train",
		"trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm"}
)
