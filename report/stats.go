package report

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"gonum.org/v1/gonum/stat/distuv"
)

// Interval is a mean with its two-sided 95% confidence interval (Student's t
// over N values; Lo = Hi = Mean when N < 2, where no interval exists).
type Interval struct {
	Mean, Lo, Hi float64
	N            int
}

// MeanCI is the mean of xs with its 95% t-interval.
func MeanCI(xs []float64) Interval {
	n := len(xs)
	if n == 0 {
		return Interval{Mean: math.NaN(), Lo: math.NaN(), Hi: math.NaN()}
	}
	m, s := stat(xs)
	if n < 2 {
		return Interval{Mean: m, Lo: math.NaN(), Hi: math.NaN(), N: n}
	}
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(n - 1)}.Quantile(0.975)
	h := t * s / math.Sqrt(float64(n))
	return Interval{Mean: m, Lo: m - h, Hi: m + h, N: n}
}

// String renders the interval in points (×100), as the tables do.
func (iv Interval) String() string {
	if iv.N < 2 {
		return fmt.Sprintf("%+.2f (n=%d, no interval)", 100*iv.Mean, iv.N)
	}
	return fmt.Sprintf("%+.2f [%+.2f, %+.2f] (n=%d)", 100*iv.Mean, 100*iv.Lo, 100*iv.Hi, iv.N)
}

// pairKey pairs two cells of the same task and protocol: the same
// pre-training seed and the same fine-tuning seed (which fixes the head's
// initialisation and the data order).
type pairKey struct {
	pretrainSeed, seed int
}

// values collects a variant's main metric on a task under a protocol, keyed
// by seeds.
func values(cells []Cell, variant, task, protocol string) map[pairKey]float64 {
	out := map[pairKey]float64{}
	for _, c := range cells {
		if c.Variant == variant && c.Task == task && c.Protocol == protocol {
			out[pairKey{c.PretrainSeed, c.Seed}] = c.Metrics[c.Main]
		}
	}
	return out
}

// PairedDiff is the mean difference a − b of the main metric over the runs
// the two variants share (same pre-training seed and fine-tuning seed), with
// its 95% t-interval. A variant without pre-training ("from scratch") has one
// run per fine-tuning seed, which pairs with every pre-training seed of the
// other side. Pairs that share a pre-training run are not independent, so the
// interval is narrower than a hierarchical one would be; the report says how
// many pre-training seeds stand behind each row.
func PairedDiff(cells []Cell, a, b, task, protocol string) Interval {
	va, vb := values(cells, a, task, protocol), values(cells, b, task, protocol)
	scratchA, scratchB := onlySeeds(va), onlySeeds(vb)
	var keys []pairKey
	for k := range va {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].pretrainSeed != keys[j].pretrainSeed {
			return keys[i].pretrainSeed < keys[j].pretrainSeed
		}
		return keys[i].seed < keys[j].seed
	})
	var ds []float64
	for _, k := range keys {
		switch {
		case scratchB && !scratchA:
			if y, ok := vb[pairKey{0, k.seed}]; ok {
				ds = append(ds, va[k]-y)
			}
		case scratchA && !scratchB:
			for kb, y := range vb {
				if kb.seed == k.seed {
					ds = append(ds, va[k]-y)
				}
			}
		default:
			if y, ok := vb[k]; ok {
				ds = append(ds, va[k]-y)
			}
		}
	}
	return MeanCI(ds)
}

// onlySeeds reports whether every run of a variant has pre-training seed 0,
// i.e. it has no pre-training to vary.
func onlySeeds(v map[pairKey]float64) bool {
	for k := range v {
		if k.pretrainSeed != 0 {
			return false
		}
	}
	return len(v) > 0
}

// Verdict words.
const (
	Supported    = "supported"
	Contradicted = "contradicted"
	Inconclusive = "inconclusive at this scale"
	NotTested    = "not tested"
)

// Comparison is one paired difference that bears on a claim; the claim
// predicts it is positive.
type Comparison struct {
	Task, A, B string
	D          Interval
}

// Verdict is a claim of the paper judged on the runs.
type Verdict struct {
	ID, Claim string
	Evidence  []Comparison
	Word      string
}

// Claims are the five claims of the paper the reproduction tests, each as
// the paired differences it predicts to be positive on every task.
func Claims(tasks []TaskRef) []Verdict {
	ref := func(t TaskRef) string {
		if t.Modality == "image" {
			return "ViT (image only)"
		}
		return "BERT (text only)"
	}
	each := func(f func(t TaskRef) [][2]string) []Comparison {
		var cs []Comparison
		for _, t := range tasks {
			for _, ab := range f(t) {
				cs = append(cs, Comparison{Task: t.Label, A: ab[0], B: ab[1]})
			}
		}
		return cs
	}
	return []Verdict{
		{ID: "C1", Claim: "joint pre-training beats training from scratch on both modalities",
			Evidence: each(func(TaskRef) [][2]string { return [][2]string{{"joint", "from scratch"}} })},
		{ID: "C2", Claim: "joint pre-training falls short of the separately trained models",
			Evidence: each(func(t TaskRef) [][2]string { return [][2]string{{ref(t), "joint"}} })},
		{ID: "C3", Claim: "knowledge distillation narrows that gap",
			Evidence: each(func(TaskRef) [][2]string { return [][2]string{{"joint + KD", "joint"}} })},
		{ID: "C4", Claim: "gradient masking narrows that gap",
			Evidence: each(func(TaskRef) [][2]string { return [][2]string{{"joint + GM", "joint"}} })},
		{ID: "C5", Claim: "KD and gradient masking together narrow it most",
			Evidence: each(func(TaskRef) [][2]string {
				return [][2]string{{"joint + KD + GM", "joint + KD"}, {"joint + KD + GM", "joint + GM"}}
			})},
	}
}

// Judge fills each claim's evidence from the cells of one protocol and gives
// its verdict: supported when every interval lies above zero, contradicted
// when any lies below zero, inconclusive otherwise (or when a comparison has
// fewer than two pairs, so no interval exists).
func Judge(cells []Cell, tasks []TaskRef, protocol string) []Verdict {
	vs := Claims(tasks)
	for i := range vs {
		v := &vs[i]
		all, against := true, false
		tested := false
		for j := range v.Evidence {
			c := &v.Evidence[j]
			c.D = PairedDiff(cells, c.A, c.B, c.Task, protocol)
			if c.D.N == 0 {
				all = false
				continue
			}
			tested = true
			if !(c.D.N >= 2 && c.D.Lo > 0) {
				all = false
			}
			if c.D.N >= 2 && c.D.Hi < 0 {
				against = true
			}
		}
		switch {
		case !tested:
			v.Word = NotTested
		case against:
			v.Word = Contradicted
		case all:
			v.Word = Supported
		default:
			v.Word = Inconclusive
		}
	}
	return vs
}

// VerdictTable renders verdicts as markdown: one row per claim, the paired
// differences (points, 95% interval) behind it.
func VerdictTable(vs []Verdict) string {
	var sb strings.Builder
	sb.WriteString("| claim | verdict | paired differences (points, 95% interval) |\n|---|---|---|\n")
	for _, v := range vs {
		var ev []string
		for _, c := range v.Evidence {
			if c.D.N == 0 {
				continue
			}
			ev = append(ev, fmt.Sprintf("%s: %s − %s = %s", c.Task, c.A, c.B, c.D))
		}
		fmt.Fprintf(&sb, "| **%s** %s | **%s** | %s |\n", v.ID, v.Claim, v.Word, strings.Join(ev, "<br>"))
	}
	return sb.String()
}
