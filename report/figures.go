// Package report runs the paper's comparison (reproduce) and writes its
// report: tables with mean ± std over seeds and the figures.
package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"image/color"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"

	"github.com/vitbert/vitbert/pretrain"
	"github.com/vitbert/vitbert/safetensors"
	"github.com/vitbert/vitbert/train"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Series is one curve of a loss plot.
type Series struct {
	Name string
	XY   plotter.XYs
	// Dashed draws a reference line.
	Dashed bool
}

// ReadMetrics reads a run's metrics.jsonl into key → (step, value) series.
func ReadMetrics(runDir string) (map[string]plotter.XYs, error) {
	f, err := os.Open(filepath.Join(runDir, train.MetricsFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]plotter.XYs{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", f.Name(), line, err)
		}
		step, _ := rec["step"].(float64)
		for k, v := range rec {
			if x, ok := v.(float64); ok && k != "step" {
				out[k] = append(out[k], plotter.XY{X: step, Y: x})
			}
		}
	}
	return out, sc.Err()
}

// smooth is a trailing moving average over w points, to see the trend of a
// noisy per-step loss.
func smooth(xy plotter.XYs, w int) plotter.XYs {
	out := make(plotter.XYs, len(xy))
	sum := 0.0
	for i := range xy {
		sum += xy[i].Y
		if i >= w {
			sum -= xy[i-w].Y
		}
		out[i] = plotter.XY{X: xy[i].X, Y: sum / float64(min(i+1, w))}
	}
	return out
}

// LinePlot writes a PNG with one line per series.
func LinePlot(path, title, xlabel, ylabel string, series []Series) error {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, xlabel, ylabel
	p.Legend.Top = true
	p.Y.Tick.Marker = distinctTicks{}
	p.Add(plotter.NewGrid())
	for i, s := range series {
		if len(s.XY) == 0 {
			continue
		}
		l, err := plotter.NewLine(s.XY)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i / 7)
		if s.Dashed {
			l.Color, l.Dashes = color.Black, []vg.Length{vg.Points(4), vg.Points(3)}
		}
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.Name, l)
	}
	return p.Save(18*vg.Centimeter, 11*vg.Centimeter, path)
}

// distinctTicks are gonum's default ticks with the labels of the major ones
// given as many decimals as it takes to write their values: over a narrow
// range (held-out losses between 6.45 and 6.75) the default labels read
// 6.6 twice, and one decimal would write 6.45 as 6.4.
type distinctTicks struct{}

func (distinctTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	tol := 1e-6 * math.Max(math.Abs(max-min), math.SmallestNonzeroFloat64)
	for prec := 0; prec <= 10; prec++ {
		exact := true
		for _, t := range ticks {
			if t.Label == "" {
				continue
			}
			v, _ := strconv.ParseFloat(strconv.FormatFloat(t.Value, 'f', prec, 64), 64)
			exact = exact && math.Abs(v-t.Value) <= tol
		}
		if exact {
			for i := range ticks {
				if ticks[i].Label != "" {
					ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', prec, 64)
				}
			}
			break
		}
	}
	return ticks
}

// LossFigure plots one loss of several runs, smoothed.
func LossFigure(path, key, title string, runs []NamedRun) error {
	var series []Series
	for _, r := range runs {
		m, err := ReadMetrics(r.Dir)
		if err != nil {
			return err
		}
		if xy := m[key]; len(xy) > 0 {
			series = append(series, Series{Name: r.Name, XY: smooth(xy, max(1, len(xy)/30))})
		}
	}
	return LinePlot(path, title, "step", key+" (moving average)", series)
}

// NamedRun is a pre-training run directory with its display name.
type NamedRun struct{ Name, Dir string }

// readMaskReports reads masks.jsonl.
func readMaskReports(runDir string) ([]train.MaskReport, error) {
	return readJSONL[train.MaskReport](filepath.Join(runDir, train.MasksFile))
}

// SparsityFigure plots the mask sparsity of every encoder block at every mask update.
func SparsityFigure(path, runDir string) error {
	reps, err := readMaskReports(runDir)
	if err != nil {
		return err
	}
	blocks := map[string]plotter.XYs{}
	for _, r := range reps {
		for b, s := range r.PerBlock {
			blocks[b] = append(blocks[b], plotter.XY{X: float64(r.Update), Y: s})
		}
	}
	names := slices.Sorted(maps.Keys(blocks))
	var series []Series
	for _, b := range names {
		series = append(series, Series{Name: filepath.Base(b), XY: blocks[b]})
	}
	return LinePlot(path, "Gradient-mask sparsity per encoder block", "mask update", "share of parameters given to images", series)
}

// grid is a matrix for a heat map; row r is drawn at height r.
type grid struct {
	rows, cols int
	z          []float64
}

func (g grid) Dims() (c, r int)   { return g.cols, g.rows }
func (g grid) Z(c, r int) float64 { return g.z[r*g.cols+c] }
func (g grid) X(c int) float64    { return float64(c) }
func (g grid) Y(r int) float64    { return float64(r) }

// intTicks labels whole numbers only, at most about n of them.
func intTicks(n int) plot.Ticker {
	return plot.TickerFunc(func(lo, hi float64) []plot.Tick {
		first, last := int(math.Ceil(lo)), int(math.Floor(hi))
		step := max(1, (last-first+1)/n)
		var ts []plot.Tick
		for v := first; v <= last; v += step {
			ts = append(ts, plot.Tick{Value: float64(v), Label: fmt.Sprint(v)})
		}
		return ts
	})
}

