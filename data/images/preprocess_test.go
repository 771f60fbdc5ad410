package images

import (
	"math"
	"math/rand/v2"
	"testing"
)

func near(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > tol {
			t.Fatalf("%s: [%d] = %v, want %v (all: %v)", what, i, got[i], want[i], got)
		}
	}
}

func TestResizeBilinearHandComputed(t *testing.T) {
	cases := []struct {
		name         string
		src          []float32
		h, w, oh, ow int
		want         []float32
	}{
		// Enlarging 2 -> 4: output centres 0.25, 0.75, 1.25, 1.75 in source
		// pixels; the outer ones clamp to the edge pixels.
		{"up row", []float32{0, 4}, 1, 2, 1, 4, []float32{0, 1, 3, 4}},
		// Shrinking 4 -> 2 widens the triangle to 2 pixels: output 0 sees
		// pixels 0,1,2 with weights .75,.75,.25 (over 1.75).
		{"down row", []float32{0, 4, 8, 12}, 1, 4, 1, 2, []float32{5 / 1.75, 16 / 1.75}},
		// Separable: a 2x2 image enlarged to 4x4 is the outer product of the
		// 1-D weights.
		{"up 2d", []float32{0, 4, 8, 12}, 2, 2, 4, 4, []float32{
			0, 1, 3, 4,
			2, 3, 5, 6,
			6, 7, 9, 10,
			8, 9, 11, 12}},
		{"same size copies", []float32{1, 2, 3}, 1, 3, 1, 3, []float32{1, 2, 3}},
	}
	for _, c := range cases {
		near(t, c.name, Resize(c.src, 1, c.h, c.w, c.oh, c.ow), c.want, 1e-5)
	}
	// Constant images stay constant at any scale, channel by channel.
	src := make([]float32, 2*28*28)
	for i := range src {
		src[i] = float32(7 + 100*(i/(28*28)))
	}
	for _, n := range []int{5, 32, 224} {
		out := Resize(src, 2, 28, 28, n, n)
		for i, v := range out {
			if want := float32(7 + 100*(i/(n*n))); math.Abs(float64(v-want)) > 1e-3 {
				t.Fatalf("28->%d: [%d] = %v, want %v", n, i, v, want)
			}
		}
	}
}

func TestConvertChannels(t *testing.T) {
	rgb, err := ConvertChannels([]float32{10, 20}, 1, 1, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "grey->rgb", rgb, []float32{10, 20, 10, 20, 10, 20}, 0)
	grey, err := ConvertChannels([]float32{100, 0, 200, 0, 50, 255}, 3, 1, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "rgb->grey", grey, []float32{0.299*100 + 0.587*200 + 0.114*50, 0.114 * 255}, 1e-4)
	if _, err := ConvertChannels([]float32{1, 2}, 2, 1, 1, 3); err == nil {
		t.Error("2 -> 3 channels: no error")
	}
}

func TestNormalize(t *testing.T) {
	x := []float32{0, 127.5, 255}
	if err := Normalize(x, 1, nil, nil); err != nil {
		t.Fatal(err)
	}
	near(t, "ViT default", x, []float32{-1, 0, 1}, 1e-6)

	y := []float32{255, 0, 255, 0}
	if err := Normalize(y, 2, []float32{0.485, 0.456}, []float32{0.229, 0.224}); err != nil {
		t.Fatal(err)
	}
	near(t, "ImageNet stats", y, []float32{(1 - 0.485) / 0.229, -0.485 / 0.229, (1 - 0.456) / 0.224, -0.456 / 0.224}, 1e-5)
	if err := Normalize([]float32{1, 2, 3}, 3, []float32{0, 0}, nil); err == nil {
		t.Error("two means for three channels: no error")
	}
	if err := Normalize([]float32{1}, 1, nil, []float32{0}); err == nil {
		t.Error("zero std: no error")
	}
}

