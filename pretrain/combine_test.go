package pretrain

import (
	"strings"
	"testing"

	"github.com/gomlx/compute"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/vitbert/vitbert/train"
)

// The combine rule in the pre-training configuration: mask turns gradient
// masking on (with its schedule), the other rules need joint mode and no
// mask, and the trainer gets the rule and the diagnostics interval.
func TestCombineConfig(t *testing.T) {
	c, err := Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	c.Combine.Rule = train.CombineMask
	c.Finish()
	if !c.Mask.Enabled || c.Mask.EndStep == 0 {
		t.Errorf("combine mask: mask %+v, want enabled with its schedule", c.Mask)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Combine.Rule = train.CombinePCGrad; c.Mode = ModeText }, "needs mode joint"},
		{func(c *Config) { c.Combine.Rule = train.CombineCAGrad; c.Mask.Enabled = true }, "cannot be used with gradient masking"},
		{func(c *Config) { c.Combine.Rule = "graddrop" }, "unknown combine rule"},
		{func(c *Config) { c.Diagnostics = 5; c.Mode = ModeImage }, "need mode joint"},
		{func(c *Config) { c.Diagnostics = -1 }, "diagnostics must be >= 0"},
	} {
		c, _ := Preset("tiny")
		tc.edit(&c)
		c.Finish()
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	c, _ = Preset("tiny")
	c.Combine = train.CombineConfig{Rule: train.CombineCAGrad, C: 0.3}
	c.Diagnostics = 7
	c.Finish()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(compute.MustNew(), mlmodel.NewStore(), &c, Teachers{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if got := tr.Config(); got.Combine != c.Combine || got.DiagnosticsEvery != 7 {
		t.Errorf("trainer combine %+v, diagnostics %d; want %+v, 7", got.Combine, got.DiagnosticsEvery, c.Combine)
	}
}