func heatPlot(title string, g grid, pal palette.Palette, xlabel, ylabel string, scale ...float64) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(9)
	p.X.Label.Text, p.Y.Label.Text = xlabel, ylabel
	p.X.Tick.Label.Font.Size = vg.Points(7)
	p.Y.Tick.Label.Font.Size = vg.Points(7)
	h := plotter.NewHeatMap(g, pal)
	h.Rasterized = g.rows*g.cols > 40000
	if len(scale) == 2 {
		h.Min, h.Max = scale[0], scale[1]
	}
	p.Add(h)
	p.X.Tick.Marker, p.Y.Tick.Marker = intTicks(5), intTicks(6)
	return p
}

func saveTiles(path string, plots [][]*plot.Plot, width, height vg.Length) error {
	img := vgimg.New(width, height)
	dc := draw.New(img)
	t := draw.Tiles{Rows: len(plots), Cols: len(plots[0]), PadX: vg.Millimeter * 3, PadY: vg.Millimeter * 3,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align(plots, t, dc)
	for j := range plots {
		for i := range plots[j] {
			if plots[j][i] != nil {
				plots[j][i].Draw(canvases[j][i])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	png := vgimg.PngCanvas{Canvas: img}
	if _, err := png.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// maskPalette draws text-owned entries (1) white and image-owned ones (0) black.
type maskPalette struct{}

func (maskPalette) Colors() []color.Color {
	return []color.Color{color.Black, color.White}
}

// MaskFigure draws, for the first, middle and last encoder blocks, the
// gradient mask of the first MLP layer (neurons × inputs) at several mask
// updates: white entries keep the text gradient, black ones went to images.
func MaskFigure(path, runDir string, layers int, tensor string) (int, error) {
	dir := filepath.Join(runDir, pretrain.ProbeDir)
	var updates []int
	for k := 1; ; k++ {
		if _, err := os.Stat(filepath.Join(dir, pretrain.MasksFile(k))); err != nil {
			break
		}
		updates = append(updates, k)
	}
	if len(updates) == 0 {
		return 0, fmt.Errorf("%s: no mask snapshots", dir)
	}
	if len(updates) > 4 { // first, two in the middle, last
		n := len(updates)
		updates = []int{updates[0], updates[n/3], updates[2*n/3], updates[n-1]}
	}
	blocks := []int{0, layers / 2, layers - 1}
	if layers <= 2 {
		blocks = blocks[:0]
		for b := range layers {
			blocks = append(blocks, b)
		}
	}
	plots := make([][]*plot.Plot, len(blocks))
	for bi, b := range blocks {
		plots[bi] = make([]*plot.Plot, len(updates))
		for ui, u := range updates {
			f, err := safetensors.ReadFile(filepath.Join(dir, pretrain.MasksFile(u)))
			if err != nil {
				return 0, err
			}
			name := fmt.Sprintf("/encoder/layer_%d/%s/dense/weights", b, tensor)
			t, ok := f.Tensors[name]
			if !ok {
				return 0, fmt.Errorf("%s: no mask for %s", f.Path, name)
			}
			v, err := t.Float32s()
			if err != nil {
				return 0, err
			}
			g := grid{rows: t.Shape[0], cols: t.Shape[1], z: make([]float64, len(v))}
			zeros := 0
			for i, x := range v {
				g.z[i] = float64(x)
				if x == 0 {
					zeros++
				}
			}
			title := fmt.Sprintf("block %d, update %d (step %s): %.0f%% to images", b, u, f.Metadata["step"], 100*float64(zeros)/float64(len(v)))
			plots[bi][ui] = heatPlot(title, g, maskPalette{}, "input", "neuron")
		}
	}
	w := vg.Length(len(updates)) * 7 * vg.Centimeter
	h := vg.Length(len(blocks)) * 7 * vg.Centimeter
	return len(updates), saveTiles(path, plots, w, h)
}

// ActivationFigure draws the mean |activation| of every MLP neuron (x) of
// every block (y), for text and images, at each probed step (rows).
func ActivationFigure(path, runDir string) error {
	dir := filepath.Join(runDir, pretrain.ProbeDir)
	files, err := filepath.Glob(filepath.Join(dir, "activations-step-*.json"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("%s: no activation probes", dir)
	}
	sort.Strings(files)
	var probes []pretrain.Activations
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var a pretrain.Activations
		if err := json.Unmarshal(b, &a); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		probes = append(probes, a)
	}
	// One colour scale per modality across steps, so growth shows.
	hi := map[string]float64{}
	for _, a := range probes {
		for name, v := range map[string][][]float32{"text": a.Text, "image": a.Image} {
			for _, layer := range v {
				for _, x := range layer {
					hi[name] = math.Max(hi[name], float64(x))
				}
			}
		}
	}
	var plots [][]*plot.Plot
	pal := moreland.SmoothBlueRed().Palette(64)
	for _, a := range probes {
		var row []*plot.Plot
		for _, m := range []struct {
			name string
			v    [][]float32
		}{{"text", a.Text}, {"image", a.Image}} {
			if len(m.v) == 0 {
				continue
			}
			g := grid{rows: len(m.v), cols: len(m.v[0])}
			for _, layer := range m.v {
				for _, x := range layer {
					g.z = append(g.z, float64(x))
				}
			}
			row = append(row, heatPlot(fmt.Sprintf("%s, step %d (blue 0 … red %.2f)", m.name, a.Step, hi[m.name]),
				g, pal, "MLP neuron", "block", 0, hi[m.name]))
		}
		plots = append(plots, row)
	}
	w := vg.Length(len(plots[0])) * 12 * vg.Centimeter
	h := vg.Length(len(plots)) * 4.5 * vg.Centimeter
	return saveTiles(path, plots, w, h)
}
