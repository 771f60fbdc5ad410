package images

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// PIL 9.4 reference: Image.fromarray(src, mode="F").resize((W, H), Image.BICUBIC)
// of the 4×5 image src[y][x] = (37x + 91y) mod 256.
func TestResizeBicubicMatchesPIL(t *testing.T) {
	src := make([]float32, 4*5)
	for y := range 4 {
		for x := range 5 {
			src[y*5+x] = float32((x*37 + y*91) % 256)
		}
	}
	up := []float32{-8.1422, 12.2569, 41.5846, 68.0132, 94.4417, 123.7694, 144.1685, 35.3152, 54.7132, 88.686, 126.5294, 153.397, 182.2856, 202.6848, 106.9743, 129.619, 148.5274, 149.3519, 174.7957, 205.1081, 225.5072, 179.4928, 215.8476, 171.1438, 15.6481, 35.0796, 71.4044, 91.8035, 97.8447, 127.254, 114.7757, 38.4706, 60.9479, 94.2268, 114.6259, 3.9894, 23.2688, 57.7917, 96.9868, 123.9064, 152.7431, 173.1422}
	down := []float32{76.9536, 112.6606, 166.2034, 118.8871, 83.3369, 116.0551}
	for _, c := range []struct {
		oh, ow int
		want   []float32
	}{{6, 7, up}, {2, 3, down}} {
		got := ResizeFilter(src, 1, 4, 5, c.oh, c.ow, Bicubic)
		for i := range c.want {
			if math.Abs(float64(got[i]-c.want[i])) > 1e-3 {
				t.Fatalf("%dx%d: pixel %d = %g, PIL gives %g", c.oh, c.ow, i, got[i], c.want[i])
			}
		}
	}
}

func TestHFProcessorNormalisesPerChannel(t *testing.T) {
	// A constant image stays constant through any resize; each channel then
	// becomes (v·rescale − mean[c]) / std[c].
	vals := []float32{255, 0, 51}
	img := make([]float32, 3*5*7)
	for k, v := range vals {
		for i := range 35 {
			img[k*35+i] = v
		}
	}
	p := &HFProcessor{Size: &hfSize{Height: 4, Width: 4}, ImageMean: jsonFloats{0.485, 0.456, 0.406}, ImageStd: jsonFloats{0.229, 0.224, 0.225}}
	out, h, w, err := p.Apply(img, 3, 5, 7, 99)
	if err != nil || h != 4 || w != 4 {
		t.Fatalf("%v %dx%d", err, h, w)
	}
	for k, v := range vals {
		want := (float64(v)/255 - float64(p.ImageMean[k])) / float64(p.ImageStd[k])
		for i := range 16 {
			if got := out[k*16+i]; math.Abs(float64(got)-want) > 1e-5 {
				t.Fatalf("channel %d pixel %d: %g, want %g", k, i, got, want)
			}
		}
	}
}

func TestHFProcessorShortestEdgeAndCentreCrop(t *testing.T) {
	// 4 rows × 8 columns, value 10·column: shortest_edge 4 keeps the size,
	// the 4×4 centre crop keeps columns 2..5; no rescale or normalisation.
	img := make([]float32, 4*8)
	for y := range 4 {
		for x := range 8 {
			img[y*8+x] = float32(10 * x)
		}
	}
	no, yes := false, true
	p := &HFProcessor{Size: &hfSize{ShortestEdge: 4}, DoCenterCrop: &yes, CropSize: &hfSize{Height: 4, Width: 4}, DoRescale: &no, DoNormalize: &no}
	out, h, w, err := p.Apply(img, 1, 4, 8, 0)
	if err != nil || h != 4 || w != 4 {
		t.Fatalf("%v %dx%d", err, h, w)
	}
	for y := range 4 {
		for x := range 4 {
			if got, want := out[y*4+x], float32(10*(x+2)); got != want {
				t.Fatalf("(%d,%d) = %g, want %g", y, x, got, want)
			}
		}
	}
	// The shortest edge of a portrait image goes to the width.
	p = &HFProcessor{Size: &hfSize{ShortestEdge: 2}, DoRescale: &no, DoNormalize: &no}
	if _, h, w, _ = p.Apply(make([]float32, 8*4), 1, 8, 4, 0); h != 4 || w != 2 {
		t.Errorf("8x4 with shortest_edge 2 → %dx%d, want 4x2", h, w)
	}
}

func TestReadHFProcessor(t *testing.T) {
	dir := t.TempDir()
	if p, err := ReadHFProcessor(dir); p != nil || err != nil {
		t.Fatalf("no file: %v %v", p, err)
	}
	write := func(s string) { os.WriteFile(filepath.Join(dir, ProcessorFile), []byte(s), 0o644) }
	write(`{"do_resize": true, "size": 224, "resample": 3, "image_mean": 0.5, "image_std": [0.1, 0.2, 0.3]}`)
	p, err := ReadHFProcessor(dir)
	if err != nil || p.Size.Height != 224 || p.Size.Width != 224 || *p.Resample != 3 || len(p.ImageMean) != 1 || p.ImageStd[2] != 0.3 {
		t.Fatalf("%+v %v", p, err)
	}
	for cfg, want := range map[string]string{
		`{"resample": 0}`:          "resample 0 is not supported",
		`{"do_center_crop": true}`: "crop_size",
		`{"size": {"foo": 1}}`:     "neither height and width nor shortest_edge",
		`{"size": "big"}`:          ProcessorFile,
	} {
		write(cfg)
		if _, err := ReadHFProcessor(dir); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want an error with %q, got %v", cfg, want, err)
		}
	}
}

func TestLoadImageFileHF(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "red.png")
	img := image.NewRGBA(image.Rect(0, 0, 6, 3))
	for y := range 3 {
		for x := range 6 {
			img.Set(x, y, color.RGBA{255, 0, 0, 255})
		}
	}
	f, _ := os.Create(path)
	png.Encode(f, img)
	f.Close()
	p := &HFProcessor{Size: &hfSize{Height: 4, Width: 4}}
	px, err := LoadImageFileHF(path, p, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	// ViT defaults: (x/255 − 0.5)/0.5, red → 1, −1, −1.
	for k, want := range []float32{1, -1, -1} {
		if px[k*16] != want || px[k*16+15] != want {
			t.Errorf("channel %d: %g, %g, want %g", k, px[k*16], px[k*16+15], want)
		}
	}
	if _, err := LoadImageFileHF(path, p, 8, 3); err == nil || !strings.Contains(err.Error(), "the model wants 8x8") {
		t.Errorf("size mismatch: %v", err)
	}
}
