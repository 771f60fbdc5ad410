package images

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"os"
	"path/filepath"
)

// ProcessorFile is the name of a Hugging Face image processor's configuration.
const ProcessorFile = "preprocessor_config.json"

// HFProcessor is the part of a Hugging Face image processor's
// preprocessor_config.json that vitbert applies: resize (to height × width,
// or the shortest edge to a length keeping the aspect ratio), centre crop,
// rescale and normalise, in that order, as transformers' ViT, DeiT, BEiT and
// ConvNeXt processors do. Absent keys take ViTImageProcessor's defaults.
type HFProcessor struct {
	DoResize      *bool      `json:"do_resize"`
	Size          *hfSize    `json:"size"`
	Resample      *int       `json:"resample"`
	DoCenterCrop  *bool      `json:"do_center_crop"`
	CropSize      *hfSize    `json:"crop_size"`
	DoRescale     *bool      `json:"do_rescale"`
	RescaleFactor *float64   `json:"rescale_factor"`
	DoNormalize   *bool      `json:"do_normalize"`
	ImageMean     jsonFloats `json:"image_mean"`
	ImageStd      jsonFloats `json:"image_std"`
}

// hfSize is {"height": H, "width": W}, {"shortest_edge": S} or a bare number
// (older configurations: a square).
type hfSize struct {
	Height       int `json:"height"`
	Width        int `json:"width"`
	ShortestEdge int `json:"shortest_edge"`
}

func (s *hfSize) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		s.Height, s.Width = n, n
		return nil
	}
	type plain hfSize
	return json.Unmarshal(b, (*plain)(s))
}

// jsonFloats is a list of floats or one float for every channel.
type jsonFloats []float32

func (f *jsonFloats) UnmarshalJSON(b []byte) error {
	var one float32
	if err := json.Unmarshal(b, &one); err == nil {
		*f = jsonFloats{one}
		return nil
	}
	return json.Unmarshal(b, (*[]float32)(f))
}

func orTrue(b *bool) bool { return b == nil || *b }

// ReadHFProcessor reads dir/preprocessor_config.json; (nil, nil) when the
// directory has none.
func ReadHFProcessor(dir string) (*HFProcessor, error) {
	path := filepath.Join(dir, ProcessorFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p HFProcessor
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &p, nil
}

func (p *HFProcessor) check() error {
	if p.Resample != nil && *p.Resample != 2 && *p.Resample != 3 {
		return fmt.Errorf("resample %d is not supported (2 bilinear and 3 bicubic are)", *p.Resample)
	}
	if orTrue(p.DoResize) && p.Size != nil && p.Size.ShortestEdge <= 0 && (p.Size.Height <= 0 || p.Size.Width <= 0) {
		return fmt.Errorf("size %+v has neither height and width nor shortest_edge", *p.Size)
	}
	if p.DoCenterCrop != nil && *p.DoCenterCrop && (p.CropSize == nil || p.CropSize.Height <= 0 || p.CropSize.Width <= 0) {
		return errors.New("do_center_crop without a crop_size height and width")
	}
	return nil
}

// Apply preprocesses a CHW image of values in [0,255] (c channels, h × w) into
// the model's input; it returns the pixels and their height and width.
// A processor without size resizes to def × def.
func (p *HFProcessor) Apply(img []float32, c, h, w, def int) ([]float32, int, int, error) {
	if err := p.check(); err != nil {
		return nil, 0, 0, err
	}
	if orTrue(p.DoResize) {
		oh, ow := def, def
		if s := p.Size; s != nil {
			if s.ShortestEdge > 0 {
				// transformers' get_resize_output_image_size(default_to_square=False).
				short, long := min(h, w), max(h, w)
				newLong := int(float64(s.ShortestEdge) * float64(long) / float64(short))
				oh, ow = s.ShortestEdge, newLong
				if h > w {
					oh, ow = newLong, s.ShortestEdge
				}
			} else {
				oh, ow = s.Height, s.Width
			}
		}
		f := Bilinear
		if p.Resample != nil && *p.Resample == 3 {
			f = Bicubic
		}
		img = ResizeFilter(img, c, h, w, oh, ow, f)
		if p.Resample != nil && *p.Resample == 3 {
			for i, v := range img { // PIL clips bicubic overshoot of 8-bit images
				img[i] = min(max(v, 0), 255)
			}
		}
		h, w = oh, ow
	}
	if p.DoCenterCrop != nil && *p.DoCenterCrop {
		ch, cw := p.CropSize.Height, p.CropSize.Width
		if ch > h || cw > w {
			return nil, 0, 0, fmt.Errorf("crop_size %dx%d is larger than the resized image %dx%d", ch, cw, h, w)
		}
		top, left := (h-ch)/2, (w-cw)/2
		out := make([]float32, c*ch*cw)
		for k := range c {
			for y := range ch {
				copy(out[(k*ch+y)*cw:(k*ch+y+1)*cw], img[(k*h+top+y)*w+left:])
			}
		}
		img, h, w = out, ch, cw
	}
	scale := float32(1)
	if orTrue(p.DoRescale) {
		scale = 1.0 / 255
		if p.RescaleFactor != nil {
			scale = float32(*p.RescaleFactor)
		}
	}
	mean, std := []float32{0}, []float32{1}
	if orTrue(p.DoNormalize) {
		mean, std = ViTMean, ViTStd
		if p.ImageMean != nil {
			mean = p.ImageMean
		}
		if p.ImageStd != nil {
			std = p.ImageStd
		}
	}
	plane := h * w
	for k := range c {
		m, s, err := channelStat(mean, std, k, c)
		if err != nil {
			return nil, 0, 0, err
		}
		for i, v := range img[k*plane : (k+1)*plane] {
			img[k*plane+i] = (v*scale - m) / s
		}
	}
	return img, h, w, nil
}

// LoadImageFileHF reads one image file and preprocesses it with p into a
// size × size model input with the given channels (1 or 3).
func LoadImageFileHF(path string, p *HFProcessor, size, channels int) ([]float32, error) {
	if channels != 1 && channels != 3 {
		return nil, fmt.Errorf("loading %s: need 1 or 3 channels, got %d", path, channels)
	}
	img, err := decodeFile(path)
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	rgba := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := range b.Dy() {
		for x := range b.Dx() {
			rgba.Set(x, y, img.At(b.Min.X+x, b.Min.Y+y))
		}
	}
	buf := make([]uint8, channels*b.Dx()*b.Dy())
	toCHW(rgba, channels, buf)
	px := make([]float32, len(buf))
	for i, v := range buf {
		px[i] = float32(v)
	}
	out, h, w, err := p.Apply(px, channels, b.Dy(), b.Dx(), size)
	if err != nil {
		return nil, fmt.Errorf("loading %s with %s: %w", path, ProcessorFile, err)
	}
	if h != size || w != size {
		return nil, fmt.Errorf("loading %s: %s makes %dx%d images, the model wants %dx%d", path, ProcessorFile, h, w, size, size)
	}
	return out, nil
}

// LoadForModel reads an image file as a model input: with the model's
// preprocessor_config.json when it has one (p not nil), else as Hugging
// Face's ViTImageProcessor defaults do for a square model input (shorter side
// scaled to size, centre crop, mean and std 0.5).
func LoadForModel(path string, p *HFProcessor, size, channels int) ([]float32, error) {
	if p != nil {
		return LoadImageFileHF(path, p, size, channels)
	}
	return LoadImageFile(path, size, channels, ViTMean, ViTStd)
}
