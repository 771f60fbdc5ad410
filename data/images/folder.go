package images

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/gif" // registers GIF with image.Decode
	_ "image/jpeg"
	_ "image/png"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/image/draw"
)

// imageExts are the file name extensions an ImageFolder reads.
var imageExts = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".gif": true}

// OpenImageFolder reads a tree dir/<class>/<image>: each subfolder is a
// class (sorted by name, as torchvision's ImageFolder does) and each PNG,
// JPEG or GIF in it an example. Images of any size are scaled so that their
// shorter side is size and centre-cropped to size x size, with channels 1
// (grey) or 3 (RGB). Files that cannot be decoded, or that are not images,
// are skipped and listed in Skipped with the reason; hidden files are ignored.
func OpenImageFolder(dir string, size, channels int) (*Dataset, error) {
	return openImageFolder(dir, size, channels, nil)
}

// classDirs lists the visible subfolders of dir, sorted.
func classDirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("image folder: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// openImageFolder reads dir with the given class list (nil: dir's
// subfolders), so that the splits of one dataset share label numbers even
// when a split lacks a class.
func openImageFolder(dir string, size, channels int, classes []string) (*Dataset, error) {
	if size <= 0 {
		return nil, fmt.Errorf("image folder %s: size %d must be positive", dir, size)
	}
	if channels != 1 && channels != 3 {
		return nil, fmt.Errorf("image folder %s: channels %d must be 1 or 3", dir, channels)
	}
	present, err := classDirs(dir)
	if err != nil {
		return nil, err
	}
	if classes == nil {
		classes = present
	}
	type item struct {
		path  string
		label int32
	}
	var items []item
	var skipped []string
	for _, name := range present {
		label := int32(slices.Index(classes, name))
		if label < 0 {
			return nil, fmt.Errorf("image folder %s: class %q is not among %v", dir, name, classes)
		}
		files, err := os.ReadDir(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("image folder: %w", err)
		}
		for _, f := range files {
			p := filepath.Join(dir, name, f.Name())
			if strings.HasPrefix(f.Name(), ".") {
				continue
			}
			if f.IsDir() {
				skipped = append(skipped, p+": nested folder ignored")
				continue
			}
			if !imageExts[strings.ToLower(filepath.Ext(f.Name()))] {
				skipped = append(skipped, p+": not a .png, .jpg, .jpeg or .gif file")
				continue
			}
			items = append(items, item{p, label})
		}
	}
	if len(classes) < 2 {
		msg := fmt.Sprintf("image folder %s: %d class subfolder(s) %v, with %d image file(s): a classification set needs at least 2 classes (one subfolder per class)", dir, len(classes), classes, len(items))
		if len(skipped) > 0 {
			sort.Strings(skipped)
			msg += fmt.Sprintf("; skipped %d file(s): %s", len(skipped), strings.Join(skipped[:min(len(skipped), 5)], "; "))
			if len(skipped) > 5 {
				msg += "; …"
			}
		}
		return nil, errors.New(msg)
	}

	// Decode in parallel into fixed slots so the order stays that of the
	// sorted file names.
	imgSize := channels * size * size
	pixels := make([]uint8, len(items)*imgSize)
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(runtime.GOMAXPROCS(0), max(1, len(items))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = loadInto(items[i].path, size, channels, pixels[i*imgSize:(i+1)*imgSize])
			}
		}()
	}
	for i := range items {
		next <- i
	}
	close(next)
	wg.Wait()

	ds := &Dataset{Name: filepath.Base(filepath.Clean(dir)), Split: "", H: size, W: size, C: channels, Classes: classes}
	ds.Pixels = pixels[:0]
	for i, it := range items {
		if errs[i] != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", it.path, errs[i]))
			continue
		}
		// Compact in place: the destination never overtakes the source.
		ds.Pixels = append(ds.Pixels, pixels[i*imgSize:(i+1)*imgSize]...)
		ds.Labels = append(ds.Labels, it.label)
		ds.N++
	}
	sort.Strings(skipped)
	ds.Skipped = skipped
	return ds, nil
}

// loadInto decodes one image file, scales and crops it to size x size and
// writes its channels x size x size CHW bytes into dst.
func loadInto(path string, size, channels int, dst []uint8) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return fmt.Errorf("decoding: %w", err)
	}
	rgba := scaleCrop(img, size)
	toCHW(rgba, channels, dst)
	return nil
}

// scaleCrop scales img so that its shorter side is size and takes the
// centred size x size square, in one bilinear pass from the matching square
// of the source. Transparent pixels end up over black.
func scaleCrop(img image.Image, size int) *image.RGBA {
	b := img.Bounds()
	side := min(b.Dx(), b.Dy())
	x0 := b.Min.X + (b.Dx()-side)/2
	y0 := b.Min.Y + (b.Dy()-side)/2
	src := image.Rect(x0, y0, x0+side, y0+side)
	dst := image.NewRGBA(image.Rect(0, 0, size, size))
	if side == size {
		draw.Draw(dst, dst.Bounds(), img, src.Min, draw.Src)
	} else {
		draw.BiLinear.Scale(dst, dst.Bounds(), img, src, draw.Src, nil)
	}
	return dst
}

// toCHW writes the pixels of img as channels (1: luma, 3: RGB) planes.
func toCHW(img *image.RGBA, channels int, dst []uint8) {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	plane := w * h
	for y := range h {
		for x := range w {
			o := img.PixOffset(x, y)
			r, g, b := img.Pix[o], img.Pix[o+1], img.Pix[o+2]
			i := y*w + x
			if channels == 1 {
				dst[i] = color.GrayModel.Convert(color.RGBA{r, g, b, 255}).(color.Gray).Y
			} else {
				dst[i], dst[plane+i], dst[2*plane+i] = r, g, b
			}
		}
	}
}
