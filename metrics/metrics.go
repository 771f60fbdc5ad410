// Package metrics holds the evaluation metrics used for the GLUE-style
// downstream tasks and the image/text classification probes.
package metrics

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Metric names as used by the GLUE task table (data/texts.Task.Metrics).
const (
	MetricAccuracy = "accuracy"
	MetricF1       = "f1"
	MetricMCC      = "mcc"
	MetricPearson  = "pearson"
	MetricSpearman = "spearman"
	MetricMacroF1  = "macro_f1"
)

// ErrEmpty is returned when a metric is asked of zero examples.
var ErrEmpty = errors.New("metrics: no examples")

func checkLen(np, ng int) error {
	if np != ng {
		return fmt.Errorf("metrics: %d predictions but %d gold labels", np, ng)
	}
	if np == 0 {
		return ErrEmpty
	}
	return nil
}

// Accuracy is the fraction of predictions equal to the gold label.
func Accuracy(pred, gold []int) (float64, error) {
	if err := checkLen(len(pred), len(gold)); err != nil {
		return 0, err
	}
	n := 0
	for i := range pred {
		if pred[i] == gold[i] {
			n++
		}
	}
	return float64(n) / float64(len(pred)), nil
}

// confusion counts a binary confusion matrix with 1 as the positive class;
// any label other than 1 counts as negative.
func confusion(pred, gold []int) (tp, fp, fn, tn float64) {
	for i := range pred {
		p, g := pred[i] == 1, gold[i] == 1
		switch {
		case p && g:
			tp++
		case p && !g:
			fp++
		case !p && g:
			fn++
		default:
			tn++
		}
	}
	return
}

// F1 is the binary F1 score of the positive class 1:
// 2·TP / (2·TP + FP + FN). It is 0 when there are neither positive
// predictions nor positive labels (scikit-learn's convention).
func F1(pred, gold []int) (float64, error) {
	if err := checkLen(len(pred), len(gold)); err != nil {
		return 0, err
	}
	tp, fp, fn, _ := confusion(pred, gold)
	if d := 2*tp + fp + fn; d > 0 {
		return 2 * tp / d, nil
	}
	return 0, nil
}

// MacroF1 is the unweighted mean over classes of the one-vs-rest F1
// 2·TP / (2·TP + FP + FN), the classes being those that occur among the
// gold labels or the predictions (scikit-learn's f1_score(average="macro")).
func MacroF1(pred, gold []int) (float64, error) {
	if err := checkLen(len(pred), len(gold)); err != nil {
		return 0, err
	}
	type counts struct{ tp, fp, fn float64 }
	per := map[int]*counts{}
	get := func(c int) *counts {
		if per[c] == nil {
			per[c] = &counts{}
		}
		return per[c]
	}
	for i := range pred {
		if pred[i] == gold[i] {
			get(pred[i]).tp++
		} else {
			get(pred[i]).fp++
			get(gold[i]).fn++
		}
	}
	sum := 0.0
	for _, c := range per {
		sum += 2 * c.tp / (2*c.tp + c.fp + c.fn)
	}
	return sum / float64(len(per)), nil
}

// MCC is the Matthews correlation coefficient of a binary task (positive
// class 1): (TP·TN − FP·FN) / √((TP+FP)(TP+FN)(TN+FP)(TN+FN)).
// It is 0 when any factor of the denominator is 0 (scikit-learn's convention),
// e.g. when the model predicts a single class.
func MCC(pred, gold []int) (float64, error) {
	if err := checkLen(len(pred), len(gold)); err != nil {
		return 0, err
	}
	tp, fp, fn, tn := confusion(pred, gold)
	d := (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
	if d == 0 {
		return 0, nil
	}
	return (tp*tn - fp*fn) / math.Sqrt(d), nil
}

// Pearson is the Pearson correlation coefficient of x and y. It is NaN when
// either has zero variance (as scipy.stats.pearsonr).
func Pearson(x, y []float64) (float64, error) {
	if err := checkLen(len(x), len(y)); err != nil {
		return 0, err
	}
	n := float64(len(x))
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= n
	my /= n
	var sxy, sxx, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return math.NaN(), nil
	}
	r := sxy / math.Sqrt(sxx*syy)
	// Rounding can push |r| a hair past 1.
	return math.Max(-1, math.Min(1, r)), nil
}

// Spearman is Spearman's rank correlation: the Pearson correlation of the
// ranks of x and y, where tied values get the average of their ranks.
func Spearman(x, y []float64) (float64, error) {
	if err := checkLen(len(x), len(y)); err != nil {
		return 0, err
	}
	return Pearson(Ranks(x), Ranks(y))
}

// Ranks returns the 1-based ranks of v; tied values share the average of
// the ranks they span (so [10, 20, 20, 30] → [1, 2.5, 2.5, 4]).
func Ranks(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return v[idx[a]] < v[idx[b]] })
	r := make([]float64, len(v))
	for i := 0; i < len(idx); {
		j := i + 1
		for j < len(idx) && v[idx[j]] == v[idx[i]] {
			j++
		}
		// Positions i..j-1 (0-based) hold ranks i+1..j; their mean is (i+1+j)/2.
		avg := float64(i+1+j) / 2
		for k := i; k < j; k++ {
			r[idx[k]] = avg
		}
		i = j
	}
	return r
}

// Classification computes a named classification metric (accuracy, f1, mcc).
func Classification(name string, pred, gold []int) (float64, error) {
	switch name {
	case MetricAccuracy:
		return Accuracy(pred, gold)
	case MetricF1:
		return F1(pred, gold)
	case MetricMCC:
		return MCC(pred, gold)
	case MetricMacroF1:
		return MacroF1(pred, gold)
	}
	return 0, fmt.Errorf("metrics: %q is not a classification metric", name)
}

// Regression computes a named regression metric (pearson, spearman).
func Regression(name string, pred, gold []float64) (float64, error) {
	switch name {
	case MetricPearson:
		return Pearson(pred, gold)
	case MetricSpearman:
		return Spearman(pred, gold)
	}
	return 0, fmt.Errorf("metrics: %q is not a regression metric", name)
}
