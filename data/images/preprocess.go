package images

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"

	"image"
)

// ViTMean and ViTStd are the normalisation of Hugging Face's ViT image
// processor: pixels are scaled to [0,1], then (x-0.5)/0.5 maps them to [-1,1].
var (
	ViTMean = []float32{0.5, 0.5, 0.5}
	ViTStd  = []float32{0.5, 0.5, 0.5}
)

// Resize scales a CHW float image from h x w to oh x ow with the bilinear
// (triangle) filter of PIL, which Hugging Face's image processors use: pixel
// centres sit at half-integer coordinates; enlarging interpolates between
// the two nearest pixels (clamped at the border), shrinking widens the filter
// to the scale factor so every source pixel contributes (anti-aliasing).
func Resize(src []float32, c, h, w, oh, ow int) []float32 {
	return ResizeFilter(src, c, h, w, oh, ow, Bilinear)
}

// Resampling filters of PIL (and of Hugging Face image processors'
// "resample": 2 is bilinear, 3 bicubic).
var (
	Bilinear = Filter{Support: 1, Kernel: func(x float64) float64 { return max(0, 1-math.Abs(x)) }}
	Bicubic  = Filter{Support: 2, Kernel: bicubic}
)

// Filter is a separable resampling filter: Kernel is zero outside
// [-Support, Support].
type Filter struct {
	Support float64
	Kernel  func(x float64) float64
}

// bicubic is PIL's cubic convolution kernel with a = -0.5.
func bicubic(x float64) float64 {
	const a = -0.5
	x = math.Abs(x)
	switch {
	case x < 1:
		return ((a+2)*x-(a+3))*x*x + 1
	case x < 2:
		return (((x-5)*x+8)*x - 4) * a
	}
	return 0
}

// ResizeFilter is Resize with the given filter (PIL's ImagingResample).
func ResizeFilter(src []float32, c, h, w, oh, ow int, f Filter) []float32 {
	if h == oh && w == ow {
		return append([]float32(nil), src...)
	}
	wy := filterWeights(h, oh, f)
	wx := filterWeights(w, ow, f)
	tmp := make([]float32, c*h*ow) // horizontal pass
	for ch := range c {
		for y := range h {
			row := src[(ch*h+y)*w : (ch*h+y+1)*w]
			out := tmp[(ch*h+y)*ow : (ch*h+y+1)*ow]
			for x, tw := range wx {
				var s float32
				for k, wt := range tw.w {
					s += wt * row[tw.first+k]
				}
				out[x] = s
			}
		}
	}
	dst := make([]float32, c*oh*ow) // vertical pass
	for ch := range c {
		plane := tmp[ch*h*ow : (ch+1)*h*ow]
		out := dst[ch*oh*ow : (ch+1)*oh*ow]
		for y, tw := range wy {
			o := out[y*ow : (y+1)*ow]
			for k, wt := range tw.w {
				row := plane[(tw.first+k)*ow : (tw.first+k+1)*ow]
				for x := range o {
					o[x] += wt * row[x]
				}
			}
		}
	}
	return dst
}

type taps struct {
	first int
	w     []float32
}

// filterWeights returns, for each of the n output positions, the source
// pixels and normalised weights of filter f (as PIL's ImagingResample).
func filterWeights(in, n int, f Filter) []taps {
	scale := float64(in) / float64(n)
	stretch := max(scale, 1)       // shrinking widens the filter
	support := f.Support * stretch // filter half-width in source pixels
	out := make([]taps, n)
	for i := range out {
		centre := (float64(i) + 0.5) * scale
		lo := max(0, int(math.Floor(centre-support+0.5)))
		hi := min(in, int(math.Floor(centre+support+0.5)))
		var ws []float64
		var sum float64
		for j := lo; j < hi; j++ {
			wt := f.Kernel((float64(j) + 0.5 - centre) / stretch)
			ws = append(ws, wt)
			sum += wt
		}
		t := taps{first: lo, w: make([]float32, len(ws))}
		for k, wt := range ws {
			if sum > 0 {
				t.w[k] = float32(wt / sum)
			}
		}
		out[i] = t
	}
	return out
}