func TestShiftIsPaddedCrop(t *testing.T) {
	img := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	cases := []struct {
		dy, dx int
		want   []float32
	}{
		{1, 0, []float32{4, 5, 6, 7, 8, 9, 0, 0, 0}},
		{0, -1, []float32{0, 1, 2, 0, 4, 5, 0, 7, 8}},
		{-2, 2, []float32{0, 0, 0, 0, 0, 0, 3, 0, 0}},
		{0, 0, img},
	}
	for _, c := range cases {
		got := append([]float32(nil), img...)
		shift(got, 1, 3, 3, c.dy, c.dx)
		near(t, "shift", got, c.want, 0)
	}
}

func TestAugmentIsDeterministicAndLegal(t *testing.T) {
	img := make([]float32, 2*4*4)
	for i := range img {
		img[i] = float32(i + 1)
	}
	aug := Augment{Pad: 1, Flip: true}
	seen := map[string]bool{}
	for seed := range uint64(60) {
		a := append([]float32(nil), img...)
		b := append([]float32(nil), img...)
		aug.Apply(a, 2, 4, 4, rand.New(rand.NewPCG(seed, 1)))
		aug.Apply(b, 2, 4, 4, rand.New(rand.NewPCG(seed, 1)))
		near(t, "same seed", a, b, 0)
		// The result must be one of the 9 shifts, flipped or not.
		found := ""
		for dy := -1; dy <= 1; dy++ {
			for dx := -1; dx <= 1; dx++ {
				for _, flip := range []bool{false, true} {
					c := append([]float32(nil), img...)
					shift(c, 2, 4, 4, dy, dx)
					if flip {
						flipRows(c, 4)
					}
					if equal(a, c) {
						found = string(rune('0'+dy+1)) + string(rune('0'+dx+1)) + map[bool]string{false: "", true: "f"}[flip]
					}
				}
			}
		}
		if found == "" {
			t.Fatalf("seed %d: output is no padded crop/flip of the input", seed)
		}
		seen[found] = true
	}
	if len(seen) < 10 {
		t.Errorf("60 seeds gave only %d distinct augmentations", len(seen))
	}
}

// flipRows mirrors every row of width w.
func flipRows(img []float32, w int) {
	for r := 0; r < len(img); r += w {
		for i, j := r, r+w-1; i < j; i, j = i+1, j-1 {
			img[i], img[j] = img[j], img[i]
		}
	}
}

func equal(a, b []float32) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

func TestPreprocessImage(t *testing.T) {
	ds := &Dataset{N: 1, C: 1, H: 2, W: 2, Pixels: []uint8{0, 255, 255, 0}, Labels: []int32{0}, Classes: []string{"x"}}
	p := Preprocess{Size: 4, Channels: 3}
	x, err := p.Image(ds, 0, Augment{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Rows of the 4x4 enlargement: weights (1,0), (.75,.25), (.25,.75), (0,1).
	plane := []float32{0, 63.75, 191.25, 255, 63.75, 95.625, 159.375, 191.25, 191.25, 159.375, 95.625, 63.75, 255, 191.25, 63.75, 0}
	var want []float32
	for range 3 {
		for _, v := range plane {
			want = append(want, (v/255-0.5)/0.5)
		}
	}
	near(t, "2x2 grey -> 4x4 RGB", x, want, 1e-5)
}

func TestPreprocessRGBToGreyShrinks(t *testing.T) {
	// A 2x2 RGB image reduced to one 1x1 grey channel: the luma of the
	// mean colour (shrinking 2->1 weighs all four pixels equally).
	ds := &Dataset{N: 1, C: 3, H: 2, W: 2, Labels: []int32{0}, Classes: []string{"x"},
		Pixels: []uint8{0, 100, 100, 200, 255, 255, 255, 255, 0, 0, 0, 40}}
	x, err := Preprocess{Size: 1, Channels: 1, Mean: []float32{0}, Std: []float32{1.0 / 255}}.Image(ds, 0, Augment{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "rgb 2x2 -> grey 1x1", x, []float32{0.299*100 + 0.587*255 + 0.114*10}, 1e-3)
}
