package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/vitbert/vitbert/atomicfs"
	"github.com/vitbert/vitbert/pretrain"
	"gonum.org/v1/plot/plotter"
)

// Command is the command line that made the report, written into it.
var Command = ""

func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				model = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores visible (%s/%s)", model, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
}

// WriteReport writes report.md and its figures into the output directory.
func (r *Runner) WriteReport(cells []Cell, variants []Variant) error {
	var main, distill, mask, combine []Variant
	for _, v := range variants {
		switch v.Ablation {
		case "distill":
			distill = append(distill, v)
		case "mask":
			mask = append(mask, v)
		case "combine":
			combine = append(combine, v)
		default:
			main = append(main, v)
		}
	}
	find := func(name string) Variant {
		for _, v := range variants {
			if v.Name == name {
				return v
			}
		}
		return Variant{}
	}
	var sb strings.Builder
	p := r.Plan
	fmt.Fprintf(&sb, "# ViT-BERT reproduction: %s\n\n", p.Name)
	if Command != "" {
		fmt.Fprintf(&sb, "Made by `%s` on %s, %s.\n\n", Command, machine(), time.Now().UTC().Format("2006-01-02"))
	}
	pc := p.Pretrain
	fmt.Fprintf(&sb, "Pre-training: preset `%s`, %d layers, D=%d, %d heads, MLP %d; %d steps per variant with %d texts (%d tokens) + %d images (%d×%d×%d, patch %d) per step; corpus `%s`, images `%s`. "+
		"Distillation α=%g, τ=%g; gradient masking β=%g, δ=%g, ranking %s. Fine-tuning: %d steps, batch %d, fresh 2-layer GELU head, fine-tuning seeds %v, pre-training seeds %s. "+
		"Every cell selects its model on a validation split (carved from the training split, or the task's own dev split) and scores the test split once, at the end; "+
		"a number is the task's main metric on that test split (×100), mean ± sample std over pre-training × fine-tuning seeds, and links to the folder of its runs (each with `result.json`, `eval.jsonl`, `metrics.jsonl`).\n\n",
		pc.Preset, pc.Model.Layers, pc.Model.Hidden, pc.Model.Heads, pc.Model.MLP, pc.Steps, pc.TextBatch, pc.Model.MaxTextLength,
		pc.ImageBatch, pc.Model.ImageSize, pc.Model.ImageSize, pc.Model.Channels, pc.Model.PatchSize, pc.Data.Corpus, pc.Data.Images,
		pc.DistillText.Alpha, pc.DistillText.Tau, pc.Mask.FinalSparsity, pc.Mask.Increment, pc.Mask.Ranking,
		p.FinetuneSteps, p.FinetuneBatch, p.Seeds, pretrainSeeds(p))
	for _, t := range p.Tasks {
		if t.Steps > 0 || t.Batch > 0 {
			steps, batch := p.taskBudget(t)
			fmt.Fprintf(&sb, "Fine-tuning on %s: %d steps, batch %d.\n\n", t.Label, steps, batch)
		}
	}
	for _, pr := range p.ProtocolList() {
		if pr.Steps > 0 || pr.Batch > 0 || pr.EvalEvery > 0 || pr.Modality != "" {
			fmt.Fprintf(&sb, "%s: %s.\n\n", upperFirst(pr.Label()), pr.budget())
		}
	}
	if ho := r.heldOutTable(main); ho != "" {
		fmt.Fprintf(&sb, "## Held-out pre-training metrics\n\n%s\n", ho)
	}
	protocols := p.ProtocolList()
	var metrics []string
	seen := map[string]bool{}
	for _, c := range cells {
		if !seen[c.Task] {
			seen[c.Task] = true
			metrics = append(metrics, fmt.Sprintf("%s: %s", c.Task, c.Main))
		}
	}
	for i, pr := range protocols {
		pcells := CellsOf(cells, pr.Name)
		ptasks := pr.Tasks(p.Tasks)
		fmt.Fprintf(&sb, "## %s\n\n%s\n", upperFirst(pr.Label()), r.Table(pcells, main, ptasks))
		if pr.Modality != "" {
			fmt.Fprintf(&sb, "This protocol scores the %s tasks only: its verdicts speak for that modality alone.\n\n", pr.Modality)
		}
		if i == 0 {
			fmt.Fprintf(&sb, "Metrics: %s. The BERT row is scored on text tasks only and the ViT row on image tasks only: they are the separately trained references. "+
				"Under the linear probe, the from-scratch row is a probe of the randomly initialised encoder.\n\n", strings.Join(metrics, "; "))
		}
		fmt.Fprintf(&sb, "### The paper's claims, %s\n\n%s\n", pr.Label(), VerdictTable(Judge(cells, ptasks, pr.Name)))
	}
	sb.WriteString("A verdict is *supported* when every paired difference it predicts positive has its 95% interval above zero, *contradicted* when any has it below zero, and *inconclusive at this scale* otherwise. " +
		"Differences pair runs with the same pre-training and fine-tuning seeds (the from-scratch baseline pairs by fine-tuning seed); runs that share a pre-training run are not independent, so with few pre-training seeds the intervals are optimistic.\n\n")
	first := CellsOf(cells, protocols[0].Name)
	sb.WriteString("### What the table says (" + protocols[0].Label() + ")\n\n")
	firstTasks := protocols[0].Tasks(p.Tasks)
	sb.WriteString(r.findings(first, firstTasks))
	all := cells
	cells = first
	if len(distill) > 0 {
		fmt.Fprintf(&sb, "\n## Distillation ratio and temperature\n\n%s\n", r.Table(cells, append([]Variant{find("joint + KD")}, distill...), firstTasks))
		sb.WriteString("`joint + KD` is α=0.5, τ=2; each ablation row changes one of the two.\n")
	}
	if len(mask) > 0 {
		fmt.Fprintf(&sb, "\n## Mask ratio β\n\n%s\n", r.Table(cells, append([]Variant{find("joint + GM")}, mask...), firstTasks))
		fmt.Fprintf(&sb, "`joint + GM` is β=%g with %s ranking; β is the share of shared-encoder parameters whose gradient is handed to the image task.\n", pc.Mask.FinalSparsity, pc.Mask.Ranking)
	}
	if len(combine) > 0 {
		rows := append([]Variant{find("joint"), find("joint + GM")}, combine...)
		sb.WriteString(r.combineSection(all, append(rows, find("joint + KD + GM")), combine, protocols))
	}
	sb.WriteString("\n## Figures\n\n")
	if len(p.PretrainSeeds) > 1 {
		fmt.Fprintf(&sb, "The curves are those of pre-training seed %d; the tables above take every seed.\n\n", p.PretrainSeeds[0])
	}
	figs, err := r.figures(variants)
	if err != nil {
		return err
	}
	sb.WriteString(figs)
	sb.WriteString("\n## Runs\n\n| variant | pre-training run |\n|---|---|\n")
	for _, v := range r.pretrainRuns(variants) {
		rel, _ := filepath.Rel(r.Out, r.pretrainDir(v))
		fmt.Fprintf(&sb, "| %s | [%s](%s/) ([metrics](%s/metrics.jsonl)) |\n", v.Name, rel, rel, rel)
	}
	return atomicfs.WriteBytes(filepath.Join(r.Out, "report.md"), []byte(sb.String()))
}

