package metrics

import (
	"errors"
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// pred/gold shared by the classification tests:
//
//	i:    0 1 2 3 4
//	pred: 1 0 1 1 0
//	gold: 1 0 0 1 1
//
// TP = {0,3} = 2, TN = {1} = 1, FP = {2} = 1, FN = {4} = 1.
var (
	cPred = []int{1, 0, 1, 1, 0}
	cGold = []int{1, 0, 0, 1, 1}
)

func TestClassificationMetricsMatchHandValues(t *testing.T) {
	tests := []struct {
		name       string
		pred, gold []int
		want       float64
	}{
		// 3 of 5 equal (i = 0, 1, 3).
		{MetricAccuracy, cPred, cGold, 3.0 / 5},
		// 2·2 / (2·2 + 1 + 1) = 4/6.
		{MetricF1, cPred, cGold, 4.0 / 6},
		// (2·1 − 1·1) / √((2+1)(2+1)(1+1)(1+1)) = 1/√36 = 1/6.
		{MetricMCC, cPred, cGold, 1.0 / 6},
		// Perfect agreement: MCC = (TP·TN)/√(TP·TP·TN·TN) = 1.
		{MetricMCC, []int{1, 0, 1, 0}, []int{1, 0, 1, 0}, 1},
		// Every prediction wrong: TP = TN = 0, FP = FN = 2 → (0 − 4)/√(2·2·2·2) = −1.
		{MetricMCC, []int{0, 1, 0, 1}, []int{1, 0, 1, 0}, -1},
		// Constant prediction: TP+FP = 0 → 0 by convention.
		{MetricMCC, []int{0, 0, 0, 0}, []int{1, 0, 1, 0}, 0},
		// No positives anywhere: F1 denominator is 0 → 0.
		{MetricF1, []int{0, 0}, []int{0, 0}, 0},
		// Labels other than 1 are negative: pred 2 vs gold 0 is a true negative,
		// TP = 1 (i=0), FN = 1 (i=2) → F1 = 2/(2+0+1) = 2/3.
		{MetricF1, []int{1, 2, 0}, []int{1, 0, 1}, 2.0 / 3},
	}
	for _, tc := range tests {
		checkMetric(t, Classification, tc.name, tc.pred, tc.gold, tc.want)
	}
}

func TestRegressionMetricsMatchHandValues(t *testing.T) {
	tests := []struct {
		name string
		x, y []float64
		want float64
	}{
		// mean x = 2.5, mean y = 5; dx = (−1.5, −0.5, 0.5, 1.5), dy = (−3, −1, 0, 4);
		// Σdx·dy = 4.5+0.5+0+6 = 11, Σdx² = 5, Σdy² = 26 → 11/√130.
		{MetricPearson, []float64{1, 2, 3, 4}, []float64{2, 4, 5, 9}, 11 / math.Sqrt(130)},
		// Exactly linear, negative slope → −1.
		{MetricPearson, []float64{1, 2, 3}, []float64{6, 4, 2}, -1},
		// Monotone but not linear → Spearman 1.
		{MetricSpearman, []float64{1, 2, 3}, []float64{1, 8, 27}, 1},
		// Ties: ranks x = (1, 2.5, 2.5, 4), y = (1, 3, 2, 4); both mean 2.5;
		// dx = (−1.5, 0, 0, 1.5), dy = (−1.5, 0.5, −0.5, 1.5);
		// Σdx·dy = 4.5, Σdx² = 4.5, Σdy² = 5 → 4.5/√22.5 = 3/√10.
		{MetricSpearman, []float64{1, 2, 2, 3}, []float64{1, 3, 2, 4}, 3 / math.Sqrt(10)},
	}
	for _, tc := range tests {
		checkMetric(t, Regression, tc.name, tc.x, tc.y, tc.want)
	}
}

// checkMetric checks that metric name of (a, b) is want.
func checkMetric[T int | float64](t testing.TB, metric func(name string, a, b []T) (float64, error), name string, a, b []T, want float64) {
	t.Helper()
	got, err := metric(name, a, b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !near(got, want) {
		t.Errorf("%s(%v, %v) = %v, want %v", name, a, b, got, want)
	}
}

func TestRanksAverageTies(t *testing.T) {
	// Sorted: 10 (rank 1), 20, 20 (ranks 2,3 → 2.5), 30 (rank 4), in input order.
	got := Ranks([]float64{30, 20, 10, 20})
	want := []float64{4, 2.5, 1, 2.5}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Ranks = %v, want %v", got, want)
		}
	}
	// All tied: every rank is (1+2+3)/3 = 2.
	for _, r := range Ranks([]float64{7, 7, 7}) {
		if r != 2 {
			t.Fatalf("all-tied rank %v, want 2", r)
		}
	}
}

func TestMetricsRejectBadInput(t *testing.T) {
	if _, err := Accuracy([]int{1}, []int{1, 0}); err == nil {
		t.Error("length mismatch accepted")
	}
	if _, err := F1(nil, nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty input: err = %v, want ErrEmpty", err)
	}
	if _, err := Classification("bleu", cPred, cGold); err == nil {
		t.Error("unknown metric accepted")
	}
	if _, err := Regression(MetricAccuracy, []float64{1}, []float64{1}); err == nil {
		t.Error("classification metric accepted as regression")
	}
	// Zero variance → NaN, as scipy.
	if r, err := Pearson([]float64{1, 1, 1}, []float64{1, 2, 3}); err != nil || !math.IsNaN(r) {
		t.Errorf("constant x: r = %v, err = %v; want NaN", r, err)
	}
}

func TestMacroF1MatchesHandValues(t *testing.T) {
	for _, tc := range []struct {
		pred, gold []int
		want       float64
	}{
		// Per class: 0 → 2·1/(2+1+1) = 0.5; 1 → 2·2/(4+1) = 0.8; 2 → 2·1/(2+0+1) = 2/3.
		{[]int{0, 1, 1, 1, 2, 0}, []int{0, 0, 1, 1, 2, 2}, (0.5 + 0.8 + 2.0/3) / 3},
		// A class only predicted counts, with F1 0 (scikit-learn's label set).
		{[]int{0, 1}, []int{0, 0}, (2.0 / 3) / 2},
		{[]int{3, 3}, []int{3, 3}, 1},
	} {
		got, err := Classification(MetricMacroF1, tc.pred, tc.gold)
		if err != nil || math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("MacroF1(%v, %v) = %v, %v; want %v", tc.pred, tc.gold, got, err, tc.want)
		}
	}
	if _, err := MacroF1(nil, nil); err == nil {
		t.Errorf("MacroF1 of no examples: no error")
	}
}
