package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/vitbert/vitbert/pretrain"
	"github.com/vitbert/vitbert/train"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// ReadConflicts reads a run's conflicts.jsonl (pretrain --diagnostics K).
func ReadConflicts(runDir string) ([]train.ConflictReport, error) {
	return readJSONL[train.ConflictReport](filepath.Join(runDir, train.ConflictsFile))
}

// readJSONL decodes every line of a JSON-lines file (lines up to 16 MiB).
func readJSONL[T any](path string) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	line := 0
	for sc.Scan() {
		line++
		var r T
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", path, line, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// encoderPanel names the whole-encoder panel of the conflict figure.
const encoderPanel = "whole encoder"

// conflictCosines returns, per block (and encoderPanel), the cosine between
// the text and image gradients at each measured step of each run, in the
// order of runs; steps without a cosine (a zero gradient) are left out.
// Blocks are ordered by name with numbers compared as numbers (layer_2
// before layer_10), the whole encoder first.
func conflictCosines(runs []NamedRun) (blocks []string, series map[string][]Series, err error) {
	series = map[string][]Series{}
	for _, r := range runs {
		reps, err := ReadConflicts(r.Dir)
		if err != nil {
			return nil, nil, fmt.Errorf("run %q: %w", r.Name, err)
		}
		xy := map[string]plotter.XYs{}
		add := func(block string, s train.ConflictStats, step int) {
			if s.Cosine != nil {
				xy[block] = append(xy[block], plotter.XY{X: float64(step), Y: *s.Cosine})
			}
		}
		for _, rep := range reps {
			add(encoderPanel, rep.Encoder, rep.Step)
			for b, s := range rep.Blocks {
				add(b, s, rep.Step)
			}
		}
		for b := range xy {
			if _, seen := series[b]; !seen {
				blocks = append(blocks, b)
			}
		}
		for _, b := range blocks {
			series[b] = append(series[b], Series{Name: r.Name, XY: xy[b]})
		}
	}
	// Runs seen before a block appeared get an empty series, so that series[b][i] is run i.
	for _, b := range blocks {
		for len(series[b]) < len(runs) {
			series[b] = append([]Series{{}}, series[b]...)
		}
	}
	slices.SortFunc(blocks, compareBlocks)
	return blocks, series, nil
}

var trailingNumber = regexp.MustCompile(`^(.*?)(\d+)$`)

// compareBlocks orders encoderPanel first, then by name, a trailing number
// compared as a number.
func compareBlocks(a, b string) int {
	switch {
	case a == b:
		return 0
	case a == encoderPanel:
		return -1
	case b == encoderPanel:
		return 1
	}
	ma, mb := trailingNumber.FindStringSubmatch(a), trailingNumber.FindStringSubmatch(b)
	if ma != nil && mb != nil && ma[1] == mb[1] {
		na, _ := strconv.Atoi(ma[2])
		nb, _ := strconv.Atoi(mb[2])
		return na - nb
	}
	if a < b {
		return -1
	}
	return 1
}

// ConflictFigure draws the cosine between ∇L_txt and ∇L_img over training,
// one panel per encoder block (and one for the whole shared encoder), one
// line per run (variant), from each run's conflicts.jsonl.
func ConflictFigure(path string, runs []NamedRun) error {
	if len(runs) == 0 {
		return fmt.Errorf("conflict figure %s: no runs", path)
	}
	blocks, series, err := conflictCosines(runs)
	if err != nil {
		return err
	}
	return drawConflicts(path, blocks, series)
}

// drawConflicts draws ConflictFigure from conflictCosines' blocks and series.
func drawConflicts(path string, blocks []string, series map[string][]Series) error {
	if len(blocks) == 0 {
		return fmt.Errorf("conflict figure %s: the runs measured no gradient cosine", path)
	}
	cols := min(3, len(blocks))
	rows := (len(blocks) + cols - 1) / cols
	plots := make([][]*plot.Plot, rows)
	for r := range plots {
		plots[r] = make([]*plot.Plot, cols)
	}
	for k, b := range blocks {
		p := plot.New()
		p.Title.Text = filepath.Base(b)
		p.Title.TextStyle.Font.Size = vg.Points(9)
		p.X.Label.Text, p.Y.Label.Text = "step", "cosine of text and image gradients"
		p.X.Tick.Label.Font.Size, p.Y.Tick.Label.Font.Size = vg.Points(7), vg.Points(7)
		p.Add(plotter.NewGrid())
		for i, s := range series[b] {
			if len(s.XY) == 0 {
				continue
			}
			l, err := plotter.NewLine(s.XY)
			if err != nil {
				return fmt.Errorf("%s: %s, run %q: %w", path, b, s.Name, err)
			}
			l.Color = plotutil.Color(i)
			l.Dashes = plotutil.Dashes(i / 7)
			l.Width = vg.Points(1.2)
			p.Add(l)
			if k == 0 {
				p.Legend.Add(s.Name, l)
			}
		}
		p.Legend.Top = true
		plots[k/cols][k%cols] = p
	}
	return saveTiles(path, plots, vg.Length(cols)*9*vg.Centimeter, vg.Length(rows)*7*vg.Centimeter)
}

// conflictSection draws the conflict figure of the joint runs (main and
// ablation rows, first pre-training seed) that logged gradient diagnostics
// and summarises the whole-encoder cosine of each; "" when none did.
func (r *Runner) conflictSection(variants []Variant, figDir string) (string, error) {
	var runs []NamedRun
	for _, v := range variants {
		if v.Mode != pretrain.ModeJoint {
			continue
		}
		dir := r.pretrainDir(v)
		if _, err := os.Stat(filepath.Join(dir, train.ConflictsFile)); err == nil {
			runs = append(runs, NamedRun{Name: v.Name, Dir: dir})
		}
	}
	if len(runs) == 0 {
		return "", nil
	}
	blocks, series, err := conflictCosines(runs)
	if err != nil {
		return "", err
	}
	if err := drawConflicts(filepath.Join(figDir, "conflicts.png"), blocks, series); err != nil {
		return "", err
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "Cosine between the text and the image gradient of the shared encoder (before they are combined), every %d steps, per block and for the whole encoder; below zero the two tasks pull the shared weights apart:\n\n![gradient conflict](figures/conflicts.png)\n\n", r.Plan.Pretrain.Diagnostics)
	sb.WriteString("| run | measurements | mean cosine, whole encoder | share below zero |\n|---|---:|---:|---:|\n")
	for i, run := range runs {
		xy := series[encoderPanel][i].XY
		if len(xy) == 0 {
			continue
		}
		ys, neg := make([]float64, len(xy)), 0
		for k, p := range xy {
			ys[k] = p.Y
			if p.Y < 0 {
				neg++
			}
		}
		mean, _ := stat(ys)
		fmt.Fprintf(&sb, "| %s | %d | %+.3f | %.0f%% |\n", run.Name, len(xy), mean, 100*float64(neg)/float64(len(xy)))
	}
	sb.WriteString("\n")
	return sb.String(), nil
}