// unigramReference reads a text run's unigram statistics from its
// data.json; ok is false when the run has none.
func unigramReference(runDir string) (u pretrain.UnigramStats, ok bool) {
	b, err := os.ReadFile(filepath.Join(runDir, pretrain.DataFile))
	if err != nil {
		return u, false
	}
	var d pretrain.DataRecord
	if json.Unmarshal(b, &d) != nil || d.Text == nil {
		return u, false
	}
	return d.Text.Unigram, true
}

// heldOutFigure draws the held-out MLM loss of the text runs and the
// unigram reference line; ok is false when no run logged held-out metrics.
func heldOutFigure(path string, runs []NamedRun) (ok bool, err error) {
	var series []Series
	ref, last := 0.0, 0.0
	for _, r := range runs {
		m, err := ReadMetrics(r.Dir)
		if err != nil {
			return false, err
		}
		xy := m["heldout_mlm_loss"]
		if len(xy) == 0 {
			continue
		}
		series = append(series, Series{Name: r.Name, XY: xy})
		last = max(last, xy[len(xy)-1].X)
		if ref == 0 {
			if u, ok := unigramReference(r.Dir); ok {
				ref = u.HeldOutCrossEntropy
			}
		}
	}
	if len(series) == 0 {
		return false, nil
	}
	if ref > 0 {
		series = append(series, Series{Name: "unigram reference", XY: plotter.XYs{{X: 0, Y: ref}, {X: last, Y: ref}}, Dashed: true})
	}
	return true, LinePlot(path, "Held-out MLM loss", "step", "nats", series)
}

// pretrainSeeds names the pre-training seeds for the report.
func pretrainSeeds(p Plan) string {
	if len(p.PretrainSeeds) == 0 {
		return fmt.Sprintf("one (the preset's, %d)", p.Pretrain.Seed)
	}
	return fmt.Sprint(p.PretrainSeeds)
}

