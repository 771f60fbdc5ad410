package images

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func pngBytes(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// stripes is a 4x2 RGBA image whose column x has red 10*(x+1), green 100,
// blue 200+x.
func stripes() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, 4, 2))
	for y := range 2 {
		for x := range 4 {
			img.Set(x, y, color.RGBA{uint8(10 * (x + 1)), 100, uint8(200 + x), 255})
		}
	}
	return img
}

func uniform(w, h int, c color.Color) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	return img
}

// writeFolder writes root/train/{cat,dog} and root/test/dog.
func writeFolder(t *testing.T, root string) {
	writeFile(t, filepath.Join(root, "train", "cat", "a.png"), pngBytes(t, stripes()))
	writeFile(t, filepath.Join(root, "train", "cat", "b.png"), pngBytes(t, uniform(8, 8, color.RGBA{200, 10, 30, 255})))
	grey := image.NewGray(image.Rect(0, 0, 16, 16))
	for i := range grey.Pix {
		grey.Pix[i] = 128
	}
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, grey, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "train", "dog", "c.jpg"), jb.Bytes())
	writeFile(t, filepath.Join(root, "train", "dog", "corrupt.png"), []byte("\x89PNG\r\n\x1a\nthis is not a png"))
	writeFile(t, filepath.Join(root, "train", "dog", "notes.txt"), []byte("hello"))
	writeFile(t, filepath.Join(root, "train", "dog", ".hidden.png"), []byte("ignored"))
	writeFile(t, filepath.Join(root, "test", "dog", "d.png"), pngBytes(t, stripes()))
}

func TestOpenImageFolderDecodesCropsAndSkips(t *testing.T) {
	root := filepath.Join(t.TempDir(), "pets")
	writeFolder(t, root)
	ds, err := OpenImageFolder(filepath.Join(root, "train"), 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if ds.N != 3 || len(ds.Classes) != 2 || ds.Classes[0] != "cat" || ds.Classes[1] != "dog" {
		t.Fatalf("N=%d classes %v, want 3 images of cat, dog", ds.N, ds.Classes)
	}
	if want := []int32{0, 0, 1}; ds.Labels[0] != want[0] || ds.Labels[1] != want[1] || ds.Labels[2] != want[2] {
		t.Errorf("labels %v, want %v", ds.Labels, want)
	}
	// a.png is 4x2: the centred 2x2 square is columns 1 and 2, unscaled.
	a := ds.Image(0)
	wantA := []uint8{20, 30, 20, 30, 100, 100, 100, 100, 201, 202, 201, 202}
	if !bytes.Equal(a, wantA) {
		t.Errorf("a.png = %v, want %v", a, wantA)
	}
	// b.png is uniform: scaling keeps the colour.
	if b := ds.Image(1); b[0] != 200 || b[3] != 200 || b[4] != 10 || b[11] != 30 {
		t.Errorf("b.png = %v, want uniform (200,10,30)", b)
	}
	// c.jpg is grey 128 (lossy, so within 2), repeated in R, G and B.
	c := ds.Image(2)
	for i, v := range c {
		if math.Abs(float64(v)-128) > 2 || v != c[i%4] {
			t.Errorf("c.jpg pixel %d = %d, want about 128 in every channel", i, v)
		}
	}
	if len(ds.Skipped) != 2 || !strings.Contains(ds.Skipped[0], "corrupt.png: decoding") || !strings.Contains(ds.Skipped[1], "notes.txt: not a .png") {
		t.Errorf("skipped %q, want corrupt.png and notes.txt with reasons", ds.Skipped)
	}

	grey, err := OpenImageFolder(filepath.Join(root, "train"), 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Luma of (200,10,30) as image/color computes it: 69.
	if g := grey.Image(1); grey.C != 1 || len(g) != 4 || g[0] != 69 {
		t.Errorf("grey b.png = %v, want 69s", g)
	}
}

func TestOpenDetectsFolderSplits(t *testing.T) {
	root := filepath.Join(t.TempDir(), "pets")
	writeFolder(t, root)
	format, splits, err := Detect(root)
	if err != nil || format != FormatImageFolder || strings.Join(splits, ",") != "test,train" {
		t.Fatalf("Detect = %q %v %v, want imagefolder test,train", format, splits, err)
	}
	ds, err := OpenWith(root, "test", Options{Size: 2, Channels: 3})
	if err != nil {
		t.Fatal(err)
	}
	// The test split has only dogs, yet numbers classes as train does.
	if ds.N != 1 || ds.Split != "test" || ds.Name != "pets" || len(ds.Classes) != 2 || ds.Classes[1] != "dog" {
		t.Errorf("test split: N=%d split %q name %q classes %v", ds.N, ds.Split, ds.Name, ds.Classes)
	} else if ds.Labels[0] != 1 {
		t.Errorf("the test dog has label %d, want 1 as in train", ds.Labels[0])
	}
	if _, err := OpenWith(root, "val", Options{Size: 2}); err == nil || !strings.Contains(err.Error(), "not \"val\"") {
		t.Errorf("missing split: error %v", err)
	}
	// A flat root/class/image folder is one split.
	format, splits, err = Detect(filepath.Join(root, "train"))
	if err != nil || format != FormatImageFolder || len(splits) != 1 || splits[0] != "all" {
		t.Errorf("flat folder: Detect = %q %v %v", format, splits, err)
	}
}

func TestLoadImageFileNormalises(t *testing.T) {
	p := writeFile(t, filepath.Join(t.TempDir(), "x.png"), pngBytes(t, stripes()))
	x, err := LoadImageFile(p, 2, 3, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{20, 30, 20, 30, 100, 100, 100, 100, 201, 202, 201, 202}
	for i := range want {
		want[i] = (want[i]/255 - 0.5) / 0.5
		if math.Abs(float64(x[i]-want[i])) > 1e-6 {
			t.Errorf("x[%d] = %v, want %v", i, x[i], want[i])
		}
	}
	if _, err := LoadImageFile(writeFile(t, filepath.Join(t.TempDir(), "bad.jpg"), []byte("nope")), 2, 3, nil, nil); err == nil || !strings.Contains(err.Error(), "bad.jpg") {
		t.Errorf("bad file: error %v", err)
	}
}

// A folder with one class (unrelated files around one image) is refused,
// saying what was found and what was skipped.
func TestOpenImageFolderRefusesOneClass(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "stuff", "a.png"), pngBytes(t, stripes()))
	writeFile(t, filepath.Join(root, "stuff", "notes.txt"), []byte("hello"))
	writeFile(t, filepath.Join(root, "readme.md"), []byte("hello"))
	var out bytes.Buffer
	_, err := Inspect(root, &out)
	for _, want := range []string{"1 class subfolder(s) [stuff]", "at least 2 classes", "skipped 1 file(s)", "notes.txt: not a .png"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Inspect of a one-class folder: %v, want %q", err, want)
		}
	}
}

// data inspect on an image folder says that the size it prints is the one
// images are scaled to, and what the images really are.
func TestInspectFolderSaysTheSourceSize(t *testing.T) {
	root := t.TempDir()
	grey := image.NewGray(image.Rect(0, 0, 28, 28))
	for _, c := range []string{"a", "b"} {
		writeFile(t, filepath.Join(root, c, "x.png"), pngBytes(t, grey))
	}
	var out bytes.Buffer
	if ok, err := Inspect(root, &out); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if want := "x.png, is 28x28 (grey)"; !strings.Contains(out.String(), want) {
		t.Errorf("inspect printed %q, want %q", out.String(), want)
	}
}
