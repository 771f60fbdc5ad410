package train

import (
	"math"
	"slices"
	"testing"
)

func TestMaskScheduleSteps(t *testing.T) {
	tests := []struct {
		cfg     MaskConfig
		steps   []int
		targets []float64
	}{
		{MaskConfig{FinalSparsity: 0.5, Increment: 0.1, StartStep: 10, EndStep: 60},
			[]int{20, 30, 40, 50, 60}, []float64{0.1, 0.2, 0.3, 0.4, 0.5}},
		{MaskConfig{FinalSparsity: 0.5, Increment: 0.2, StartStep: 0, EndStep: 10},
			[]int{3, 7, 10}, []float64{0.2, 0.4, 0.5}},
		{MaskConfig{FinalSparsity: 0.3, Increment: 0.1, StartStep: 0, EndStep: 3},
			[]int{1, 2, 3}, []float64{0.1, 0.2, 0.3}},
		{MaskConfig{FinalSparsity: 0.7, Increment: 0.7, StartStep: 5, EndStep: 100},
			[]int{100}, []float64{0.7}},
	}
	for _, tc := range tests {
		tc.cfg.Enabled = true
		if err := tc.cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := tc.cfg.UpdateSteps(); !slices.Equal(got, tc.steps) {
			t.Errorf("%+v: steps %v, want %v", tc.cfg, got, tc.steps)
		}
		for k, want := range tc.targets {
			if got := tc.cfg.TargetSparsity(k + 1); math.Abs(got-want) > 1e-12 {
				t.Errorf("%+v: target %d = %g, want %g", tc.cfg, k+1, got, want)
			}
		}
		last := tc.steps[len(tc.steps)-1]
		if got := tc.cfg.UpdatesDoneAt(last); got != len(tc.steps) {
			t.Errorf("updates done at %d: %d, want %d", last, got, len(tc.steps))
		}
		if got := tc.cfg.UpdatesDoneAt(tc.steps[0] - 1); got != 0 {
			t.Errorf("updates done before the first: %d", got)
		}
	}
}

func TestMaskConfigValidate(t *testing.T) {
	bad := []MaskConfig{
		{Enabled: true, FinalSparsity: 0, Increment: 0.1, EndStep: 10},
		{Enabled: true, FinalSparsity: 1.5, Increment: 0.1, EndStep: 10},
		{Enabled: true, FinalSparsity: 0.5, Increment: 0.6, EndStep: 10},
		{Enabled: true, FinalSparsity: 0.5, Increment: 0.1, StartStep: 0, EndStep: 4}, // 5 updates need 5 steps
		{Enabled: true, FinalSparsity: 0.5, Increment: 0.1, EndStep: 10, Ranking: "layer"},
	}
	for i, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("case %d: no error for %+v", i, c)
		}
	}
	if err := (&MaskConfig{}).Validate(); err != nil {
		t.Errorf("disabled config: %v", err)
	}
}

// selectZeros picks the smallest accumulated magnitudes among the entries
// still at 1, breaking ties by tensor then flat index, never un-masking.
func TestSelectZerosTiesAndNoUnmasking(t *testing.T) {
	tests := []struct {
		name   string
		masks  [][]float32
		accs   [][]float32
		target float64
		want   [][]float32
	}{
		{"ties broken by position",
			[][]float32{{1, 1, 1, 1}, {1, 0, 1, 1}},
			[][]float32{{0.5, 0.1, 0.1, 0.9}, {0.1, 0, 0.3, 0.2}},
			0.5, // 4 zeros of 8, one already
			[][]float32{{1, 0, 0, 1}, {0, 0, 1, 1}}},
		{"threshold inside the values",
			[][]float32{{1, 1, 1, 1}, {1, 0, 1, 1}},
			[][]float32{{0.5, 0.1, 0.1, 0.9}, {0.1, 0, 0.3, 0.2}},
			0.625, // 5 zeros
			[][]float32{{1, 0, 0, 1}, {0, 0, 1, 0}}},
		{"already sparse enough: nothing changes, nothing comes back",
			[][]float32{{0, 0, 1, 1}},
			[][]float32{{9, 9, 0, 0}},
			0.5,
			[][]float32{{0, 0, 1, 1}}},
		{"NaN ranks last",
			[][]float32{{1, 1, 1}},
			[][]float32{{float32(math.NaN()), 2, 3}},
			0.67, // round(2.01) = 2
			[][]float32{{1, 0, 0}}},
	}
	for _, tc := range tests {
		members := make([]int, len(tc.masks))
		for i := range members {
			members[i] = i
		}
		selectZeros(members, tc.masks, tc.accs, tc.target)
		for i := range tc.want {
			if !slices.Equal(tc.masks[i], tc.want[i]) {
				t.Errorf("%s: tensor %d mask %v, want %v", tc.name, i, tc.masks[i], tc.want[i])
			}
		}
	}
}

func TestDefaultBlockKey(t *testing.T) {
	tests := map[string]string{
		"/encoder/layer_3/attention/query/dense/weights": "/encoder/layer_3",
		"/encoder/layer_0/dense/biases":                  "/encoder/layer_0",
		"/encoder/block7/mlp/w":                          "/encoder/block7",
		"/encoder/layers/11/mlp/w":                       "/encoder/layers/11",
		"/encoder/final_norm/gain":                       "/encoder/final_norm",
		"/encoder/w":                                     "/encoder",
	}
	for path, want := range tests {
		if got := DefaultBlockKey(path); got != want {
			t.Errorf("DefaultBlockKey(%q) = %q, want %q", path, got, want)
		}
	}
}