// CellsOf keeps the cells of one protocol.
func CellsOf(cells []Cell, protocol string) []Cell {
	var out []Cell
	for _, c := range cells {
		if c.Protocol == protocol || protocol == ProtocolFinetune && c.Protocol == "" {
			out = append(out, c)
		}
	}
	return out
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// heldOutTable gives every main pre-training run's last held-out metrics
// (mean over pre-training seeds) and the corpus's context-free reference:
// the held-out tokens' cross-entropy under the training unigram
// distribution, which an MLM must go below before it has learned anything
// from context.
func (r *Runner) heldOutTable(variants []Variant) string {
	keys := []string{"heldout_mlm_loss", "heldout_mlm_acc", "heldout_image_loss", "heldout_image_acc"}
	var sb strings.Builder
	var ref pretrain.UnigramStats
	rows := 0
	sb.WriteString("| pre-training run | held-out MLM loss (nats) | held-out MLM accuracy | held-out image loss | held-out image top-1 |\n|---|---:|---:|---:|---:|\n")
	for _, v := range variants {
		if v.Mode == "" {
			continue
		}
		vals := map[string][]float64{}
		for _, w := range r.seeded([]Variant{v}) {
			m, err := ReadMetrics(r.pretrainDir(w))
			if err != nil {
				continue
			}
			for _, k := range keys {
				if xy := m[k]; len(xy) > 0 {
					vals[k] = append(vals[k], xy[len(xy)-1].Y)
				}
			}
			if ref.Tokens == 0 {
				ref, _ = unigramReference(r.pretrainDir(w))
			}
		}
		fmt.Fprintf(&sb, "| %s |", v.Name)
		for i, k := range keys {
			if len(vals[k]) == 0 {
				sb.WriteString(" — |")
				continue
			}
			m, sd := stat(vals[k])
			scale, f := 1.0, "%.3f"
			if i%2 == 1 {
				scale, f = 100, "%.2f"
			}
			cell := fmt.Sprintf(f, scale*m)
			if len(vals[k]) > 1 {
				cell += fmt.Sprintf(" ± "+f, scale*sd)
			}
			sb.WriteString(" " + cell + " |")
		}
		sb.WriteString("\n")
		rows++
	}
	if rows == 0 {
		return ""
	}
	if ref.Tokens > 0 {
		fmt.Fprintf(&sb, "\nContext-free reference: the held-out tokens' cross-entropy under the training tokens' unigram distribution is %.3f nats (unigram entropy of the training tokens %.3f nats, %d tokens): an MLM below it has learned something from context. Accuracies ×100.\n",
			ref.HeldOutCrossEntropy, ref.Entropy, ref.Tokens)
	}
	return sb.String()
}

// findings states, per task, how the pre-trained variants compare with
// training from scratch and with the separately trained reference.
func (r *Runner) findings(cells []Cell, tasks []TaskRef) string {
	m := Means(cells)
	var sb strings.Builder
	for _, t := range tasks {
		ref := "BERT (text only)"
		if t.Modality == "image" {
			ref = "ViT (image only)"
		}
		scratch, okS := m["from scratch"][t.Label]
		refv, okR := m[ref][t.Label]
		var parts []string
		if okS && okR {
			parts = append(parts, fmt.Sprintf("%s reaches %.2f against %.2f from scratch (%+.2f)", ref, 100*refv, 100*scratch, 100*(refv-scratch)))
		}
		for _, v := range []string{"joint", "joint + KD", "joint + GM", "joint + KD + GM"} {
			x, ok := m[v][t.Label]
			if !ok {
				continue
			}
			s := fmt.Sprintf("%s %.2f", v, 100*x)
			if okR {
				d := 100 * (x - refv)
				if d < 0 {
					s += fmt.Sprintf(" (%.2f below %s)", -d, strings.Split(ref, " ")[0])
				} else {
					s += fmt.Sprintf(" (%.2f above %s)", d, strings.Split(ref, " ")[0])
				}
			}
			if okS {
				if x > scratch {
					s += ", beats scratch"
				} else {
					s += ", does NOT beat scratch"
				}
			}
			parts = append(parts, s)
		}
		fmt.Fprintf(&sb, "- **%s**: %s.\n", t.Label, strings.Join(parts, "; "))
	}
	return sb.String()
}

// figures draws the PNGs and returns their markdown.
func (r *Runner) figures(variants []Variant) (string, error) {
	var sb strings.Builder
	figDir := filepath.Join(r.Out, "figures")
	if err := os.MkdirAll(figDir, 0o755); err != nil {
		return "", err
	}
	var textRuns, imageRuns []NamedRun
	for _, v := range variants {
		if v.Mode == "" || v.Ablation != "" {
			continue
		}
		nr := NamedRun{Name: v.Name, Dir: r.pretrainDir(v)}
		if v.Mode != "image" {
			textRuns = append(textRuns, nr)
		}
		if v.Mode != "text" {
			imageRuns = append(imageRuns, nr)
		}
	}
	if err := LossFigure(filepath.Join(figDir, "loss_text.png"), "loss_text", "Pre-training MLM loss (with KD: the distillation loss)", textRuns); err != nil {
		return "", err
	}
	if err := LossFigure(filepath.Join(figDir, "loss_image.png"), "loss_image", "Pre-training image loss (with KD: the distillation loss)", imageRuns); err != nil {
		return "", err
	}
	if ok, err := heldOutFigure(filepath.Join(figDir, "heldout_mlm.png"), textRuns); err != nil {
		return "", err
	} else if ok {
		sb.WriteString("Held-out MLM loss during pre-training, with the context-free reference (the held-out tokens' cross-entropy under the training unigram distribution) as a dashed line:\n\n![held-out MLM loss](figures/heldout_mlm.png)\n\n")
	}
	sb.WriteString("Loss curves of pre-training (moving average; a KD run's loss includes its soft term, so its level is not comparable with plain cross-entropy):\n\n![text loss](figures/loss_text.png)\n![image loss](figures/loss_image.png)\n\n")
	if conflicts, err := r.conflictSection(variants, figDir); err != nil {
		return "", err
	} else {
		sb.WriteString(conflicts)
	}
	for _, v := range variants {
		if !v.Mask || (v.Name != "joint + GM" && v.Ranking == "") {
			continue
		}
		dir := r.pretrainDir(v)
		name := slug(v.Name)
		if err := SparsityFigure(filepath.Join(figDir, "sparsity_"+name+".png"), dir); err != nil {
			return "", err
		}
		fmt.Fprintf(&sb, "Mask sparsity of every encoder block at every mask update, %s:\n\n![sparsity](figures/sparsity_%s.png)\n\n", v.Name, name)
		if r.Plan.Probes < 2 {
			continue // the mask and activation snapshots come from the probes
		}
		if _, err := MaskFigure(filepath.Join(figDir, "masks_"+name+".png"), dir, r.Plan.Pretrain.Model.Layers, "mlp_in"); err != nil {
			return "", err
		}
		fmt.Fprintf(&sb, "Gradient mask of the first MLP layer (rows: neurons, columns: inputs) of the first, middle and last blocks at several updates, %s. White keeps the text gradient, black hands the weight to images:\n\n![masks](figures/masks_%s.png)\n\n", v.Name, name)
		if err := ActivationFigure(filepath.Join(figDir, "activations_"+name+".png"), dir); err != nil {
			return "", err
		}
		fmt.Fprintf(&sb, "Neuron activations (mean |GELU output| of every MLP neuron over a fixed batch) of every block at several training steps, for text and images, %s:\n\n![activations](figures/activations_%s.png)\n\n", v.Name, name)
	}
	return sb.String(), nil
}

// combineSection is the report's comparison of gradient masking with the
// other combine rules: under every protocol, the table of rows and the
// paired differences joint + GM − each of the combine rows.
func (r *Runner) combineSection(cells []Cell, rows, combine []Variant, protocols []Protocol) string {
	var sb strings.Builder
	sb.WriteString("\n## Other ways to combine the two gradients\n\n")
	sb.WriteString("PCGrad projects each task's gradient of the shared encoder off the other's when they conflict; CAGrad (c = " +
		fmt.Sprint(r.Plan.Pretrain.Combine.C) + ") moves the mean gradient within a ball that also decreases the worse task; `joint + GM` is the paper's gradient masking. " +
		"Under each table, the paired differences joint + GM − other, in points with their 95% intervals.\n")
	for _, pr := range protocols {
		pcells := CellsOf(cells, pr.Name)
		ptasks := pr.Tasks(r.Plan.Tasks)
		fmt.Fprintf(&sb, "\n### %s\n\n%s\n", pr.Label(), r.Table(pcells, rows, ptasks))
		for _, t := range ptasks {
			for _, other := range combine {
				if d := PairedDiff(pcells, "joint + GM", other.Name, t.Label, pr.Name); d.N > 0 {
					fmt.Fprintf(&sb, "- %s: joint + GM − %s = %s points\n", t.Label, other.Name, d)
				}
			}
		}
	}
	return sb.String()
}