// ConvertChannels converts a CHW image between 1 and 3 channels: grey to RGB
// repeats the plane, RGB to grey takes the ITU-R 601 luma
// 0.299R + 0.587G + 0.114B. Equal counts return a copy.
func ConvertChannels(src []float32, c, h, w, want int) ([]float32, error) {
	plane := h * w
	switch {
	case c == want:
		return append([]float32(nil), src...), nil
	case c == 1 && want == 3:
		dst := make([]float32, 3*plane)
		for k := range 3 {
			copy(dst[k*plane:], src[:plane])
		}
		return dst, nil
	case c == 3 && want == 1:
		dst := make([]float32, plane)
		for i := range dst {
			dst[i] = 0.299*src[i] + 0.587*src[plane+i] + 0.114*src[2*plane+i]
		}
		return dst, nil
	}
	return nil, fmt.Errorf("cannot convert %d channels to %d", c, want)
}

// Normalize maps pixel values in [0,255] to (x/255 - mean[c]) / std[c], in
// place. A one-element mean or std applies to every channel; nil means
// ViTMean / ViTStd.
func Normalize(img []float32, c int, mean, std []float32) error {
	if mean == nil {
		mean = ViTMean
	}
	if std == nil {
		std = ViTStd
	}
	plane := len(img) / c
	for ch := range c {
		m, s, err := channelStat(mean, std, ch, c)
		if err != nil {
			return err
		}
		inv := 1 / s
		p := img[ch*plane : (ch+1)*plane]
		for i, v := range p {
			p[i] = (v/255 - m) * inv
		}
	}
	return nil
}

func channelStat(mean, std []float32, ch, c int) (float32, float32, error) {
	pick := func(v []float32, name string) (float32, error) {
		switch {
		case len(v) == 1:
			return v[0], nil
		case len(v) >= c:
			return v[ch], nil
		}
		return 0, fmt.Errorf("%s has %d values for %d channels", name, len(v), c)
	}
	m, err := pick(mean, "mean")
	if err != nil {
		return 0, 0, err
	}
	s, err := pick(std, "std")
	if err != nil {
		return 0, 0, err
	}
	if s == 0 {
		return 0, 0, fmt.Errorf("std of channel %d is zero", ch)
	}
	return m, s, nil
}

// Augment is the training augmentation: a random crop of the image padded
// with Pad black pixels on every side, then a horizontal flip with
// probability one half when Flip is set.
type Augment struct {
	Pad  int
	Flip bool
}

// Enabled reports whether a does anything.
func (a Augment) Enabled() bool { return a.Pad > 0 || a.Flip }

// Apply augments the CHW image img (values before normalisation, so padding
// is black) in place, drawing from rng.
func (a Augment) Apply(img []float32, c, h, w int, rng *rand.Rand) {
	if a.Pad > 0 {
		// Offsets in [-Pad, Pad]: the crop window's corner in the image.
		dy := rng.IntN(2*a.Pad+1) - a.Pad
		dx := rng.IntN(2*a.Pad+1) - a.Pad
		shift(img, c, h, w, dy, dx)
	}
	if a.Flip && rng.IntN(2) == 1 {
		for ch := range c {
			for y := range h {
				row := img[(ch*h+y)*w : (ch*h+y+1)*w]
				for i, j := 0, w-1; i < j; i, j = i+1, j-1 {
					row[i], row[j] = row[j], row[i]
				}
			}
		}
	}
}

// shift makes out[y][x] = img[y+dy][x+dx], zero outside the image: the crop
// at offset (dy, dx) of the zero-padded image.
func shift(img []float32, c, h, w, dy, dx int) {
	if dy == 0 && dx == 0 {
		return
	}
	tmp := make([]float32, h*w)
	for ch := range c {
		p := img[ch*h*w : (ch+1)*h*w]
		clear(tmp)
		for y := range h {
			sy := y + dy
			if sy < 0 || sy >= h {
				continue
			}
			for x := range w {
				if sx := x + dx; sx >= 0 && sx < w {
					tmp[y*w+x] = p[sy*w+sx]
				}
			}
		}
		copy(p, tmp)
	}
}

// Preprocess turns dataset images into the model's input: Size x Size pixels
// (bilinear resize when they differ), Channels channels, normalised with
// Mean and Std (nil: ViTMean, ViTStd).
type Preprocess struct {
	Size, Channels int
	Mean, Std      []float32
}

// Float converts CHW bytes to float32 pixel values in [0,255] at the target
// size and channel count, not yet normalised.
func (p Preprocess) Float(img []uint8, c, h, w int) ([]float32, error) {
	f := make([]float32, len(img))
	for i, v := range img {
		f[i] = float32(v)
	}
	return p.fromFloat(f, c, h, w)
}

func (p Preprocess) fromFloat(f []float32, c, h, w int) ([]float32, error) {
	size, ch := p.Size, p.Channels
	if size == 0 {
		if h != w {
			return nil, fmt.Errorf("image is %dx%d and no size was given", h, w)
		}
		size = h
	}
	if ch == 0 {
		ch = c
	}
	// Resize the fewer channels: grey before repeating it, RGB after
	// reducing it to grey.
	var err error
	if ch < c {
		if f, err = ConvertChannels(f, c, h, w, ch); err != nil {
			return nil, err
		}
		c = ch
	}
	if h != size || w != size {
		f = Resize(f, c, h, w, size, size)
	}
	if c != ch {
		return ConvertChannels(f, c, size, size, ch)
	}
	return f, nil
}

// Image returns image i of ds ready for the model, augmented by aug when rng
// is not nil.
func (p Preprocess) Image(ds *Dataset, i int, aug Augment, rng *rand.Rand) ([]float32, error) {
	f, err := p.Float(ds.Image(i), ds.C, ds.H, ds.W)
	if err != nil {
		return nil, err
	}
	size := p.Size
	if size == 0 {
		size = ds.H
	}
	c := len(f) / (size * size)
	if rng != nil {
		aug.Apply(f, c, size, size, rng)
	}
	if err := Normalize(f, c, p.Mean, p.Std); err != nil {
		return nil, err
	}
	return f, nil
}

// LoadImageFile reads one PNG, JPEG or GIF file and returns it as the model
// input: scaled so the shorter side is size, centre-cropped to size x size
// (as OpenImageFolder does), with channels 1 or 3, normalised with mean and
// std (nil: ViTMean, ViTStd), as a CHW float32 slice.
func LoadImageFile(path string, size, channels int, mean, std []float32) ([]float32, error) {
	img, err := decodeFile(path)
	if err != nil {
		return nil, err
	}
	out, err := ModelInput(img, size, channels, mean, std)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	return out, nil
}

// ModelInput is LoadImageFile for a decoded image: scaled so the shorter side
// is size, centre-cropped, with channels 1 or 3, normalised, as CHW float32.
func ModelInput(img image.Image, size, channels int, mean, std []float32) ([]float32, error) {
	if size <= 0 || (channels != 1 && channels != 3) {
		return nil, fmt.Errorf("need size > 0 and 1 or 3 channels, got %d and %d", size, channels)
	}
	buf := make([]uint8, channels*size*size)
	toCHW(scaleCrop(img, size), channels, buf)
	out := make([]float32, len(buf))
	for i, v := range buf {
		out[i] = float32(v)
	}
	if err := Normalize(out, channels, mean, std); err != nil {
		return nil, err
	}
	return out, nil
}

// decodeFile reads one PNG, JPEG or GIF file.
func decodeFile(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	return img, nil
}
